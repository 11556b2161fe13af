//! The mount's virtual folders (`/.search`, `/.announce`): one table of the reserved root-level names,
//! their inodes and the inode ranges their content is numbered from, and a [`Router`] that sends
//! lookups, attributes, listings, link targets and reads to the [`Folder`] that owns an inode. It
//! knows nothing of the kernel: answers are [`VNode`]s and errnos, which the adapter translates.

use std::ops::Range;

/// What a virtual inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VNode {
    /// A folder.
    Dir,
    /// A read-only file of this size.
    File(u64),
    /// A symlink with this target.
    Symlink(String),
}

/// The content of one virtual folder, numbered within its [`Reserved::range`].
pub trait Folder: Send + Sync {
    /// The entry `name` in folder `dir` (the folder's root inode or a folder it made); by default the
    /// entry of that name in [`Folder::list`].
    fn lookup(&self, dir: u64, name: &str) -> Result<(u64, VNode), i32> {
        self.list(dir)?
            .into_iter()
            .find(|(_, n, _)| n == name)
            .map(|(i, _, v)| (i, v))
            .ok_or(libc::ENOENT)
    }
    /// What `ino` (made by this folder) is, if it still exists.
    fn node(&self, ino: u64) -> Option<VNode>;
    /// The entries of folder `dir`, without `.` and `..`.
    fn list(&self, dir: u64) -> Result<Vec<(u64, String, VNode)>, i32>;
    /// Bytes of file `ino`.
    fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, i32>;
    /// The folder that holds `ino`, for folders nested deeper than one level.
    fn parent(&self, _ino: u64) -> Option<u64> {
        None
    }
    /// Makes folder `name` in `dir` (what that means is the folder's: `/.announce` subscribes).
    fn mkdir(&self, _dir: u64, _name: &str) -> Result<(u64, VNode), i32> {
        Err(libc::EROFS)
    }
    /// Removes folder `name` from `dir`.
    fn rmdir(&self, _dir: u64, _name: &str) -> Result<(), i32> {
        Err(libc::EROFS)
    }
    /// Whether `mkdir` works in `dir` (its mode then lets the owner write).
    fn accepts_mkdir(&self, _dir: u64) -> bool {
        false
    }
}

/// A root-level name reserved for a virtual folder.
#[derive(Debug)]
pub struct Reserved {
    pub name: &'static str,
    /// The folder's own inode.
    pub root: u64,
    /// The inodes its content is numbered from (far above what the tree allocates).
    pub range: Range<u64>,
}

/// Index of `/.search` in [`TABLE`].
pub const SEARCH: usize = 0;
/// Index of `/.announce` in [`TABLE`].
pub const ANNOUNCE: usize = 1;
const BASE: u64 = 1 << 62;
const SPAN: u64 = 1 << 60;
/// Every reserved name and inode range of the mount.
pub const TABLE: [Reserved; 2] = [
    Reserved {
        name: ".search",
        root: u64::MAX - 1,
        range: BASE..BASE + SPAN,
    },
    Reserved {
        name: ".announce",
        root: u64::MAX - 2,
        range: BASE + SPAN..BASE + 2 * SPAN,
    },
];

/// The virtual folders of one mount; a reserved name without a folder shows as an empty folder.
#[derive(Default)]
pub struct Router {
    folders: [Option<Box<dyn Folder>>; 2],
}

impl Router {
    /// Serves `folder` at `TABLE[which]`.
    pub fn with(mut self, which: usize, folder: Box<dyn Folder>) -> Router {
        self.folders[which] = Some(folder);
        self
    }

    /// The inode of the reserved root-level `name`, if it is one.
    pub fn root_named(name: &[u8]) -> Option<u64> {
        TABLE.iter().find(|r| r.name.as_bytes() == name).map(|r| r.root)
    }

    /// The table entry `ino` belongs to (its root or its content).
    fn owner(ino: u64) -> Option<usize> {
        TABLE.iter().position(|r| r.root == ino || r.range.contains(&ino))
    }

    /// Whether `ino` is virtual (a reserved root or anything under one).
    pub fn is_virtual(ino: u64) -> bool {
        Router::owner(ino).is_some()
    }

    /// Whether `ino` is a reserved root.
    pub fn is_root(ino: u64) -> bool {
        TABLE.iter().any(|r| r.root == ino)
    }

    /// The folder `..` of virtual folder `dir` refers to: the mount's root for a reserved root, else
    /// what the folder says, else the reserved root.
    pub fn parent(&self, dir: u64) -> u64 {
        match Router::owner(dir) {
            Some(i) if TABLE[i].root != dir => self
                .folder(dir)
                .and_then(|f| f.parent(dir))
                .unwrap_or(TABLE[i].root),
            _ => 1,
        }
    }

    /// Makes folder `name` in virtual folder `dir`.
    pub fn mkdir(&self, dir: u64, name: &str) -> Result<(u64, VNode), i32> {
        self.folder(dir).ok_or(libc::EROFS)?.mkdir(dir, name)
    }

    /// Removes folder `name` from virtual folder `dir`.
    pub fn rmdir(&self, dir: u64, name: &str) -> Result<(), i32> {
        self.folder(dir).ok_or(libc::EROFS)?.rmdir(dir, name)
    }

    /// Whether `mkdir` works in virtual folder `dir`.
    pub fn accepts_mkdir(&self, dir: u64) -> bool {
        self.folder(dir).is_some_and(|f| f.accepts_mkdir(dir))
    }

    fn folder(&self, ino: u64) -> Option<&dyn Folder> {
        Router::owner(ino).and_then(|i| self.folders[i].as_deref())
    }

    /// The entry `name` in virtual folder `dir`.
    pub fn lookup(&self, dir: u64, name: &str) -> Result<(u64, VNode), i32> {
        self.folder(dir).ok_or(libc::ENOENT)?.lookup(dir, name)
    }

    /// What virtual inode `ino` is.
    pub fn node(&self, ino: u64) -> Option<VNode> {
        if Router::is_root(ino) {
            return Some(VNode::Dir);
        }
        self.folder(ino)?.node(ino)
    }

    /// The entries of virtual folder `dir` (without `.` and `..`).
    pub fn list(&self, dir: u64) -> Result<Vec<(u64, String, VNode)>, i32> {
        match self.folder(dir) {
            Some(f) => f.list(dir),
            None if Router::is_root(dir) => Ok(Vec::new()),
            None => Err(libc::ENOENT),
        }
    }

    /// The target of virtual symlink `ino`.
    pub fn readlink(&self, ino: u64) -> Result<String, i32> {
        match self.node(ino) {
            Some(VNode::Symlink(t)) => Ok(t),
            Some(_) => Err(libc::EINVAL),
            None => Err(libc::ENOENT),
        }
    }

    /// Bytes of virtual file `ino`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, i32> {
        self.folder(ino).ok_or(libc::ENOENT)?.read(ino, offset, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One folder with one file and one link, numbered from its range.
    struct Fixed(u64);

    impl Folder for Fixed {
        fn node(&self, ino: u64) -> Option<VNode> {
            self.list(TABLE[SEARCH].root)
                .ok()?
                .into_iter()
                .find(|(i, _, _)| *i == ino)
                .map(|(_, _, v)| v)
        }
        fn list(&self, _dir: u64) -> Result<Vec<(u64, String, VNode)>, i32> {
            Ok(vec![
                (self.0, "f".into(), VNode::File(3)),
                (self.0 + 1, "l".into(), VNode::Symlink("../x".into())),
            ])
        }
        fn read(&self, ino: u64, _offset: u64, _size: u32) -> Result<Vec<u8>, i32> {
            (ino == self.0).then(|| b"abc".to_vec()).ok_or(libc::ENOENT)
        }
    }

    #[test]
    fn the_table_is_disjoint_and_far_from_tree_inodes() {
        for (i, a) in TABLE.iter().enumerate() {
            assert!(a.range.start >= 1 << 62 && !a.range.contains(&a.root));
            for b in &TABLE[i + 1..] {
                assert!(a.range.end <= b.range.start || b.range.end <= a.range.start);
                assert!(!a.range.contains(&b.root) && a.root != b.root && a.name != b.name);
            }
        }
        assert!(!Router::is_virtual(1) && !Router::is_virtual(1 << 40));
    }

    #[test]
    fn requests_go_to_the_folder_that_owns_the_inode() {
        let first = TABLE[SEARCH].range.start;
        let r = Router::default().with(SEARCH, Box::new(Fixed(first)));
        let search = Router::root_named(b".search").unwrap();
        let announce = Router::root_named(b".announce").unwrap();
        assert_eq!(Router::root_named(b"other"), None);
        assert_eq!(r.lookup(search, "f"), Ok((first, VNode::File(3))));
        assert_eq!(r.node(first + 1), Some(VNode::Symlink("../x".into())));
        assert_eq!(r.readlink(first + 1), Ok("../x".into()));
        assert_eq!(r.readlink(first), Err(libc::EINVAL));
        assert_eq!(r.readlink(first + 7), Err(libc::ENOENT));
        assert_eq!(r.read(first, 0, 10), Ok(b"abc".to_vec()));
        assert_eq!(r.list(search).unwrap().len(), 2);
        assert_eq!((r.parent(search), r.parent(first)), (1, search));
        assert_eq!(r.mkdir(search, "x"), Err(libc::EROFS));
        assert_eq!(r.rmdir(search, "x"), Err(libc::EROFS));
        assert_eq!(r.mkdir(announce, "x"), Err(libc::EROFS));
        assert!(!r.accepts_mkdir(search) && !r.accepts_mkdir(announce));
        // A reserved name without a folder is an empty folder; its content does not exist.
        assert_eq!(r.node(announce), Some(VNode::Dir));
        assert_eq!(r.list(announce), Ok(Vec::new()));
        let inside = TABLE[ANNOUNCE].range.start;
        assert_eq!(r.lookup(announce, "x"), Err(libc::ENOENT));
        assert_eq!(r.list(inside), Err(libc::ENOENT));
        assert_eq!(r.node(inside), None);
        assert_eq!(r.read(inside, 0, 1), Err(libc::ENOENT));
    }
}
