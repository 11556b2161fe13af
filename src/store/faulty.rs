//! A fault-injecting store for tests: fails calls (as an I/O error would), stalls them, or returns
//! corrupted bytes, on demand, in front of any other store.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{BlockSource, LocalStore, StoreStats};
use crate::block::{Block, BlockId};
use crate::{Error, Result};

/// A store that misbehaves when told to.
pub struct FaultyStore {
    inner: Arc<dyn LocalStore>,
    fail_next: AtomicU32,
    failing: AtomicBool,
    corrupt_next: AtomicU32,
    stall: Mutex<Duration>,
    calls: AtomicU64,
}

impl FaultyStore {
    /// A well-behaved store over `inner` until told otherwise.
    pub fn new(inner: Arc<dyn LocalStore>) -> Self {
        FaultyStore {
            inner,
            fail_next: AtomicU32::new(0),
            failing: AtomicBool::new(false),
            corrupt_next: AtomicU32::new(0),
            stall: Mutex::new(Duration::ZERO),
            calls: AtomicU64::new(0),
        }
    }

    /// Fails the next `n` calls.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Fails every call until set back.
    pub fn set_failing(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Flips a byte of the next `n` blocks read.
    pub fn corrupt_next(&self, n: u32) {
        self.corrupt_next.store(n, Ordering::SeqCst);
    }

    /// Makes every call wait `d` first.
    pub fn stall(&self, d: Duration) {
        *self.stall.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Calls that reached this store.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn enter(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let stall = *self.stall.lock().unwrap_or_else(|p| p.into_inner());
        if !stall.is_zero() {
            tokio::time::sleep(stall).await;
        }
        let take = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if take || self.failing.load(Ordering::SeqCst) {
            return Err(Error::io(
                "<faulty store>",
                std::io::Error::other("injected failure"),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl BlockSource for FaultyStore {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        self.enter().await?;
        let b = self.inner.get(id).await?;
        let corrupt = self
            .corrupt_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if corrupt {
            let mut v = b.to_vec();
            v[0] ^= 0xff;
            return Ok(Block::from(v));
        }
        Ok(b)
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        self.enter().await?;
        self.inner.has(id).await
    }
}

#[async_trait]
impl LocalStore for FaultyStore {
    async fn put(&self, id: BlockId, data: Block) -> Result<()> {
        self.enter().await?;
        self.inner.put(id, data).await
    }

    async fn delete(&self, id: &BlockId) -> Result<()> {
        self.enter().await?;
        self.inner.delete(id).await
    }

    async fn list(&self) -> Result<Vec<BlockId>> {
        self.enter().await?;
        self.inner.list().await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.enter().await?;
        self.inner.stats().await
    }

    async fn flush(&self) -> Result<()> {
        self.enter().await?;
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn passes_the_shared_suite_when_healthy_and_misbehaves_on_demand() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new()));
        crate::store::suite::run(&store).await;
        let b = Block::from(vec![3u8; 4096]);
        let id = BlockId::of(&b);
        store.fail_next(1);
        assert!(store.put(id, b.clone()).await.is_err());
        store.put(id, b.clone()).await.unwrap();
        store.corrupt_next(1);
        assert_ne!(store.get(&id).await.unwrap(), b);
        assert_eq!(store.get(&id).await.unwrap(), b);
        store.set_failing(true);
        assert!(store.has(&id).await.is_err());
        store.set_failing(false);
        assert!(store.calls() >= 5);
    }
}
