//! The tree's records: an inode (kind, POSIX attributes, content) as stored in LMDB, the attributes handed
//! to callers, and the rules for entry names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::clock::now_ns;
use crate::{Error, Result};

/// The inode number of the tree's root folder.
pub const ROOT: u64 = 1;
/// The inode number of the tree's scratch folder: in no folder of the tree (no path, sync, search or
/// export reaches it), for content an owner shows without keeping (a mounted link) and for a receive
/// being built. It is emptied whenever the tree is opened, so nothing a crash left there survives.
pub const SCRATCH: u64 = u64::MAX;
/// Longest entry name, in bytes (as on Linux filesystems).
pub const NAME_MAX: usize = 255;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A named pipe (metadata only: what passes through it is never stored).
    Fifo,
    /// A Unix socket's name (metadata only).
    Socket,
    /// A character device node (metadata only; the mount is `nodev`, so it opens nothing).
    CharDevice,
    /// A block device node (metadata only, as above).
    BlockDevice,
}

impl Kind {
    /// Whether this is a special file: a fifo, a socket or a device, kept as metadata without content.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice
        )
    }

    /// The kind a `mknod` mode's `S_IFMT` bits ask for (a regular file, or a special file).
    pub fn from_mode(mode: u32) -> Option<Kind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => Kind::File,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDevice,
            libc::S_IFBLK => Kind::BlockDevice,
            _ => return None,
        })
    }

    /// How `tree ls` and the JSON outputs name it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "chardevice",
            Kind::BlockDevice => "blockdevice",
        }
    }
}

/// One inode as stored (CBOR) in the `tree_inodes` database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inode {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of clean content; a dirty file's size is its staging file's.
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime: i64,
    pub ctime: i64,
    pub atime: i64,
    /// Names that refer to it (folders: 2 plus subfolders).
    pub nlink: u32,
    /// The folder holding it (first name for hard-linked files).
    pub parent: u64,
    /// Sealed content of a clean file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The whole content of a small clean file, kept in the record itself (at most
    /// [`inline_max`] bytes; never together with `link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ByteBuf>,
    /// The staging file holds the content (written and not yet sealed).
    #[serde(default)]
    pub dirty: bool,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Extended attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, ByteBuf>,
    /// A device node's device number (`makedev(major, minor)`); 0 for everything else.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Inode {
    /// A fresh inode of `kind` owned by `uid:gid`, with every time set to now.
    pub fn new(kind: Kind, mode: u32, uid: u32, gid: u32, parent: u64) -> Inode {
        let now = now_ns();
        Inode {
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            size: 0,
            mtime: now,
            ctime: now,
            atime: now,
            nlink: if kind == Kind::Dir { 2 } else { 1 },
            parent,
            link: None,
            data: None,
            dirty: false,
            target: None,
            xattrs: BTreeMap::new(),
            rdev: 0,
        }
    }

    /// The content of a clean file: its link, its inline bytes, or `None` (empty, being written, or
    /// not a file).
    pub fn content(&self) -> Option<Content> {
        if self.kind != Kind::File || self.dirty {
            return None;
        }
        match (&self.link, &self.data) {
            (Some(l), _) => Some(Content::Link(l.clone())),
            (None, Some(d)) if !d.is_empty() => Some(Content::Data(d.to_vec())),
            _ => None,
        }
    }

    /// Makes `content` this clean file's content (replacing a link or inline bytes it had).
    pub fn set_content(&mut self, content: &Content) {
        self.dirty = false;
        self.size = content.size();
        (self.link, self.data) = match content {
            Content::Link(l) => (Some(l.clone()), None),
            Content::Data(d) if d.is_empty() => (None, None),
            Content::Data(d) => (None, Some(ByteBuf::from(d.clone()))),
            Content::Empty => (None, None),
        };
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        crate::descriptor::node::encode(self)
    }

    /// Decodes a stored record (of inode `ino`, named in the error).
    pub fn decode(ino: u64, bytes: &[u8]) -> Result<Inode> {
        ciborium::from_reader(bytes).map_err(|e| Error::Config {
            path: format!("state/tree_inodes/{ino}").into(),
            reason: format!("unreadable inode record: {e}"),
        })
    }
}

/// The most bytes a file may have to be kept inline in its tree record instead of sealed into blocks:
/// an eighth of a block, as a manifest keeps small files (docs/formats.md §5).
pub fn inline_max(block_size: u64) -> u64 {
    crate::transfer::inline_data_max(block_size as usize) as u64
}

/// What a clean file's content is held as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Content {
    /// Sealed into blocks, named by this link (with its key).
    Link(String),
    /// Kept whole in the tree record (a small file).
    Data(Vec<u8>),
    /// No content (an empty file).
    #[default]
    Empty,
}

impl Content {
    /// Its size in bytes, for inline bytes; a link's size is in its descriptor (0 here).
    pub fn size(&self) -> u64 {
        match self {
            Content::Data(d) => d.len() as u64,
            _ => 0,
        }
    }

    /// What identifies it for sync and the search index: the link, `data:<sha256 hex>` for inline
    /// bytes, `empty` for none.
    pub fn signature(&self) -> String {
        match self {
            Content::Link(l) => l.clone(),
            Content::Data(d) if !d.is_empty() => {
                use sha2::{Digest, Sha256};
                let h = Sha256::digest(d);
                let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
                format!("data:{hex}")
            }
            _ => "empty".into(),
        }
    }

    /// The link, if it is sealed content.
    pub fn link(&self) -> Option<&str> {
        match self {
            Content::Link(l) => Some(l),
            _ => None,
        }
    }
}

/// The attributes of an inode, as `stat` shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: i64,
    pub ctime: i64,
    pub atime: i64,
    /// Whether the content waits in staging to be sealed.
    pub dirty: bool,
    /// A device node's device number (0 otherwise).
    pub rdev: u64,
}

/// Changes asked of [`crate::tree::Tree::setattr`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<i64>,
    pub mtime: Option<i64>,
}

/// Checks that a name is at most [`NAME_MAX`] bytes (ENAMETOOLONG).
pub fn check_length(name: &str) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(Error::posix(
            libc::ENAMETOOLONG,
            format!("name of {} bytes (at most {NAME_MAX})", name.len()),
        ));
    }
    Ok(())
}

/// Checks a name a folder can hold: not empty, `.` or `..`, no `/` or NUL, at most 255 bytes.
pub fn check_name(name: &str) -> Result<()> {
    check_length(name)?;
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::posix(libc::EINVAL, format!("invalid name {name:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_records() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert_eq!(check_name(bad).unwrap_err().errno(), libc::EINVAL, "{bad:?}");
        }
        assert_eq!(
            check_name(&"x".repeat(256)).unwrap_err().errno(),
            libc::ENAMETOOLONG
        );
        check_name(&"é".repeat(127)).unwrap();
        let mut ino = Inode::new(Kind::File, 0o100644, 1, 2, ROOT);
        assert_eq!((ino.mode, ino.nlink), (0o644, 1));
        ino.xattrs.insert("user.a".into(), ByteBuf::from(vec![1, 2]));
        assert_eq!(Inode::decode(5, &ino.encode()).unwrap(), ino);
        assert!(Inode::decode(5, b"\xff")
            .unwrap_err()
            .to_string()
            .contains("tree_inodes/5"));
        assert_eq!(Inode::new(Kind::Dir, 0o755, 0, 0, ROOT).nlink, 2);
    }

    /// docs/formats.md §8: inline bytes are the CBOR byte string under `data`; a record without it (as
    /// every record before inline files) reads as no inline content; signatures are fixed.
    #[test]
    fn inline_content_in_records_and_its_signature() {
        let mut ino = Inode::new(Kind::File, 0o644, 0, 0, ROOT);
        ino.set_content(&Content::Data(b"abc".to_vec()));
        assert_eq!((ino.size, ino.link.as_deref()), (3, None));
        let bytes = ino.encode();
        // "data" (text, 4 bytes) then the byte string of 3 bytes: 0x64 'd' 'a' 't' 'a' 0x43 'a' 'b' 'c'.
        let needle = b"\x64data\x43abc";
        assert!(bytes.windows(needle.len()).any(|w| w == needle), "{bytes:02x?}");
        let back = Inode::decode(9, &bytes).unwrap();
        assert_eq!(back.content(), Some(Content::Data(b"abc".to_vec())));
        assert_eq!(
            back.content().unwrap().signature(),
            "data:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Switching to a link drops the bytes, and back; empty bytes are no content.
        ino.set_content(&Content::Link("noisefs://x#k".into()));
        assert_eq!(
            (ino.data.is_none(), ino.content()),
            (true, Some(Content::Link("noisefs://x#k".into())))
        );
        ino.set_content(&Content::Data(Vec::new()));
        assert_eq!(
            (ino.link.as_deref(), ino.data.is_none(), ino.content()),
            (None, true, None)
        );
        assert_eq!(Content::Empty.signature(), "empty");
        let old = Inode::new(Kind::File, 0o644, 0, 0, ROOT);
        let old_bytes = old.encode();
        assert!(
            !old_bytes.windows(5).any(|w| w == b"\x64data"),
            "absent when none"
        );
        assert_eq!(Inode::decode(9, &old_bytes).unwrap().data, None);
        // A dirty file has no clean content to show, whatever its record holds.
        let mut dirty = back.clone();
        dirty.dirty = true;
        assert_eq!(dirty.content(), None);
        assert_eq!(inline_max(128 * 1024), 16 * 1024);
    }

    proptest::proptest! {
        #[test]
        fn content_round_trips_through_records(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut ino = Inode::new(Kind::File, 0o600, 0, 0, ROOT);
            let c = Content::Data(data.clone());
            ino.set_content(&c);
            let back = Inode::decode(3, &ino.encode()).unwrap();
            let want = if data.is_empty() { None } else { Some(c) };
            proptest::prop_assert_eq!(back.content(), want);
            proptest::prop_assert_eq!(back.size, data.len() as u64);
        }
    }
}
