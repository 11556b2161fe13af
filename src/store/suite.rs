//! The behaviour every [`LocalStore`] must show; each store's tests run it.

use super::LocalStore;
use crate::block::{Block, BlockId};
use crate::Error;

/// Runs the shared checks against an empty store.
pub async fn run(store: &dyn LocalStore) {
    assert_eq!(store.stats().await.unwrap().blocks, 0);
    let a = Block::from(vec![1u8; 4096]);
    let b = Block::from(vec![2u8; 4096]);
    let (ia, ib) = (BlockId::of(&a), BlockId::of(&b));

    assert!(!store.has(&ia).await.unwrap());
    assert!(matches!(store.get(&ia).await, Err(Error::MissingBlock { id }) if id == ia));

    store.put(ia, a.clone()).await.unwrap();
    store.put(ib, b.clone()).await.unwrap();
    store.put(ia, a.clone()).await.unwrap(); // idempotent
    store.flush().await.unwrap();
    assert!(store.has(&ia).await.unwrap());
    assert_eq!(store.get(&ia).await.unwrap(), a);
    assert_eq!(store.get(&ib).await.unwrap(), b);

    let stats = store.stats().await.unwrap();
    assert_eq!((stats.blocks, stats.bytes), (2, 8192));
    let mut listed = store.list().await.unwrap();
    listed.sort();
    let mut want = vec![ia, ib];
    want.sort();
    assert_eq!(listed, want);

    store.delete(&ia).await.unwrap();
    store.delete(&ia).await.unwrap(); // absent: still fine
    assert!(!store.has(&ia).await.unwrap());
    assert!(matches!(store.get(&ia).await, Err(Error::MissingBlock { .. })));
    assert_eq!(store.stats().await.unwrap().blocks, 1);
}
