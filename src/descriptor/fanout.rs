//! Descriptor fan-out (the "descriptor tree" of docs/formats.md, not the mutable [`crate::tree`]): a
//! file's tuples or a folder's entries spread over as many descriptor blocks as they need.
//! [`FanoutWriter`] builds one while entries stream in (sans-IO: it returns the sealed blocks to store);
//! [`FanoutReader`] walks or searches one, fetching and validating each node.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::node::{self, Body, Child, DirEntry, Meta, Node, FORMAT_VERSION, MAX_DEPTH};
use crate::block::{Block, BlockId};
use crate::crypto::{self, Key};
use crate::store::BlockSource;
use crate::{Error, Result};

/// Room kept in every node for the version, the body tag and array headers.
const NODE_OVERHEAD: usize = 48;

/// A sealed descriptor block ready to store.
#[derive(Debug, Clone)]
pub struct SealedNode {
    pub id: BlockId,
    pub data: Block,
}

/// What a tree's leaves hold.
pub trait LeafEntry: Serialize + Clone + Send + 'static {
    /// Wraps leaf entries into a node body.
    fn body(entries: Vec<Self>) -> Body;
}

impl LeafEntry for Vec<BlockId> {
    fn body(entries: Vec<Self>) -> Body {
        Body::Tuples(entries)
    }
}

impl LeafEntry for DirEntry {
    fn body(entries: Vec<Self>) -> Body {
        Body::Entries(entries)
    }
}

struct Level<T> {
    items: Vec<T>,
    bytes: usize,
    count: u64,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Level {
            items: Vec::new(),
            bytes: 0,
            count: 0,
        }
    }
}

/// Builds a descriptor tree from a stream of leaf entries, with memory bounded by the tree's depth.
pub struct FanoutWriter<E: LeafEntry> {
    key: Key,
    block_len: usize,
    capacity: usize,
    leaves: Level<E>,
    inner: Vec<Level<Child>>,
}

impl<E: LeafEntry> FanoutWriter<E> {
    /// A writer sealing nodes of `block_len` bytes under `key`.
    pub fn new(key: Key, block_len: usize) -> Self {
        FanoutWriter {
            key,
            block_len,
            capacity: crypto::envelope_capacity(block_len) - NODE_OVERHEAD,
            leaves: Level::default(),
            inner: Vec::new(),
        }
    }

    /// Adds the next leaf entry; returns the nodes that filled up and were sealed.
    pub fn push(&mut self, entry: E) -> Result<Vec<SealedNode>> {
        let len = node::encode(&entry).len();
        if len > self.capacity / 2 {
            return Err(Error::Unsupported {
                what: format!("a descriptor entry of {len} bytes"),
                reason: format!(
                    "blocks of {} bytes hold entries up to {}",
                    self.block_len,
                    self.capacity / 2
                ),
            });
        }
        let mut out = Vec::new();
        if self.leaves.bytes + len > self.capacity {
            let level = std::mem::take(&mut self.leaves);
            let child = self.seal_child(E::body(level.items), level.count, &mut out)?;
            self.push_child(0, child, &mut out)?;
        }
        self.leaves.items.push(entry);
        self.leaves.bytes += len;
        self.leaves.count += 1;
        Ok(out)
    }

    /// The leaf entries, when nothing was sealed yet and there are at most `max` of them (so a small
    /// file's tuples can live in its folder's manifest); otherwise the writer back.
    pub fn into_small(self, max: usize) -> std::result::Result<Vec<E>, Self> {
        if max > 0 && self.inner.is_empty() && self.leaves.items.len() <= max {
            Ok(self.leaves.items)
        } else {
            Err(self)
        }
    }

    /// Seals the remaining nodes and the root (which carries `meta`). Returns the root id and every node
    /// sealed here; the root is the last one.
    pub fn finish(mut self, meta: Meta) -> Result<(BlockId, Vec<SealedNode>)> {
        let meta_len = node::encode(&meta).len();
        let mut out = Vec::new();
        if meta_len + NODE_OVERHEAD > self.capacity {
            return Err(Error::Unsupported {
                what: "descriptor metadata this large".into(),
                reason: "it does not fit into one block".into(),
            });
        }
        // Leaves first: they become the root only when nothing was pushed up before and they fit.
        if self.inner.is_empty() && self.leaves.bytes + meta_len <= self.capacity {
            let items = std::mem::take(&mut self.leaves.items);
            let root = self.seal(Some(meta), E::body(items))?;
            let id = root.id;
            out.push(root);
            return Ok((id, out));
        }
        if !self.leaves.items.is_empty() {
            let level = std::mem::take(&mut self.leaves);
            let child = self.seal_child(E::body(level.items), level.count, &mut out)?;
            self.push_child(0, child, &mut out)?;
        }
        let mut depth = 0;
        loop {
            let top = depth + 1 == self.inner.len();
            let fits = self.inner[depth].bytes + meta_len <= self.capacity;
            let level = std::mem::take(&mut self.inner[depth]);
            if top && fits {
                let root = self.seal(Some(meta), Body::Children(level.items))?;
                let id = root.id;
                out.push(root);
                return Ok((id, out));
            }
            if !level.items.is_empty() {
                let child = self.seal_child(Body::Children(level.items), level.count, &mut out)?;
                self.push_child(depth + 1, child, &mut out)?;
            }
            depth += 1;
        }
    }

    fn seal(&self, meta: Option<Meta>, body: Body) -> Result<SealedNode> {
        let bytes = node::encode(&Node {
            v: FORMAT_VERSION,
            meta,
            body,
        });
        let data = crypto::seal_envelope(&self.key, &bytes, self.block_len)?;
        Ok(SealedNode {
            id: BlockId::of(&data),
            data: Bytes::from(data),
        })
    }

    fn seal_child(&self, body: Body, count: u64, out: &mut Vec<SealedNode>) -> Result<Child> {
        let sealed = self.seal(None, body)?;
        let child = Child { id: sealed.id, count };
        out.push(sealed);
        Ok(child)
    }

    /// Appends `child` to inner level `depth`, sealing that level first when it is full.
    fn push_child(&mut self, depth: usize, child: Child, out: &mut Vec<SealedNode>) -> Result<()> {
        if self.inner.len() <= depth {
            self.inner.push(Level::default());
        }
        let len = node::encode(&child).len();
        if self.inner[depth].bytes + len > self.capacity {
            let level = std::mem::take(&mut self.inner[depth]);
            let up = self.seal_child(Body::Children(level.items), level.count, out)?;
            self.push_child(depth + 1, up, out)?;
        }
        let level = &mut self.inner[depth];
        level.items.push(child);
        level.bytes += len;
        level.count += child.count;
        Ok(())
    }
}

/// Fetches a descriptor block, opens it with `key` and validates it.
pub async fn fetch_node(store: &dyn BlockSource, key: &Key, id: &BlockId, is_root: bool) -> Result<Node> {
    let block = store.get(id).await?;
    if block.len() > crate::block::BlockSize::MAX {
        return Err(Error::Descriptor {
            id: *id,
            reason: format!(
                "oversized: {} bytes, blocks are at most {}",
                block.len(),
                crate::block::BlockSize::MAX
            ),
        });
    }
    let plain = crypto::open_envelope(key, &block).ok_or(Error::Decrypt { id: *id })?;
    node::decode(id, &plain, is_root)
}

/// The leaf of tuples a reader used last: (index of its first entry, its tuples).
type LeafMemo = Arc<std::sync::Mutex<Option<(u64, Arc<Vec<Vec<BlockId>>>)>>>;

/// Reads the leaves of one descriptor tree.
#[derive(Clone)]
pub struct FanoutReader {
    store: Arc<dyn BlockSource>,
    key: Key,
    root_id: BlockId,
    root: Body,
    memo: LeafMemo,
}

impl FanoutReader {
    /// A reader over the tree whose root node (already fetched) is `root`.
    pub fn new(store: Arc<dyn BlockSource>, key: Key, root_id: BlockId, root: Body) -> Self {
        FanoutReader {
            store,
            key,
            root_id,
            root,
            memo: LeafMemo::default(),
        }
    }

    /// The tuple of content block `index`. The leaf it came from is remembered, so reading a file in
    /// order fetches and decrypts each descriptor leaf once.
    pub async fn tuple_at(&self, index: u64) -> Result<Vec<BlockId>> {
        {
            let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((start, t)) = memo.as_ref() {
                if index >= *start && index < start + t.len() as u64 {
                    return Ok(t[(index - start) as usize].clone());
                }
            }
        }
        match self.leaf_at(index).await? {
            (start, Body::Tuples(t)) => {
                let tuple = t[(index - start) as usize].clone();
                *self.memo.lock().unwrap_or_else(|p| p.into_inner()) = Some((start, Arc::new(t)));
                Ok(tuple)
            }
            _ => Err(self.malformed("a file tree holds folder entries".into())),
        }
    }

    /// Walks every leaf in order. The walk owns what it needs, so it can outlive `self`.
    pub fn leaves(&self) -> Leaves {
        Leaves {
            reader: self.clone(),
            stack: Vec::new(),
            started: false,
            visited: std::collections::HashSet::new(),
        }
    }

    /// The leaf holding entry `index`, with the index of its first entry.
    pub async fn leaf_at(&self, index: u64) -> Result<(u64, Body)> {
        let mut body = self.root.clone();
        let mut start = 0u64;
        for _ in 0..=MAX_DEPTH {
            let children = match body {
                Body::Children(c) => c,
                leaf => {
                    let held = match &leaf {
                        Body::Tuples(t) => t.len(),
                        Body::Entries(e) => e.len(),
                        Body::Children(_) => 0,
                    } as u64;
                    if index >= start + held {
                        return Err(self.malformed(format!("no entry {index} in the tree")));
                    }
                    return Ok((start, leaf));
                }
            };
            let mut next = None;
            for c in &children {
                if index < start + c.count {
                    next = Some(*c);
                    break;
                }
                start += c.count;
            }
            let child = next.ok_or_else(|| self.malformed(format!("no entry {index} in the tree")))?;
            body = fetch_node(&*self.store, &self.key, &child.id, false).await?.body;
        }
        Err(self.malformed("the tree is deeper than allowed".into()))
    }

    fn malformed(&self, reason: String) -> Error {
        Error::Descriptor {
            id: self.root_id,
            reason,
        }
    }
}

/// An in-order walk over a tree's leaves; checks every child's declared count against what it holds.
pub struct Leaves {
    reader: FanoutReader,
    /// Interior nodes being walked: remaining children, innermost last.
    stack: Vec<std::vec::IntoIter<Child>>,
    started: bool,
    /// The non-root nodes fetched so far: a node reached twice makes the tree a graph, refused.
    visited: std::collections::HashSet<BlockId>,
}

impl Leaves {
    /// The ids of the non-root nodes fetched so far.
    pub fn visited(&self) -> &std::collections::HashSet<BlockId> {
        &self.visited
    }

    /// The next leaf body, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Body>> {
        if !self.started {
            self.started = true;
            match &self.reader.root {
                Body::Children(c) => self.stack.push(c.clone().into_iter()),
                leaf => return Ok(Some(leaf.clone())),
            }
        }
        while let Some(top) = self.stack.last_mut() {
            let Some(child) = top.next() else {
                self.stack.pop();
                continue;
            };
            if self.stack.len() > MAX_DEPTH {
                return Err(self.reader.malformed("the tree is deeper than allowed".into()));
            }
            if child.id == self.reader.root_id || !self.visited.insert(child.id) {
                return Err(self.reader.malformed(format!(
                    "node {} is reached twice: a descriptor tree has no loops",
                    child.id
                )));
            }
            let node = fetch_node(&*self.reader.store, &self.reader.key, &child.id, false).await?;
            let held = match &node.body {
                Body::Tuples(t) => t.len() as u64,
                Body::Entries(e) => e.len() as u64,
                Body::Children(c) => c.iter().map(|c| c.count).sum(),
            };
            if held != child.count {
                return Err(self.reader.malformed(format!(
                    "node {} holds {held} entries but its parent says {}",
                    child.id, child.count
                )));
            }
            match node.body {
                Body::Children(c) => self.stack.push(c.into_iter()),
                leaf => return Ok(Some(leaf)),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;
    use crate::store::MemoryStore;

    fn tuple(i: u64) -> Vec<BlockId> {
        vec![BlockId::of(&i.to_le_bytes()); 3]
    }

    fn meta(n: u64) -> Meta {
        Meta::File {
            name: String::new(),
            size: n * 4096,
            block_size: 4096,
            tuple_size: 3,
            mtime: 0,
            mtime_ns: 0,
            mode: 0o644,
            media_type: "application/octet-stream".into(),
        }
    }

    async fn build(n: u64) -> (Arc<dyn LocalStore>, Key, BlockId, usize) {
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let key = Key::random();
        let mut w = FanoutWriter::<Vec<BlockId>>::new(key.clone(), 4096);
        let mut blocks = Vec::new();
        for i in 0..n {
            blocks.extend(w.push(tuple(i)).unwrap());
        }
        let (root, rest) = w.finish(meta(n)).unwrap();
        blocks.extend(rest);
        assert_eq!(blocks.last().unwrap().id, root);
        let count = blocks.len();
        for b in blocks {
            assert_eq!(b.data.len(), 4096);
            store.put(b.id, b.data).await.unwrap();
        }
        (store, key, root, count)
    }

    async fn read_all(store: Arc<dyn LocalStore>, key: Key, root: BlockId) -> Vec<Vec<BlockId>> {
        let node = fetch_node(&*store, &key, &root, true).await.unwrap();
        let reader = FanoutReader::new(store, key, root, node.body);
        let mut leaves = reader.leaves();
        let mut all = Vec::new();
        while let Some(body) = leaves.next().await.unwrap() {
            match body {
                Body::Tuples(t) => all.extend(t),
                other => panic!("unexpected {other:?}"),
            }
        }
        all
    }

    #[tokio::test]
    async fn trees_of_every_depth_round_trip() {
        // 4 KiB nodes hold about 30 tuples and 80 children: 0 and 10 fit the root, 100 needs one inner
        // level, 5000 needs two.
        for (n, min_blocks) in [(0u64, 1usize), (10, 1), (100, 4), (5000, 150)] {
            let (store, key, root, blocks) = build(n).await;
            assert!(blocks >= min_blocks, "{n} tuples made {blocks} blocks");
            let all = read_all(store.clone(), key.clone(), root).await;
            assert_eq!(all.len() as u64, n);
            for (i, t) in all.iter().enumerate() {
                assert_eq!(t, &tuple(i as u64));
            }
            let node = fetch_node(&*store, &key, &root, true).await.unwrap();
            let reader = FanoutReader::new(store, key, root, node.body);
            for probe in [0, n / 2, n.saturating_sub(1)] {
                if n == 0 {
                    break;
                }
                let (start, body) = reader.leaf_at(probe).await.unwrap();
                let Body::Tuples(t) = body else { panic!() };
                assert_eq!(t[(probe - start) as usize], tuple(probe));
            }
            if n > 0 {
                assert!(reader.leaf_at(n).await.is_err());
            }
        }
    }

    #[tokio::test]
    async fn wrong_key_and_lying_counts_are_refused() {
        let (store, key, root, _) = build(100).await;
        let err = fetch_node(&*store, &Key::random(), &root, true)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Decrypt { .. }));
        // Forge a root whose child claims one entry more than it holds.
        let node = fetch_node(&*store, &key, &root, true).await.unwrap();
        let Body::Children(mut children) = node.body else {
            panic!("expected children")
        };
        children[0].count += 1;
        let reader = FanoutReader::new(store, key, root, Body::Children(children));
        let mut leaves = reader.leaves();
        let err = leaves.next().await.unwrap_err().to_string();
        assert!(err.contains("parent says"), "{err}");
    }

    #[tokio::test]
    async fn big_folders_and_deep_forgeries() {
        // A folder of 500 entries spreads over several leaves and reads back in order.
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let key = Key::random();
        let mut w = FanoutWriter::<DirEntry>::new(key.clone(), 4096);
        let entry = |i: usize| DirEntry {
            name: format!("entry-{i:04}"),
            kind: node::EntryKind::Symlink,
            target: Some("t".into()),
            ..DirEntry::default()
        };
        let mut blocks = Vec::new();
        for i in 0..500 {
            blocks.extend(w.push(entry(i)).unwrap());
        }
        let meta = Meta::Dir {
            name: "d".into(),
            mtime: 0,
            mtime_ns: 0,
            mode: 0,
            entries: 500,
        };
        let (root, rest) = w.finish(meta).unwrap();
        blocks.extend(rest);
        for b in blocks {
            store.put(b.id, b.data).await.unwrap();
        }
        let node = fetch_node(&*store, &key, &root, true).await.unwrap();
        let reader = FanoutReader::new(store.clone(), key.clone(), root, node.body);
        let mut leaves = reader.leaves();
        let mut names = Vec::new();
        while let Some(Body::Entries(e)) = leaves.next().await.unwrap() {
            names.extend(e.into_iter().map(|e| e.name));
        }
        assert_eq!(names, (0..500).map(|i| entry(i).name).collect::<Vec<_>>());
        assert!(leaves.visited().len() > 3);
        let (start, Body::Entries(e)) = reader.leaf_at(321).await.unwrap() else {
            panic!()
        };
        assert_eq!(e[(321 - start) as usize].name, "entry-0321");

        // A chain of inner nodes deeper than allowed is refused by both walks.
        let mut id = {
            let sealed = FanoutWriter::<DirEntry>::new(key.clone(), 4096);
            let leaf = sealed.seal(None, Body::Entries(vec![entry(0)])).unwrap();
            store.put(leaf.id, leaf.data).await.unwrap();
            leaf.id
        };
        for _ in 0..MAX_DEPTH + 2 {
            let w = FanoutWriter::<DirEntry>::new(key.clone(), 4096);
            let n = w
                .seal(None, Body::Children(vec![Child { id, count: 1 }]))
                .unwrap();
            store.put(n.id, n.data).await.unwrap();
            id = n.id;
        }
        let reader = FanoutReader::new(store, key, root, Body::Children(vec![Child { id, count: 1 }]));
        let mut leaves = reader.leaves();
        assert!(leaves.next().await.unwrap_err().to_string().contains("deeper"));
        assert!(reader
            .leaf_at(0)
            .await
            .unwrap_err()
            .to_string()
            .contains("deeper"));
    }

    #[tokio::test]
    async fn a_node_reached_twice_is_refused() {
        // Six blocks that stand for an endless file: each level's two children share one grandchild,
        // so each node alone is valid but the walk would double at every level.
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let key = Key::random();
        let w = FanoutWriter::<Vec<BlockId>>::new(key.clone(), 4096);
        let leaf = w.seal(None, Body::Tuples(vec![tuple(0)])).unwrap();
        store.put(leaf.id, leaf.data).await.unwrap();
        let mut level = vec![leaf.id];
        let mut count = 1;
        for depth in 0..3u64 {
            let mut next = Vec::new();
            for side in 0..2u64 {
                // The same children, under a different second child so the two nodes differ.
                let mut children: Vec<Child> = level.iter().map(|id| Child { id: *id, count }).collect();
                if children.len() == 1 {
                    let extra = w
                        .seal(None, Body::Tuples(vec![tuple(100 + depth * 2 + side)]))
                        .unwrap();
                    store.put(extra.id, extra.data).await.unwrap();
                    children.push(Child {
                        id: extra.id,
                        count: 1,
                    });
                }
                let n = w.seal(None, Body::Children(children.clone())).unwrap();
                store.put(n.id, n.data).await.unwrap();
                next.push((n.id, children.iter().map(|c| c.count).sum::<u64>()));
            }
            count = next[0].1;
            level = next.iter().map(|(id, _)| *id).collect();
        }
        let root_body = Body::Children(level.iter().map(|id| Child { id: *id, count }).collect());
        let reader = FanoutReader::new(store, key, BlockId::of(b"root"), root_body);
        let mut leaves = reader.leaves();
        let mut walked = 0;
        let err = loop {
            match leaves.next().await {
                Ok(Some(_)) => walked += 1,
                Ok(None) => panic!("a graph was walked as a tree"),
                Err(e) => break e.to_string(),
            }
            assert!(walked < 100, "the walk does not end");
        };
        assert!(err.contains("reached twice"), "{err}");
    }

    #[test]
    fn metadata_larger_than_a_block_is_refused() {
        let w = FanoutWriter::<DirEntry>::new(Key::random(), 4096);
        let meta = Meta::Dir {
            name: "n".repeat(5000),
            mtime: 0,
            mtime_ns: 0,
            mode: 0,
            entries: 0,
        };
        assert!(w.finish(meta).is_err());
    }

    #[tokio::test]
    async fn oversized_descriptor_blocks_are_refused() {
        let store = MemoryStore::new();
        let big = Bytes::from(vec![0u8; crate::block::BlockSize::MAX + 1]);
        let id = BlockId::of(&big);
        store.put(id, big).await.unwrap();
        let err = fetch_node(&store, &Key::random(), &id, true).await.unwrap_err();
        assert!(err.to_string().contains("oversized"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn any_number_of_entries_round_trips(n in 0u64..400) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let (store, key, root, _) = build(n).await;
                let all = read_all(store, key, root).await;
                assert_eq!(all.len() as u64, n);
                assert!(all.iter().enumerate().all(|(i, t)| t == &tuple(i as u64)));
            });
        }
    }

    #[test]
    fn oversized_entries_are_refused() {
        let mut w = FanoutWriter::<DirEntry>::new(Key::random(), 4096);
        let e = DirEntry {
            name: "x".into(),
            kind: node::EntryKind::Symlink,
            size: 0,
            mtime: 0,
            mode: 0,
            root: None,
            key: None,
            target: Some("t".repeat(4000)),
            ..DirEntry::default()
        };
        assert!(w.push(e).is_err());
    }
}
