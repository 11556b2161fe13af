//! The CBOR records inside descriptor blocks: file descriptors, directory manifests, password wrappers, and
//! the interior nodes that make large ones into trees. Decoding validates everything it returns.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::block::{BlockId, BlockSize};
use crate::crypto::Key;
use crate::{Error, Result};

/// The descriptor format version written by this code.
pub const FORMAT_VERSION: u8 = 1;
/// Deepest descriptor tree accepted (root at depth 0). Bounds the work a forged tree can cause.
pub const MAX_DEPTH: usize = 8;
/// Longest entry name accepted, in bytes (as on Linux filesystems).
pub const MAX_NAME: usize = 255;

/// One descriptor block's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Format version; must be [`FORMAT_VERSION`].
    pub v: u8,
    /// Present in the root node only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The node's payload.
    pub body: Body,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A time in nanoseconds since the epoch as descriptors keep it: seconds, and nanoseconds past them.
pub fn split_time(ns: i64) -> (i64, u32) {
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
}

/// Nanoseconds since the epoch from a descriptor's seconds and nanoseconds (a hostile nanosecond
/// count is held to the second it belongs to).
pub fn join_time(secs: i64, ns: u32) -> i64 {
    secs.saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ns.min(999_999_999)))
}

/// What a link points at, described in its root node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Meta {
    /// A file: its tuples are the entries of the tree.
    File {
        name: String,
        size: u64,
        block_size: u64,
        tuple_size: u8,
        mtime: i64,
        /// Nanoseconds past `mtime`'s second (0 in descriptors written before it existed).
        #[serde(default, skip_serializing_if = "is_zero")]
        mtime_ns: u32,
        mode: u32,
        media_type: String,
    },
    /// A folder: its [`DirEntry`]s are the entries of the tree.
    Dir {
        name: String,
        mtime: i64,
        /// Nanoseconds past `mtime`'s second.
        #[serde(default, skip_serializing_if = "is_zero")]
        mtime_ns: u32,
        mode: u32,
        entries: u64,
    },
    /// A password link's wrapper: the real link, encrypted under the password's key.
    Wrapped { root: BlockId, key: ByteBuf },
}

/// A node's payload: leaf entries, or children that hold them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// Leaf of a file: one tuple per content block, `[stored, r1, r2, ...]`.
    Tuples(Vec<Vec<BlockId>>),
    /// Leaf of a folder.
    Entries(Vec<DirEntry>),
    /// Interior node: child descriptor blocks and how many leaf entries each holds.
    Children(Vec<Child>),
}

/// A child of an interior node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    pub id: BlockId,
    pub count: u64,
}

/// The kinds of folder entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    #[default]
    File,
    Dir,
    Symlink,
}

/// One entry of a folder manifest. A file is held one of three ways: a link to its own descriptor
/// (`root` + `key`), inline tuples (`tuples` + `key` + `block_size`, for files of a few blocks), or
/// inline content (`data`, for files far smaller than a block).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Seconds since the Unix epoch (for symlinks too: the link's own time).
    pub mtime: i64,
    /// Nanoseconds past `mtime`'s second.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtime_ns: u32,
    pub mode: u32,
    /// Root block of the child's descriptor (files and folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<BlockId>,
    /// The child's key (files and folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ByteBuf>,
    /// The link target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A small file's content, kept in the (encrypted) manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ByteBuf>,
    /// A file's tuples, kept in the manifest instead of a descriptor of its own; sealed under `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuples: Option<Vec<Vec<BlockId>>>,
    /// The block size of inline tuples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u64>,
    /// A file's media type, when it has no descriptor of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// How a folder entry's file content is held.
pub enum FileContent<'a> {
    /// A descriptor of its own.
    Link(crate::descriptor::Link),
    /// Bytes inline in the manifest.
    Data(&'a [u8]),
    /// Tuples inline in the manifest, sealed under `key`.
    Tuples {
        key: Key,
        tuples: &'a [Vec<BlockId>],
        block_size: u64,
    },
}

impl DirEntry {
    /// The child's link, for folders and files with a descriptor of their own.
    pub fn link(&self) -> Option<crate::descriptor::Link> {
        Some(crate::descriptor::Link::new(self.root?, self.key()?))
    }

    fn key(&self) -> Option<Key> {
        let key: [u8; 32] = self.key.as_ref()?.as_slice().try_into().ok()?;
        Some(Key::from_bytes(key))
    }

    /// How a file entry's content is held; `None` for folders, symlinks and malformed entries.
    pub fn content(&self) -> Option<FileContent<'_>> {
        if self.kind != EntryKind::File {
            return None;
        }
        match (&self.data, &self.tuples, self.root) {
            (Some(d), None, None) => Some(FileContent::Data(d)),
            (None, Some(t), None) => Some(FileContent::Tuples {
                key: self.key()?,
                tuples: t,
                block_size: self.block_size?,
            }),
            (None, None, Some(_)) => self.link().map(FileContent::Link),
            _ => None,
        }
    }
}

/// Encodes a node as CBOR.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and our types always serialize.
    if let Err(e) = ciborium::into_writer(value, &mut out) {
        unreachable!("CBOR encoding into memory failed: {e}");
    }
    out
}

/// Decodes and validates a node read from block `id`. `is_root` says where in the tree it sits.
pub fn decode(id: &BlockId, bytes: &[u8], is_root: bool) -> Result<Node> {
    let bad = |reason: String| Error::Descriptor { id: *id, reason };
    let node: Node = ciborium::from_reader(bytes).map_err(|e| bad(format!("not a descriptor: {e}")))?;
    if node.v != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} (this noisefs reads version {FORMAT_VERSION}); upgrade noisefs",
            node.v
        )));
    }
    match (&node.meta, is_root) {
        (None, true) => return Err(bad("the root node has no metadata".into())),
        (Some(_), false) => return Err(bad("an inner node carries metadata".into())),
        _ => {}
    }
    match (&node.meta, &node.body) {
        (
            Some(Meta::File {
                block_size,
                tuple_size,
                size,
                ..
            }),
            body,
        ) => {
            let bs = usize::try_from(*block_size)
                .ok()
                .and_then(|b| BlockSize::new(b).ok());
            if bs.is_none() {
                return Err(bad(format!("block size {block_size} is not allowed")));
            }
            if !(2..=8).contains(tuple_size) {
                return Err(bad(format!("tuple size {tuple_size} is not allowed")));
            }
            if matches!(body, Body::Entries(_)) {
                return Err(bad("a file descriptor holds folder entries".into()));
            }
            if *size > (1u64 << 50) {
                return Err(bad(format!("file size {size} is implausible")));
            }
        }
        (Some(Meta::Dir { name, .. }), body) => {
            if !name.is_empty() {
                check_name(name)?;
            }
            if matches!(body, Body::Tuples(_)) {
                return Err(bad("a folder manifest holds file tuples".into()));
            }
        }
        (Some(Meta::Wrapped { key, .. }), _) => {
            if key.len() != 32 {
                return Err(bad("a password wrapper holds a key of the wrong length".into()));
            }
        }
        (None, _) => {}
    }
    if let Body::Entries(entries) = &node.body {
        for e in entries {
            check_entry(e)?;
        }
    }
    check_shape(id, &node, is_root)?;
    Ok(node)
}

/// Refuses tree shapes no writer makes and that would let a few blocks stand for an endless tree: an
/// empty node below the root, a child that holds nothing or appears twice in its node, and a root whose
/// entries differ from what its metadata declares (a file's block count, a folder's entry count). With
/// [`crate::descriptor::fanout::Leaves`] refusing a node reached twice, a walk is bounded by the
/// declared size.
fn check_shape(id: &BlockId, node: &Node, is_root: bool) -> Result<()> {
    let bad = |reason: String| Error::Descriptor { id: *id, reason };
    let held = match &node.body {
        Body::Children(children) => {
            let mut ids = std::collections::HashSet::with_capacity(children.len());
            let mut total = 0u64;
            for c in children {
                if c.count == 0 {
                    return Err(bad(format!("child {} holds no entries", c.id)));
                }
                if !ids.insert(c.id) {
                    return Err(bad(format!("child {} appears twice in one node", c.id)));
                }
                total = total
                    .checked_add(c.count)
                    .ok_or_else(|| bad("child counts overflow".into()))?;
            }
            total
        }
        Body::Tuples(t) => t.len() as u64,
        Body::Entries(e) => e.len() as u64,
    };
    if !is_root && held == 0 {
        return Err(bad("an empty node below the root".into()));
    }
    let declared = match &node.meta {
        Some(Meta::File { size, block_size, .. }) => Some(size.div_ceil((*block_size).max(1))),
        Some(Meta::Dir { entries, .. }) => Some(*entries),
        _ => None,
    };
    match declared {
        Some(n) if n != held => Err(bad(format!("it declares {n} entries but holds {held}"))),
        _ => Ok(()),
    }
}

/// Refuses names that could escape a folder or that no filesystem can hold.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Error::UnsafeName {
        name: name.chars().take(300).collect(),
        reason: reason.into(),
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name == "." || name == ".." {
        return Err(bad("refers to a folder itself or its parent"));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(bad("contains a path separator"));
    }
    if name.contains('\0') {
        return Err(bad("contains NUL"));
    }
    if name.len() > MAX_NAME {
        return Err(bad("longer than 255 bytes"));
    }
    Ok(())
}

fn check_entry(e: &DirEntry) -> Result<()> {
    check_name(&e.name)?;
    let bad = |reason: &str| Error::UnsafeName {
        name: e.name.clone(),
        reason: reason.into(),
    };
    match e.kind {
        EntryKind::Symlink => {
            let t = e
                .target
                .as_deref()
                .ok_or_else(|| bad("a symlink without a target"))?;
            if t.is_empty() || t.contains('\0') || t.len() > 4096 {
                return Err(bad("a symlink target that is empty, too long or contains NUL"));
            }
        }
        EntryKind::Dir => {
            if e.link().is_none() || e.data.is_some() || e.tuples.is_some() {
                return Err(bad("a folder entry without a valid link"));
            }
        }
        EntryKind::File => match e.content() {
            None => return Err(bad("a file entry without a valid link, tuples or content")),
            Some(FileContent::Link(_)) => {}
            Some(FileContent::Data(d)) => {
                if d.len() as u64 != e.size {
                    return Err(bad("inline content whose length differs from the entry's size"));
                }
            }
            Some(FileContent::Tuples {
                tuples, block_size, ..
            }) => {
                let bs = usize::try_from(block_size)
                    .ok()
                    .and_then(|b| BlockSize::new(b).ok());
                let Some(bs) = bs else {
                    return Err(bad("inline tuples with a block size that is not allowed"));
                };
                if tuples.len() as u64 != e.size.div_ceil(bs.get() as u64) {
                    return Err(bad("inline tuples that do not match the entry's size"));
                }
                let width = tuples.first().map_or(3, Vec::len);
                if !(2..=8).contains(&width) || tuples.iter().any(|t| t.len() != width) {
                    return Err(bad("inline tuples of unequal or disallowed width"));
                }
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> BlockId {
        BlockId::of(b"node")
    }

    fn file_meta() -> Meta {
        Meta::File {
            name: "a.txt".into(),
            size: 5,
            block_size: 4096,
            tuple_size: 3,
            mtime: 0,
            mtime_ns: 0,
            mode: 0o644,
            media_type: "text/plain".into(),
        }
    }

    fn entry(name: &str) -> DirEntry {
        DirEntry {
            name: name.into(),
            kind: EntryKind::File,
            size: 1,
            mtime: 0,
            mode: 0o644,
            root: Some(id()),
            key: Some(ByteBuf::from(vec![1u8; 32])),
            ..DirEntry::default()
        }
    }

    #[test]
    fn round_trips_each_kind() {
        let nodes = [
            Node {
                v: 1,
                meta: Some(file_meta()),
                body: Body::Tuples(vec![vec![id(); 3]]),
            },
            Node {
                v: 1,
                meta: Some(Meta::Dir {
                    name: "d".into(),
                    mtime: 1,
                    mtime_ns: 0,
                    mode: 0o755,
                    entries: 1,
                }),
                body: Body::Entries(vec![entry("x")]),
            },
            Node {
                v: 1,
                meta: Some(Meta::Wrapped {
                    root: id(),
                    key: ByteBuf::from(vec![2u8; 32]),
                }),
                body: Body::Children(vec![]),
            },
        ];
        for n in nodes {
            assert_eq!(decode(&id(), &encode(&n), true).unwrap(), n);
        }
        let inner = Node {
            v: 1,
            meta: None,
            body: Body::Children(vec![Child { id: id(), count: 3 }]),
        };
        assert_eq!(decode(&id(), &encode(&inner), false).unwrap(), inner);
    }

    #[test]
    fn refuses_structural_lies() {
        let cases = [
            (
                Node {
                    v: 2,
                    meta: Some(file_meta()),
                    body: Body::Tuples(vec![]),
                },
                true,
                "version",
            ),
            (
                Node {
                    v: 1,
                    meta: None,
                    body: Body::Tuples(vec![]),
                },
                true,
                "no metadata",
            ),
            (
                Node {
                    v: 1,
                    meta: Some(file_meta()),
                    body: Body::Tuples(vec![]),
                },
                false,
                "inner node",
            ),
            (
                Node {
                    v: 1,
                    meta: Some(file_meta()),
                    body: Body::Entries(vec![]),
                },
                true,
                "folder entries",
            ),
            (
                Node {
                    v: 1,
                    meta: Some(Meta::Dir {
                        name: "d".into(),
                        mtime: 0,
                        mtime_ns: 0,
                        mode: 0,
                        entries: 0,
                    }),
                    body: Body::Tuples(vec![]),
                },
                true,
                "file tuples",
            ),
            (
                Node {
                    v: 1,
                    meta: Some(Meta::Wrapped {
                        root: id(),
                        key: ByteBuf::from(vec![1u8; 3]),
                    }),
                    body: Body::Children(vec![]),
                },
                true,
                "wrong length",
            ),
        ];
        for (node, root, want) in cases {
            let err = decode(&id(), &encode(&node), root).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
        let mut m = file_meta();
        if let Meta::File { block_size, .. } = &mut m {
            *block_size = 1000;
        }
        let n = Node {
            v: 1,
            meta: Some(m),
            body: Body::Tuples(vec![]),
        };
        assert!(decode(&id(), &encode(&n), true).is_err());
        let mut m = file_meta();
        if let Meta::File { tuple_size, .. } = &mut m {
            *tuple_size = 1;
        }
        let n = Node {
            v: 1,
            meta: Some(m),
            body: Body::Tuples(vec![]),
        };
        assert!(decode(&id(), &encode(&n), true).is_err());
        assert!(decode(&id(), b"\xff\x00garbage", true).is_err());
    }

    #[test]
    fn refuses_shapes_that_stand_for_an_endless_tree() {
        let other = BlockId::of(b"other");
        let inner = |children: Vec<Child>| Node {
            v: 1,
            meta: None,
            body: Body::Children(children),
        };
        let cases = [
            (
                inner(vec![Child { id: id(), count: 2 }, Child { id: id(), count: 2 }]),
                false,
                "appears twice",
            ),
            (
                inner(vec![Child { id: id(), count: 0 }]),
                false,
                "holds no entries",
            ),
            (inner(vec![]), false, "empty node"),
            (
                Node {
                    v: 1,
                    meta: None,
                    body: Body::Tuples(vec![]),
                },
                false,
                "empty node",
            ),
            (
                inner(vec![
                    Child {
                        id: id(),
                        count: u64::MAX,
                    },
                    Child { id: other, count: 1 },
                ]),
                false,
                "overflow",
            ),
            (
                // A 5-byte file is one block: a root claiming more is a lie.
                Node {
                    v: 1,
                    meta: Some(file_meta()),
                    body: Body::Children(vec![Child {
                        id: id(),
                        count: 1 << 40,
                    }]),
                },
                true,
                "declares 1 entries but holds 1099511627776",
            ),
            (
                Node {
                    v: 1,
                    meta: Some(Meta::Dir {
                        name: String::new(),
                        mtime: 0,
                        mtime_ns: 0,
                        mode: 0,
                        entries: 2,
                    }),
                    body: Body::Entries(vec![entry("x")]),
                },
                true,
                "declares 2 entries but holds 1",
            ),
        ];
        for (node, root, want) in cases {
            let err = decode(&id(), &encode(&node), root).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
        // What writers make still decodes: an empty file, an empty folder.
        let mut empty = file_meta();
        if let Meta::File { size, .. } = &mut empty {
            *size = 0;
        }
        let n = Node {
            v: 1,
            meta: Some(empty),
            body: Body::Tuples(vec![]),
        };
        assert!(decode(&id(), &encode(&n), true).is_ok());
    }

    fn folder_of(e: DirEntry) -> Node {
        let meta = Meta::Dir {
            name: String::new(),
            mtime: 0,
            mtime_ns: 0,
            mode: 0,
            entries: 1,
        };
        Node {
            v: 1,
            meta: Some(meta),
            body: Body::Entries(vec![e]),
        }
    }

    #[test]
    fn refuses_hostile_names() {
        for name in ["", ".", "..", "a/b", "a\\b", "nul\0", &"x".repeat(256)] {
            let err = decode(&id(), &encode(&folder_of(entry(name))), true).unwrap_err();
            assert!(matches!(err, Error::UnsafeName { .. }), "{name:?}: {err}");
        }
        let mut no_link = entry("ok");
        no_link.key = None;
        let mut no_target = entry("ok");
        no_target.kind = EntryKind::Symlink;
        let mut nul_target = no_target.clone();
        nul_target.target = Some("a\0b".into());
        for e in [no_link, no_target, nul_target] {
            assert!(decode(&id(), &encode(&folder_of(e)), true).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&id(), &bytes, true);
            let _ = decode(&id(), &bytes, false);
        }

        #[test]
        fn valid_entries_round_trip(
            name in "[^/\\\\\\x00]{1,60}",
            size in 0u64..1_000_000,
            mtime in proptest::prelude::any::<i64>(),
            mode in 0u32..0o7777,
        ) {
            proptest::prop_assume!(name != "." && name != ".." && name.len() <= MAX_NAME);
            let e = DirEntry { name, size, mtime, mode, ..entry("x") };
            let n = folder_of(e);
            proptest::prop_assert_eq!(decode(&id(), &encode(&n), true).unwrap(), n);
        }
    }

    #[test]
    fn inline_files_must_be_consistent() {
        let inline = |data: Option<&[u8]>, tuples: Option<Vec<Vec<BlockId>>>, bs: Option<u64>, size: u64| {
            let e = DirEntry {
                name: "f".into(),
                size,
                root: None,
                data: data.map(|d| ByteBuf::from(d.to_vec())),
                tuples,
                block_size: bs,
                ..entry("f")
            };
            decode(&id(), &encode(&folder_of(e)), true)
        };
        let t = |n: usize, w: usize| Some(vec![vec![id(); w]; n]);
        assert!(inline(Some(b"abc"), None, None, 3).is_ok());
        assert!(inline(Some(b"abc"), None, None, 4).is_err());
        assert!(inline(None, t(2, 3), Some(4096), 5000).is_ok());
        assert!(inline(None, t(2, 3), Some(4096), 9000).is_err());
        assert!(inline(None, t(2, 3), Some(1000), 1500).is_err());
        assert!(inline(None, t(2, 9), Some(4096), 5000).is_err());
        assert!(inline(None, Some(vec![vec![id(); 3], vec![id(); 2]]), Some(4096), 5000).is_err());
        assert!(inline(Some(b"x"), t(1, 3), Some(4096), 1).is_err());
        assert!(inline(None, t(1, 3), None, 1).is_err());
        // A folder entry cannot carry content.
        let mut d = entry("d");
        d.kind = EntryKind::Dir;
        d.data = Some(ByteBuf::from(vec![1]));
        assert!(decode(&id(), &encode(&folder_of(d)), true).is_err());
    }
}
