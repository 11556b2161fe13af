//! Reading from several places in order: the repository's own store first, then each remote source
//! (peers, later) in the order they were added. A block found remotely is kept in the local store so
//! the next read is local. Sources can be added while the repository is open (the network joins after
//! the repository is opened).

use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{BlockSource, FetchObserver, LocalStore};
use crate::block::{Block, BlockId};
use crate::{Error, Result};

/// The local store, then the remote sources.
pub struct TieredStore {
    local: Arc<dyn LocalStore>,
    remotes: RwLock<Vec<Arc<dyn BlockSource>>>,
    observer: Option<Arc<dyn FetchObserver>>,
}

impl TieredStore {
    /// Reads `local` only, until remotes are added.
    pub fn new(local: Arc<dyn LocalStore>) -> Self {
        TieredStore {
            local,
            remotes: RwLock::new(Vec::new()),
            observer: None,
        }
    }

    /// Tells `observer` of every block kept after a remote source served it.
    pub fn with_observer(mut self, observer: Arc<dyn FetchObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Adds a remote source, tried after the local store and the sources added before it.
    pub fn add_remote(&self, source: Arc<dyn BlockSource>) {
        self.remotes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    fn remotes(&self) -> Vec<Arc<dyn BlockSource>> {
        self.remotes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl BlockSource for TieredStore {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        let mut last = match self.local.get(id).await {
            Ok(b) => return Ok(b),
            Err(e @ Error::MissingBlock { .. }) => e,
            Err(e) => return Err(e),
        };
        for remote in self.remotes() {
            match remote.get(id).await {
                Ok(b) => {
                    // Remote bytes are checked before they are kept or used (here, unless the
                    // source hashed them itself).
                    if !remote.verifies() {
                        let actual = BlockId::of(&b);
                        if actual != *id {
                            last = Error::CorruptBlock { id: *id, actual };
                            continue;
                        }
                    }
                    self.local.put(*id, b.clone()).await?;
                    if let Some(o) = &self.observer {
                        o.fetched(id);
                    }
                    return Ok(b);
                }
                Err(e) => {
                    tracing::debug!(block = %id, error = %e, "remote source could not serve the block");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        if self.local.has(id).await? {
            return Ok(true);
        }
        for remote in self.remotes() {
            if remote.has(id).await.unwrap_or(false) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FaultyStore, MemoryStore};

    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<BlockId>>);

    impl FetchObserver for Seen {
        fn fetched(&self, id: &BlockId) {
            self.0.lock().unwrap().push(*id);
        }
    }

    #[tokio::test]
    async fn local_first_then_remotes_in_order_keeping_what_was_fetched() {
        let local = Arc::new(MemoryStore::new());
        let seen = Arc::new(Seen::default());
        let tiered = TieredStore::new(local.clone()).with_observer(seen.clone());
        let a = Block::from(vec![1u8; 4096]);
        let ia = BlockId::of(&a);
        assert!(matches!(tiered.get(&ia).await, Err(Error::MissingBlock { .. })));
        assert!(!tiered.has(&ia).await.unwrap());

        // A failing remote is passed over; a lying one is caught; the honest one serves.
        let failing = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        failing.set_failing(true);
        let liar = Arc::new(MemoryStore::new());
        liar.tamper(ia, Block::from(vec![2u8; 4096]));
        let honest = Arc::new(MemoryStore::new());
        honest.put(ia, a.clone()).await.unwrap();
        tiered.add_remote(failing.clone());
        tiered.add_remote(liar);
        assert!(matches!(tiered.get(&ia).await, Err(Error::CorruptBlock { .. })));
        tiered.add_remote(honest.clone());
        assert!(tiered.has(&ia).await.unwrap());
        assert_eq!(tiered.get(&ia).await.unwrap(), a);
        // Kept locally and reported once: the remotes are not asked again.
        assert!(local.has(&ia).await.unwrap());
        assert_eq!(*seen.0.lock().unwrap(), vec![ia]);
        let calls = failing.calls();
        assert_eq!(tiered.get(&ia).await.unwrap(), a);
        assert_eq!(failing.calls(), calls);
        assert_eq!(seen.0.lock().unwrap().len(), 1);
        // A local error other than "missing" is not hidden by the remotes.
        let broken = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let t2 = TieredStore::new(broken.clone());
        t2.add_remote(honest);
        broken.set_failing(true);
        assert!(matches!(t2.get(&ia).await, Err(Error::Io { .. })));
    }

    /// A source that says it checks ids itself (as the peer network does).
    struct Vouching(MemoryStore);

    #[async_trait]
    impl BlockSource for Vouching {
        async fn get(&self, id: &BlockId) -> Result<Block> {
            self.0.get(id).await
        }
        async fn has(&self, id: &BlockId) -> Result<bool> {
            self.0.has(id).await
        }
        fn verifies(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_source_that_verifies_is_not_hashed_again() {
        let a = Block::from(vec![1u8; 4096]);
        let ia = BlockId::of(&a);
        // The peer layer says it verifies (through its breaker), so its blocks are kept as given.
        let vouching = Vouching(MemoryStore::new());
        vouching.0.put(ia, a.clone()).await.unwrap();
        let local = Arc::new(MemoryStore::new());
        let tiered = TieredStore::new(local.clone());
        let layer = crate::store::ResilientStore::new("peers", Arc::new(vouching), Default::default(), false);
        assert!(layer.verifies());
        tiered.add_remote(Arc::new(layer));
        assert_eq!(tiered.get(&ia).await.unwrap(), a);
        assert!(local.has(&ia).await.unwrap());
        // A source that does not verify has its bytes checked here.
        let plain = Arc::new(MemoryStore::new());
        plain.tamper(ia, Block::from(vec![2u8; 4096]));
        assert!(!plain.verifies());
        let t2 = TieredStore::new(Arc::new(MemoryStore::new()));
        t2.add_remote(plain);
        assert!(matches!(t2.get(&ia).await, Err(Error::CorruptBlock { .. })));
    }
}
