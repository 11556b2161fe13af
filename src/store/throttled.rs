//! A store that is slow on purpose, for tests and benchmarks: every call waits a fixed latency, and
//! block transfers are paced to a bandwidth shared by all callers (as one link to a peer would be).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;

use super::{BlockSource, LocalStore, StoreStats};
use crate::block::{Block, BlockId};
use crate::Result;

/// `inner` behind a latency and a bandwidth.
pub struct ThrottledStore {
    inner: Arc<dyn LocalStore>,
    latency: Duration,
    bytes_per_sec: u64,
    /// When the shared link is free again.
    free_at: Mutex<Instant>,
}

impl ThrottledStore {
    /// Each call waits `latency`; block bytes move at `bytes_per_sec` (0: unlimited).
    pub fn new(inner: Arc<dyn LocalStore>, latency: Duration, bytes_per_sec: u64) -> Self {
        ThrottledStore {
            inner,
            latency,
            bytes_per_sec,
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Waits the latency plus the time `bytes` take on the link after what is queued on it.
    async fn pace(&self, bytes: usize) {
        let transfer = match self.bytes_per_sec {
            0 => Duration::ZERO,
            bps => Duration::from_secs_f64(bytes as f64 / bps as f64),
        };
        let done = {
            let mut free = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
            let start = (*free).max(Instant::now());
            *free = start + transfer;
            *free
        };
        tokio::time::sleep_until(done + self.latency).await;
    }
}

#[async_trait]
impl BlockSource for ThrottledStore {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        let b = self.inner.get(id).await?;
        self.pace(b.len()).await;
        Ok(b)
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        self.pace(0).await;
        self.inner.has(id).await
    }
}

#[async_trait]
impl LocalStore for ThrottledStore {
    async fn put(&self, id: BlockId, data: Block) -> Result<()> {
        self.pace(data.len()).await;
        self.inner.put(id, data).await
    }

    async fn delete(&self, id: &BlockId) -> Result<()> {
        self.pace(0).await;
        self.inner.delete(id).await
    }

    async fn list(&self) -> Result<Vec<BlockId>> {
        self.pace(0).await;
        self.inner.list().await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.pace(0).await;
        self.inner.stats().await
    }

    async fn flush(&self) -> Result<()> {
        self.pace(0).await;
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn passes_the_shared_suite_and_paces_transfers() {
        let store = ThrottledStore::new(Arc::new(MemoryStore::new()), Duration::ZERO, 0);
        crate::store::suite::run(&store).await;

        // 4 blocks of 16 KiB at 256 KiB/s with 10 ms latency take at least 250 ms.
        let store = ThrottledStore::new(Arc::new(MemoryStore::new()), Duration::from_millis(10), 256 << 10);
        let blocks: Vec<Block> = (0..4u8).map(|i| Block::from(vec![i; 16 << 10])).collect();
        let start = Instant::now();
        for b in &blocks {
            store.put(BlockId::of(b), b.clone()).await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert_eq!(store.stats().await.unwrap().blocks, 4);
    }
}
