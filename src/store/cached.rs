//! A moka cache of verified blocks in front of another store, weighted by bytes, so popular randomizers
//! are neither re-read nor re-hashed on every use.

use std::sync::Arc;

use async_trait::async_trait;
use moka::future::Cache;

use super::{BlockStore, StoreStats};
use crate::block::{Block, BlockId};
use crate::Result;

/// A byte-bounded cache over `inner`.
pub struct CachedStore {
    inner: Arc<dyn BlockStore>,
    cache: Cache<BlockId, Block>,
}

impl CachedStore {
    /// Caches up to `capacity_bytes` of blocks read from or written to `inner`.
    pub fn new(inner: Arc<dyn BlockStore>, capacity_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_k: &BlockId, v: &Block| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .build();
        CachedStore { inner, cache }
    }

    /// Whether `id` is in the cache right now.
    pub async fn is_cached(&self, id: &BlockId) -> bool {
        self.cache.contains_key(id)
    }
}

#[async_trait]
impl BlockStore for CachedStore {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        if let Some(b) = self.cache.get(id).await {
            return Ok(b);
        }
        let b = self.inner.get(id).await?;
        self.cache.insert(*id, b.clone()).await;
        Ok(b)
    }

    async fn put(&self, id: BlockId, data: Block) -> Result<()> {
        self.inner.put(id, data.clone()).await?;
        self.cache.insert(id, data).await;
        Ok(())
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        if self.cache.contains_key(id) {
            return Ok(true);
        }
        self.inner.has(id).await
    }

    async fn delete(&self, id: &BlockId) -> Result<()> {
        self.cache.invalidate(id).await;
        self.inner.delete(id).await
    }

    async fn list(&self) -> Result<Vec<BlockId>> {
        self.inner.list().await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.inner.stats().await
    }

    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let store = CachedStore::new(Arc::new(MemoryStore::new()), 1 << 20);
        super::super::suite::run(&store).await;
    }

    #[tokio::test]
    async fn serves_verified_blocks_from_cache() {
        let inner = Arc::new(MemoryStore::new());
        let store = CachedStore::new(inner.clone(), 1 << 20);
        let a = Block::from(vec![5u8; 1000]);
        let id = BlockId::of(&a);
        inner.put(id, a.clone()).await.unwrap();
        assert!(!store.is_cached(&id).await);
        assert_eq!(store.get(&id).await.unwrap(), a);
        assert!(store.is_cached(&id).await);
        // Corrupting the inner copy does not matter while the verified copy is cached.
        inner.tamper(id, Block::from_static(b"x"));
        assert_eq!(store.get(&id).await.unwrap(), a);
        assert!(store.has(&id).await.unwrap());
        store.delete(&id).await.unwrap();
        assert!(!store.is_cached(&id).await);
    }
}
