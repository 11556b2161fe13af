//! A moka cache of verified blocks in front of a source, weighted by bytes, so popular randomizers
//! are neither re-read nor re-hashed on every use. Writers put what they store into it with
//! [`CachedStore::insert`] and drop what they delete with [`CachedStore::invalidate`].

use std::sync::Arc;

use async_trait::async_trait;
use moka::future::Cache;

use super::BlockSource;
use crate::block::{Block, BlockId};
use crate::Result;

/// A byte-bounded cache over `inner`.
pub struct CachedStore {
    inner: Arc<dyn BlockSource>,
    cache: Cache<BlockId, Block>,
}

impl CachedStore {
    /// Caches up to `capacity_bytes` of blocks read from `inner` or inserted.
    pub fn new(inner: Arc<dyn BlockSource>, capacity_bytes: u64) -> Self {
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

    /// Adds a block the caller has verified (or made) to the cache.
    pub async fn insert(&self, id: BlockId, data: Block) {
        self.cache.insert(id, data).await;
    }

    /// Drops `id` from the cache.
    pub async fn invalidate(&self, id: &BlockId) {
        self.cache.invalidate(id).await;
    }
}

#[async_trait]
impl BlockSource for CachedStore {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        if let Some(b) = self.cache.get(id).await {
            return Ok(b);
        }
        let b = self.inner.get(id).await?;
        self.cache.insert(*id, b.clone()).await;
        Ok(b)
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        if self.cache.contains_key(id) {
            return Ok(true);
        }
        self.inner.has(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LocalStore, MemoryStore};

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
        store.invalidate(&id).await;
        assert!(!store.is_cached(&id).await);
        assert!(store.get(&id).await.is_err());
        // Inserted blocks are served without asking the source.
        let b = Block::from(vec![6u8; 1000]);
        let ib = BlockId::of(&b);
        assert!(!store.has(&ib).await.unwrap());
        store.insert(ib, b.clone()).await;
        assert!(store.has(&ib).await.unwrap());
        assert_eq!(store.get(&ib).await.unwrap(), b);
    }
}
