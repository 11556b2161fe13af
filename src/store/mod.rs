//! Block stores, in two roles. A [`BlockSource`] is a place blocks can be read from (the local disk, a
//! peer, a test double); a [`LocalStore`] is the repository's own storage, which also takes writes,
//! deletes, lists and flushes. [`DiskStore`] and [`MemoryStore`] are local stores; [`ResilientStore`]
//! adds timeouts, retries and a circuit breaker around either role; [`TieredStore`] reads the local store
//! first, then each remote source; [`CachedStore`] keeps verified blocks in memory; [`Stack`] assembles
//! them (see [`StackBuilder`]) and is what a repository reads and writes through. [`FaultyStore`] and
//! [`ThrottledStore`] misbehave or slow down on purpose, for tests and benchmarks. Every block a store
//! returns is verified against its id.

mod cached;
mod disk;
mod faulty;
mod memory;
mod resilient;
mod stack;
#[cfg(test)]
pub(crate) mod suite;
mod throttled;
mod tiered;

pub use cached::CachedStore;
pub use disk::DiskStore;
pub use faulty::FaultyStore;
pub use memory::MemoryStore;
pub use resilient::{BreakerStatus, Resilience, ResilientStore};
pub use stack::{Stack, StackBuilder};
pub use throttled::ThrottledStore;
pub use tiered::TieredStore;

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

/// A place blocks can be read from. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait BlockSource: Send + Sync + 'static {
    /// The block `id`, verified against its id. [`crate::Error::MissingBlock`] when absent,
    /// [`crate::Error::CorruptBlock`] when its bytes do not hash to `id`.
    async fn get(&self, id: &BlockId) -> Result<Block>;
    /// Whether a block with this id is held (without reading or verifying it).
    async fn has(&self, id: &BlockId) -> Result<bool>;
    /// Whether `get` itself hashes what it returns against the id (a peer network whose node checks
    /// every block on receipt), so a reader above need not hash the bytes again. Test doubles and
    /// sources that only pass bytes on say no, and the tiered read checks their blocks.
    fn verifies(&self) -> bool {
        false
    }
}

/// Told of each block a remote source served that the local store now keeps, so the repository can
/// record it as fetched (the store knows nothing of the state above it).
pub trait FetchObserver: Send + Sync + 'static {
    /// `id` was fetched and stored locally.
    fn fetched(&self, id: &BlockId);
}

/// The repository's own storage: a source that also keeps what is written to it.
#[async_trait]
pub trait LocalStore: BlockSource {
    /// Stores `data` under `id`; the caller has computed `id` from `data`. Durable after [`flush`](Self::flush).
    async fn put(&self, id: BlockId, data: Block) -> Result<()>;
    /// Removes a block; removing an absent block is not an error.
    async fn delete(&self, id: &BlockId) -> Result<()>;
    /// Every block id held, in no particular order.
    async fn list(&self) -> Result<Vec<BlockId>>;
    /// How much the store holds.
    async fn stats(&self) -> Result<StoreStats>;
    /// Makes every completed `put` durable.
    async fn flush(&self) -> Result<()>;
    /// Where block `id` lives, for messages (a file path), when the store has such a place.
    fn location(&self, _id: &BlockId) -> Option<std::path::PathBuf> {
        None
    }
}
