//! An in-memory block store, for tests and for benchmarks that leave the disk out.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{BlockSource, LocalStore, StoreStats};
use crate::block::{self, Block, BlockId};
use crate::{Error, Result};

/// Blocks in a hash map.
#[derive(Default)]
pub struct MemoryStore {
    blocks: RwLock<HashMap<BlockId, Block>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the bytes held under `id` without checking them (to test corruption handling).
    pub fn tamper(&self, id: BlockId, data: Block) {
        self.write().insert(id, data);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BlockId, Block>> {
        self.blocks.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BlockId, Block>> {
        self.blocks.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl BlockSource for MemoryStore {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        let data = self
            .read()
            .get(id)
            .cloned()
            .ok_or(Error::MissingBlock { id: *id })?;
        block::verify(id, &data)?;
        Ok(data)
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        Ok(self.read().contains_key(id))
    }
}

#[async_trait]
impl LocalStore for MemoryStore {
    async fn put(&self, id: BlockId, data: Block) -> Result<()> {
        self.write().insert(id, data);
        Ok(())
    }

    async fn delete(&self, id: &BlockId) -> Result<()> {
        self.write().remove(id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<BlockId>> {
        Ok(self.read().keys().copied().collect())
    }

    async fn stats(&self) -> Result<StoreStats> {
        let map = self.read();
        Ok(StoreStats {
            blocks: map.len() as u64,
            bytes: map.values().map(|b| b.len() as u64).sum(),
        })
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let store = MemoryStore::new();
        super::super::suite::run(&store).await;
        let id = BlockId::of(b"good");
        store.tamper(id, Block::from_static(b"evil"));
        assert!(matches!(store.get(&id).await, Err(Error::CorruptBlock { .. })));
    }
}
