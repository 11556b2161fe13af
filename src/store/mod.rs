//! Block stores: the async [`BlockStore`] trait and its layers. [`DiskStore`] keeps one file per block,
//! [`MemoryStore`] keeps blocks in memory (tests, benchmarks), [`CachedStore`] puts a moka cache of verified
//! blocks in front of any store, [`ResilientStore`] adds timeouts, retries and a circuit breaker around a
//! backend, [`FaultyStore`] injects failures for tests. Every store verifies a block against its id before
//! returning it.

mod cached;
mod disk;
mod faulty;
mod memory;
mod resilient;
#[cfg(test)]
pub(crate) mod suite;

pub use cached::CachedStore;
pub use disk::DiskStore;
pub use faulty::FaultyStore;
pub use memory::MemoryStore;
pub use resilient::{BreakerStatus, Resilience, ResilientStore};

use async_trait::async_trait;

use crate::block::{Block, BlockId};
use crate::Result;

/// Counts a store reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Blocks held.
    pub blocks: u64,
    /// Bytes held.
    pub bytes: u64,
}

/// A place blocks live. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait BlockStore: Send + Sync + 'static {
    /// The block `id`, verified against its id. [`crate::Error::MissingBlock`] when absent,
    /// [`crate::Error::CorruptBlock`] when its bytes do not hash to `id`.
    async fn get(&self, id: &BlockId) -> Result<Block>;
    /// Stores `data` under `id`; the caller has computed `id` from `data`. Durable after [`flush`](Self::flush).
    async fn put(&self, id: BlockId, data: Block) -> Result<()>;
    /// Whether a block with this id is held (without reading or verifying it).
    async fn has(&self, id: &BlockId) -> Result<bool>;
    /// Removes a block; removing an absent block is not an error.
    async fn delete(&self, id: &BlockId) -> Result<()>;
    /// Every block id held, in no particular order.
    async fn list(&self) -> Result<Vec<BlockId>>;
    /// How much the store holds.
    async fn stats(&self) -> Result<StoreStats>;
    /// Makes every completed `put` durable.
    async fn flush(&self) -> Result<()>;
}
