//! The assembled store of a repository: a cache of verified blocks over a tiered read (the local store,
//! then each remote source), each behind its own circuit breaker, and writes that go to the local store
//! and the cache. [`StackBuilder`] is the one place the layers are put together; every entry point (CLI,
//! daemon, mount, tests, benchmarks) gets its stack from it through [`crate::repo::Repo`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    BlockSource, BreakerStatus, CachedStore, FetchObserver, LocalStore, Resilience, ResilientStore,
    StoreStats, TieredStore,
};
use crate::block::{Block, BlockId};
use crate::Result;

/// Builds a [`Stack`].
pub struct StackBuilder {
    local: Arc<dyn LocalStore>,
    local_name: String,
    resilience: Resilience,
    cache_bytes: u64,
    observer: Option<Arc<dyn FetchObserver>>,
}

impl StackBuilder {
    /// A stack over `local` (named `local_name` in `status`), with default resilience and a 64 MiB cache.
    pub fn new(local_name: &str, local: Arc<dyn LocalStore>) -> Self {
        StackBuilder {
            local,
            local_name: local_name.to_string(),
            resilience: Resilience::default(),
            cache_bytes: 64 << 20,
            observer: None,
        }
    }

    /// Tells `observer` of every block a remote source served and the local store kept.
    pub fn on_fetched(mut self, observer: Arc<dyn FetchObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Timeouts, retries and breaker settings for every layer.
    pub fn resilience(mut self, r: Resilience) -> Self {
        self.resilience = r;
        self
    }

    /// Bytes of verified blocks kept in memory.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The stack.
    pub fn build(self) -> Stack {
        // The local store verifies what it reads itself; remote bytes are verified by their layer.
        let local: Arc<ResilientStore> = Arc::new(ResilientStore::new(
            &self.local_name,
            self.local,
            self.resilience.clone(),
            false,
        ));
        let mut tiered = TieredStore::new(local.clone());
        if let Some(o) = self.observer {
            tiered = tiered.with_observer(o);
        }
        let tiered = Arc::new(tiered);
        let cache = CachedStore::new(tiered.clone(), self.cache_bytes);
        Stack {
            cache,
            tiered,
            local,
            remotes: Mutex::new(Vec::new()),
            resilience: self.resilience,
        }
    }
}

/// A repository's store: reads through cache, local store and remotes; writes to the local store.
pub struct Stack {
    cache: CachedStore,
    tiered: Arc<TieredStore>,
    local: Arc<ResilientStore>,
    remotes: Mutex<Vec<Arc<ResilientStore<dyn BlockSource>>>>,
    resilience: Resilience,
}

impl Stack {
    /// Adds a remote source (a peer network, a pinning service) behind a breaker of its own, read when
    /// the local store misses; what it returns is verified and kept locally.
    pub fn add_remote(&self, name: &str, source: Arc<dyn BlockSource>) {
        self.add_remote_with(name, source, self.resilience.clone());
    }

    /// As [`Stack::add_remote`], with timeouts, retries and breaker of its own.
    pub fn add_remote_with(&self, name: &str, source: Arc<dyn BlockSource>, resilience: Resilience) {
        // Not hashed here: the tiered read verifies every remote block before it is used or kept,
        // unless the source hashed it itself (peers: the node checks each block on receipt).
        let layer = Arc::new(ResilientStore::new(name, source, resilience, false));
        self.tiered.add_remote(layer.clone());
        self.remotes.lock().unwrap_or_else(|p| p.into_inner()).push(layer);
    }

    /// Every layer's breaker, the local store first.
    pub fn breakers(&self) -> Vec<BreakerStatus> {
        let mut out = vec![self.local.status()];
        out.extend(
            self.remotes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|r| r.status()),
        );
        out
    }

    /// Whether `id` is in the cache right now.
    pub async fn is_cached(&self, id: &BlockId) -> bool {
        self.cache.is_cached(id).await
    }
}

#[async_trait]
impl BlockSource for Stack {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        self.cache.get(id).await
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        self.cache.has(id).await
    }
}

#[async_trait]
impl LocalStore for Stack {
    async fn put(&self, id: BlockId, data: Block) -> Result<()> {
        self.local.put(id, data.clone()).await?;
        self.cache.insert(id, data).await;
        Ok(())
    }

    async fn delete(&self, id: &BlockId) -> Result<()> {
        self.cache.invalidate(id).await;
        self.local.delete(id).await
    }

    async fn list(&self) -> Result<Vec<BlockId>> {
        self.local.list().await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.local.stats().await
    }

    async fn flush(&self) -> Result<()> {
        self.local.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FaultyStore, MemoryStore};

    #[tokio::test]
    async fn passes_the_shared_suite_and_reads_remotes_behind_their_own_breakers() {
        let stack = StackBuilder::new("memory", Arc::new(MemoryStore::new()))
            .cache_bytes(1 << 20)
            .build();
        crate::store::suite::run(&stack).await;

        let local = Arc::new(MemoryStore::new());
        let stack = StackBuilder::new("disk", local.clone())
            .resilience(Resilience {
                timeout_ms: 200,
                retries: 0,
                backoff_ms: 1,
                backoff_max_ms: 1,
                breaker_failures: 1,
                breaker_open_ms: 60_000,
            })
            .build();
        let b = Block::from(vec![4u8; 4096]);
        let id = BlockId::of(&b);
        let peer = Arc::new(MemoryStore::new());
        peer.put(id, b.clone()).await.unwrap();
        let down = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        down.set_failing(true);
        stack.add_remote("down", down);
        stack.add_remote("peer", peer);
        assert_eq!(stack.get(&id).await.unwrap(), b);
        assert!(stack.is_cached(&id).await);
        assert!(local.has(&id).await.unwrap(), "fetched blocks are kept locally");
        let names: Vec<(String, String)> = stack.breakers().into_iter().map(|s| (s.store, s.state)).collect();
        assert_eq!(
            names,
            vec![
                ("disk".to_string(), "closed".to_string()),
                ("down".to_string(), "open".to_string()),
                ("peer".to_string(), "closed".to_string()),
            ]
        );
        // Deleting drops the cached copy too.
        stack.delete(&id).await.unwrap();
        assert!(!stack.is_cached(&id).await);
        assert!(!local.has(&id).await.unwrap());
    }
}
