//! Walking what a link needs: every descriptor node and every tuple block of a file, folder or password
//! wrapper, counted per block. `gc` keeps what pinned links need and recounts references from the walk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::get::open;
use crate::block::BlockId;
use crate::descriptor::node::FileContent;
use crate::descriptor::{Body, EntryKind, Link};
use crate::store::BlockSource;
use crate::Result;

/// References per block found by walking.
#[derive(Debug, Default)]
pub struct Marks {
    pub refs: HashMap<BlockId, u64>,
}

impl Marks {
    /// Counts one reference to `id` (a block kept for a reason the walk does not see, such as the
    /// password wrapper a pin stands under).
    pub fn keep(&mut self, id: BlockId) {
        self.add(id);
    }

    fn add(&mut self, id: BlockId) {
        *self.refs.entry(id).or_insert(0) += 1;
    }
}

/// Adds every block `link` needs to `marks`. Folders reached twice are walked once.
pub async fn mark(store: &Arc<dyn BlockSource>, link: &Link, marks: &mut Marks) -> Result<()> {
    let mut pending = vec![link.clone()];
    let mut seen: HashSet<BlockId> = HashSet::new();
    if link.key().is_none() {
        // A pinned password link is recorded with its inner link; nothing else to walk.
        marks.add(link.root);
        return Ok(());
    }
    while let Some(link) = pending.pop() {
        if !seen.insert(link.root) {
            continue;
        }
        let opened = open(store, &link, None).await?;
        marks.add(opened.root);
        let mut leaves = opened.tree.leaves();
        while let Some(body) = leaves.next().await? {
            match body {
                Body::Tuples(tuples) => tuples.into_iter().flatten().for_each(|id| marks.add(id)),
                Body::Entries(entries) => {
                    for e in entries {
                        match (e.kind, e.content()) {
                            (EntryKind::File, Some(FileContent::Tuples { tuples, .. })) => {
                                tuples.iter().flatten().for_each(|id| marks.add(*id))
                            }
                            (EntryKind::File | EntryKind::Dir, _) => pending.extend(e.link()),
                            (EntryKind::Symlink, _) => {}
                        }
                    }
                }
                Body::Children(_) => {}
            }
        }
        for id in leaves.visited() {
            marks.add(*id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BlockSource, LocalStore};

    /// The store as a read-only source, as the code under test takes it.
    fn src(s: &Arc<dyn LocalStore>) -> Arc<dyn BlockSource> {
        s.clone()
    }
    use crate::crypto::Key;
    use crate::descriptor::{DirEntry, FanoutWriter, Meta};
    use crate::store::MemoryStore;

    async fn folder(store: &Arc<dyn LocalStore>, entries: Vec<DirEntry>) -> Link {
        let key = Key::random();
        let n = entries.len() as u64;
        let mut w = FanoutWriter::<DirEntry>::new(key.clone(), 4096);
        let mut nodes = Vec::new();
        for e in entries {
            nodes.extend(w.push(e).unwrap());
        }
        let (root, rest) = w
            .finish(Meta::Dir {
                name: String::new(),
                mtime: 0,
                mtime_ns: 0,
                mode: 0,
                entries: n,
            })
            .unwrap();
        nodes.extend(rest);
        for node in nodes {
            store.put(node.id, node.data).await.unwrap();
        }
        Link::new(root, key)
    }

    #[tokio::test]
    async fn shared_folders_are_walked_once() {
        let store: Arc<dyn LocalStore> = Arc::new(MemoryStore::new());
        let symlink = DirEntry {
            name: "s".into(),
            kind: EntryKind::Symlink,
            target: Some("t".into()),
            ..DirEntry::default()
        };
        let shared = folder(&store, vec![symlink]).await;
        let as_entry = |name: &str| DirEntry {
            name: name.into(),
            kind: EntryKind::Dir,
            root: Some(shared.root),
            key: Some(serde_bytes::ByteBuf::from(
                shared.key().unwrap().as_bytes().to_vec(),
            )),
            ..DirEntry::default()
        };
        let top = folder(&store, vec![as_entry("a"), as_entry("b")]).await;
        let mut marks = Marks::default();
        mark(&src(&store), &top, &mut marks).await.unwrap();
        assert_eq!(marks.refs.len(), 2);
        assert_eq!(marks.refs[&shared.root], 1, "the shared folder was walked twice");
    }
}
