//! The tree: NoiseFS's mutable namespace (what the mount shows). Folders, files and symlinks with inode
//! numbers and POSIX attributes live in LMDB (`tree_inodes`: inode -> record, `tree_dirents`:
//! (parent, name) -> inode), each change one small transaction. A file's content is a sealed link, its
//! bytes inline in its record when it is small ([`inline_max`]), or while written a staging file that
//! the engine seals later (write-back). Every operation has POSIX
//! semantics and fails with an errno-carrying [`Error::Posix`], so the FUSE driver only translates.

pub mod copy;
mod readahead;
mod record;
mod staging;

pub use readahead::{Cursor, READ_AHEAD};
pub use record::{
    check_length, check_name, inline_max, Attr, Content, Inode, Kind, SetAttr, NAME_MAX, ROOT, SCRATCH,
};
pub use staging::Staging;

/// The `/a/b` form of a tree path written `a/b/`, `/a//b`, `./a` and the like.
pub fn normalize_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, Mutex};

use heed::byteorder::BE;
use heed::types::{Bytes, U64};
use heed::{Database, RoTxn, RwTxn};

use crate::clock::now_ns;
use crate::descriptor::Link;
use crate::error::IoContext;
use crate::hold::Hold;
use crate::queue::Queue;
use crate::repo::Repo;
use crate::transfer::{self, Opened};
use crate::{Error, Result};

/// The queue kind of "seal this inode's staging file".
pub const SEAL: &str = "seal";
/// The extended attribute that shows a clean file's link (read-only).
pub const LINK_XATTR: &str = "user.noisefs.link";
/// The extended attribute that says how a file's content is held (read-only): `sealed`, `inline`,
/// `empty`, or `staged` (written and not sealed yet).
pub const STATE_XATTR: &str = "user.noisefs.state";
/// Bytes of opened content blocks kept for readers.
const PLAIN_CACHE_BYTES: u64 = 64 << 20;
/// Key in `tree_inodes` holding the next inode number (inode 0 does not exist).
const NEXT_INO: u64 = 0;

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    pub name: String,
    pub ino: u64,
    pub kind: Kind,
}

/// How [`Tree::rename`] treats an existing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RenameMode {
    /// Replace it (POSIX `rename`).
    #[default]
    Replace,
    /// Fail with EEXIST (`RENAME_NOREPLACE`).
    NoReplace,
    /// Swap the two (`RENAME_EXCHANGE`).
    Exchange,
}

/// Filesystem totals for `statfs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FsStats {
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: u64,
}

/// What the tree's clean files hold ([`Tree::holdings`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holdings {
    /// Files kept inline in their records, and their bytes.
    pub inline_files: u64,
    pub inline_bytes: u64,
    /// Each sealed file's link and size.
    pub sealed: Vec<(String, u64)>,
}

/// What sealing an inode came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// The content is sealed under this link and the staging file is gone.
    Done(String),
    /// The content (this many bytes) is kept inline in the record and the staging file is gone.
    Inline(u64),
    /// Nothing to seal (clean, or gone).
    Clean,
    /// Written or open for writing meanwhile: seal again later.
    Busy,
}

#[derive(Default)]
struct Handles {
    /// Open handles per inode: (readers + writers, writers).
    open: HashMap<u64, (u32, u32)>,
    /// Write generation per inode, bumped by every change of staged bytes.
    gens: HashMap<u64, u64>,
}

/// The tree of one repository.
pub struct Tree {
    repo: Arc<Repo>,
    inodes: Database<U64<BE>, Bytes>,
    dirents: Database<Bytes, U64<BE>>,
    staging: Staging,
    queue: Queue,
    handles: Mutex<Handles>,
    opened: Mutex<HashMap<String, Arc<Opened>>>,
    /// Opened (decrypted) content blocks of sealed files, by (descriptor root, block index): what
    /// sequential readers and read-ahead share. Sealed content never changes, so entries never go stale.
    plain: moka::future::Cache<(crate::block::BlockId, u64), Arc<Vec<u8>>>,
    materialize: tokio::sync::Mutex<()>,
    changes: tokio::sync::watch::Sender<u64>,
    /// How long after the last close or fsync a dirty file waits before sealing (ms).
    writeback_delay_ms: i64,
    /// Tests set it to fail the next change just before its commit.
    #[cfg(test)]
    pub(crate) crash_before_commit: std::sync::atomic::AtomicBool,
}

impl Tree {
    /// Opens the tree of `repo`, creating the root folder on first use and queueing a seal for every
    /// file left dirty by an earlier run.
    pub fn new(repo: Arc<Repo>) -> Result<Tree> {
        let state = repo.state();
        let tree = Tree {
            inodes: state.database("tree_inodes")?,
            dirents: state.database("tree_dirents")?,
            staging: Staging::open(repo.root().join("staging"))?,
            queue: Queue::open(state)?,
            handles: Mutex::new(Handles::default()),
            opened: Mutex::new(HashMap::new()),
            plain: moka::future::Cache::builder()
                .max_capacity(PLAIN_CACHE_BYTES)
                .weigher(|_: &(crate::block::BlockId, u64), v: &Arc<Vec<u8>>| {
                    u32::try_from(v.len()).unwrap_or(u32::MAX)
                })
                .build(),
            materialize: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::channel(0).0,
            writeback_delay_ms: repo.config().writeback_delay_ms as i64,
            #[cfg(test)]
            crash_before_commit: std::sync::atomic::AtomicBool::new(false),
            repo,
        };
        tree.recover()?;
        tree.clear_scratch()?;
        Ok(tree)
    }

    /// Removes whatever an earlier run left in the scratch folder (one owner at a time holds the
    /// repository, so nothing there is in use when the tree is opened).
    fn clear_scratch(&self) -> Result<()> {
        for e in self.readdir(SCRATCH)? {
            tracing::debug!(name = %e.name, "removing what an earlier run left in the scratch folder");
            self.remove_all(SCRATCH, &e.name)?;
        }
        Ok(())
    }

    /// A new folder in the scratch folder ([`SCRATCH`]) named `label-<random>`: its inode and name.
    pub fn mkdir_scratch(&self, label: &str, mode: u32, uid: u32, gid: u32) -> Result<(u64, String)> {
        let name = format!("{label}-{:016x}", rand::random::<u64>());
        let ino = self.mkdir(SCRATCH, &name, mode, uid, gid)?.ino;
        Ok((ino, name))
    }

    /// Creates the root, drops orphans (unlinked while open when the last run ended), removes staging
    /// files that no dirty inode owns, and queues a seal for every dirty file.
    fn recover(&self) -> Result<()> {
        let mut wtxn = self.wtxn()?;
        if self.inodes.get(&wtxn, &ROOT)?.is_none() {
            let root = Inode::new(Kind::Dir, 0o755, unsafe_uid(), unsafe_gid(), ROOT);
            self.inodes.put(&mut wtxn, &ROOT, &root.encode())?;
            self.inodes.put(&mut wtxn, &NEXT_INO, &(ROOT + 1).to_le_bytes())?;
        }
        if self.inodes.get(&wtxn, &SCRATCH)?.is_none() {
            let scratch = Inode::new(Kind::Dir, 0o700, unsafe_uid(), unsafe_gid(), SCRATCH);
            self.inodes.put(&mut wtxn, &SCRATCH, &scratch.encode())?;
        }
        let mut orphans = Vec::new();
        let mut dirty = Vec::new();
        let mut lost = Vec::new();
        for item in self.inodes.iter(&wtxn)? {
            let (ino, bytes) = item?;
            if ino == NEXT_INO {
                continue;
            }
            let rec = Inode::decode(ino, bytes)?;
            if rec.nlink == 0 {
                orphans.push(ino);
            } else if rec.dirty && (self.staging.path(ino).exists() || self.staging.restore(ino)?) {
                // (A change that retired the staged bytes was lost in the crash: they are back.)
                dirty.push(ino);
            } else if rec.dirty {
                // Staged but never fsynced, and lost with the machine: the sealed content stands.
                lost.push((ino, rec));
            }
        }
        for ino in &orphans {
            self.inodes.delete(&mut wtxn, ino)?;
        }
        for (ino, mut rec) in lost {
            tracing::warn!(
                ino,
                "staged bytes lost in a crash before any fsync; keeping the last sealed content"
            );
            rec.dirty = false;
            self.put(&mut wtxn, ino, &rec)?;
        }
        for ino in &dirty {
            self.queue
                .push_in(&mut wtxn, SEAL, &seal_key(*ino), &ino.to_le_bytes(), 0)?;
        }
        wtxn.commit()?;
        for ino in self.staging.inodes()? {
            if !dirty.contains(&ino) {
                self.staging.remove(ino);
            }
        }
        self.sync()
    }

    /// Makes every committed change durable, then deletes the staged bytes those changes replaced.
    pub fn sync(&self) -> Result<()> {
        self.repo.record_fetched()?;
        self.repo.state().sync()?;
        self.staging.purge_retired()
    }

    /// The repository.
    pub fn repo(&self) -> &Arc<Repo> {
        &self.repo
    }

    /// The operation queue the tree pushes seals to.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// A receiver that sees a new number after every change of the tree.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn wtxn(&self) -> Result<RwTxn<'_>> {
        Ok(self.repo.state().env().write_txn()?)
    }

    fn read_txn(&self) -> Result<RoTxn<'_, heed::WithTls>> {
        Ok(self.repo.state().env().read_txn()?)
    }

    fn get(&self, txn: &RoTxn, ino: u64) -> Result<Inode> {
        match self.inodes.get(txn, &ino)? {
            Some(bytes) if ino != NEXT_INO => Inode::decode(ino, bytes),
            _ => Err(Error::posix(libc::ENOENT, format!("inode {ino}"))),
        }
    }

    fn put(&self, txn: &mut RwTxn, ino: u64, rec: &Inode) -> Result<()> {
        Ok(self.inodes.put(txn, &ino, &rec.encode())?)
    }

    fn child(&self, txn: &RoTxn, parent: u64, name: &str) -> Result<Option<u64>> {
        Ok(self.dirents.get(txn, &dirent_key(parent, name))?)
    }

    fn dir(&self, txn: &RoTxn, ino: u64) -> Result<Inode> {
        let rec = self.get(txn, ino)?;
        if rec.kind != Kind::Dir {
            return Err(Error::posix(libc::ENOTDIR, format!("inode {ino}")));
        }
        Ok(rec)
    }

    fn alloc(&self, txn: &mut RwTxn) -> Result<u64> {
        let next = self
            .inodes
            .get(txn, &NEXT_INO)?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(ROOT + 1);
        self.inodes.put(txn, &NEXT_INO, &(next + 1).to_le_bytes())?;
        Ok(next)
    }

    fn attr_of(&self, ino: u64, rec: &Inode) -> Attr {
        let mut attr = Attr {
            ino,
            kind: rec.kind,
            size: rec.size,
            mode: rec.mode,
            uid: rec.uid,
            gid: rec.gid,
            nlink: rec.nlink,
            mtime: rec.mtime,
            ctime: rec.ctime,
            atime: rec.atime,
            dirty: rec.dirty,
            rdev: rec.rdev,
        };
        if rec.kind == Kind::Symlink {
            attr.size = rec.target.as_ref().map_or(0, |t| t.len() as u64);
        }
        if rec.dirty {
            // The staging file is the truth for a dirty file's size and modification time.
            if let Ok(m) = std::fs::metadata(self.staging.path(ino)) {
                attr.size = m.len();
                attr.mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
                attr.ctime = attr.ctime.max(m.ctime() * 1_000_000_000 + m.ctime_nsec());
            }
        }
        attr
    }

    /// The entry `name` in folder `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> Result<Attr> {
        // A name no folder can hold is too long, not missing (POSIX: ENAMETOOLONG).
        check_length(name)?;
        let txn = self.read_txn()?;
        self.dir(&txn, parent)?;
        let ino = self
            .child(&txn, parent, name)?
            .ok_or_else(|| Error::posix(libc::ENOENT, format!("no entry {name:?}")))?;
        let rec = self.get(&txn, ino)?;
        Ok(self.attr_of(ino, &rec))
    }

    /// The attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let txn = self.read_txn()?;
        let rec = self.get(&txn, ino)?;
        Ok(self.attr_of(ino, &rec))
    }

    /// The inode at `path` (`/` separated, from the root; `.`-free).
    pub fn resolve(&self, path: &str) -> Result<u64> {
        let txn = self.read_txn()?;
        let mut ino = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            self.dir(&txn, ino)
                .map_err(|e| Error::posix(e.errno(), format!("tree path {path}")))?;
            ino = self
                .child(&txn, ino, part)?
                .ok_or_else(|| Error::posix(libc::ENOENT, format!("tree path {path}")))?;
        }
        Ok(ino)
    }

    /// Splits `path` into its parent folder's inode and its last name.
    pub fn resolve_parent<'p>(&self, path: &'p str) -> Result<(u64, &'p str)> {
        let trimmed = path.trim_end_matches('/');
        let (dir, name) = match trimmed.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", trimmed),
        };
        if name.is_empty() {
            return Err(Error::posix(
                libc::EINVAL,
                format!("tree path {path:?} names the root"),
            ));
        }
        Ok((self.resolve(dir)?, name))
    }

    /// The path of `ino` from the root (`/` for the root).
    pub fn path_of(&self, ino: u64) -> Result<String> {
        let txn = self.read_txn()?;
        let mut parts = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            if cur == SCRATCH {
                return Err(Error::posix(
                    libc::ENOENT,
                    format!("inode {ino} is in no folder of the tree"),
                ));
            }
            let rec = self.get(&txn, cur)?;
            let name = self
                .entries_in(&txn, rec.parent)?
                .into_iter()
                .find(|e| e.ino == cur)
                .map(|e| e.name)
                .ok_or_else(|| Error::posix(libc::ENOENT, format!("inode {ino} has no name")))?;
            parts.push(name);
            cur = rec.parent;
            if parts.len() > 4096 {
                return Err(Error::posix(libc::ELOOP, format!("inode {ino}: folder cycle")));
            }
        }
        parts.reverse();
        Ok(format!("/{}", parts.join("/")))
    }

    fn entries_in(&self, txn: &RoTxn, dir: u64) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for item in self.dirents.prefix_iter(txn, &dir.to_be_bytes())? {
            let (k, ino) = item?;
            let name = String::from_utf8_lossy(&k[8..]).into_owned();
            let kind = self.get(txn, ino)?.kind;
            out.push(Entry { name, ino, kind });
        }
        Ok(out)
    }

    /// The entries of folder `ino`, in name order (bytewise).
    pub fn readdir(&self, ino: u64) -> Result<Vec<Entry>> {
        let txn = self.read_txn()?;
        self.dir(&txn, ino)?;
        self.entries_in(&txn, ino)
    }

    /// Adds a new inode `rec` as `name` in `parent`; EEXIST when the name is taken. In a setgid folder
    /// the new entry takes the folder's group, and a new subfolder is setgid too (as on ext4).
    fn add(&self, parent: u64, name: &str, mut rec: Inode) -> Result<Attr> {
        check_name(name)?;
        let mut txn = self.wtxn()?;
        let mut dir = self.dir(&txn, parent)?;
        if self.child(&txn, parent, name)?.is_some() {
            return Err(Error::posix(libc::EEXIST, format!("{name:?}")));
        }
        if dir.mode & libc::S_ISGID != 0 {
            rec.gid = dir.gid;
            if rec.kind == Kind::Dir {
                rec.mode |= libc::S_ISGID;
            }
        }
        let ino = self.alloc(&mut txn)?;
        rec.parent = parent;
        self.dirents.put(&mut txn, &dirent_key(parent, name), &ino)?;
        self.put(&mut txn, ino, &rec)?;
        if rec.kind == Kind::Dir {
            dir.nlink += 1;
        }
        touch(&mut dir);
        self.put(&mut txn, parent, &dir)?;
        txn.commit()?;
        self.changed();
        Ok(self.attr_of(ino, &rec))
    }

    /// Creates an empty file.
    pub fn create(&self, parent: u64, name: &str, mode: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.add(parent, name, Inode::new(Kind::File, mode, uid, gid, parent))
    }

    /// Creates a folder.
    pub fn mkdir(&self, parent: u64, name: &str, mode: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.add(parent, name, Inode::new(Kind::Dir, mode, uid, gid, parent))
    }

    /// Creates a special file (fifo, socket, character or block device; `rdev` for a device) or, for
    /// `Kind::File`, an empty file. Special files are metadata: they have no content to read or write.
    #[allow(clippy::too_many_arguments)]
    pub fn mknod(
        &self,
        parent: u64,
        name: &str,
        kind: Kind,
        mode: u32,
        rdev: u64,
        uid: u32,
        gid: u32,
    ) -> Result<Attr> {
        if !(kind == Kind::File || kind.is_special()) {
            return Err(Error::posix(libc::EINVAL, format!("mknod of a {}", kind.name())));
        }
        let mut rec = Inode::new(kind, mode, uid, gid, parent);
        if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            rec.rdev = rdev;
        }
        self.add(parent, name, rec)
    }

    /// Creates a symlink to `target`.
    pub fn symlink(&self, parent: u64, name: &str, target: &str, uid: u32, gid: u32) -> Result<Attr> {
        if target.is_empty() || target.len() > 4095 || target.contains('\0') {
            return Err(Error::posix(libc::EINVAL, format!("symlink target {target:?}")));
        }
        let mut rec = Inode::new(Kind::Symlink, 0o777, uid, gid, parent);
        rec.target = Some(target.to_string());
        self.add(parent, name, rec)
    }

    /// Creates a file whose content is the sealed `link` (size `size`), or replaces the content of the
    /// file at that name. With `expect`, replaces only if the file's [`Tree::signature`] is still that.
    #[allow(clippy::too_many_arguments)]
    pub fn put_link(
        &self,
        parent: u64,
        name: &str,
        link: &str,
        size: u64,
        mtime: i64,
        mode: u32,
        expect: Option<&str>,
    ) -> Result<u64> {
        let content = Content::Link(link.to_string());
        self.put_content(parent, name, &content, size, mtime, mode, expect)
    }

    /// As [`Tree::put_link`], for any content: inline bytes (their length is the size) longer than
    /// [`inline_max`] are refused with EFBIG.
    #[allow(clippy::too_many_arguments)]
    pub fn put_content(
        &self,
        parent: u64,
        name: &str,
        content: &Content,
        size: u64,
        mtime: i64,
        mode: u32,
        expect: Option<&str>,
    ) -> Result<u64> {
        if let Content::Data(d) = content {
            let max = self.inline_max();
            if d.len() as u64 > max {
                return Err(Error::posix(
                    libc::EFBIG,
                    format!(
                        "{name:?}: {} bytes cannot be kept inline (at most {max})",
                        d.len()
                    ),
                ));
            }
        }
        let size = match content {
            Content::Link(_) => size,
            _ => content.size(),
        };
        check_name(name)?;
        let mut txn = self.wtxn()?;
        let mut dir = self.dir(&txn, parent)?;
        let ino = match self.child(&txn, parent, name)? {
            Some(ino) => {
                let mut rec = self.get(&txn, ino)?;
                if rec.kind != Kind::File {
                    return Err(Error::posix(libc::EISDIR, format!("{name:?} is not a file")));
                }
                if let Some(sig) = expect {
                    if signature(&rec) != sig {
                        return Err(Error::posix(libc::EAGAIN, format!("{name:?} changed meanwhile")));
                    }
                }
                if self.open_writers(ino) > 0 {
                    return Err(Error::posix(libc::EBUSY, format!("{name:?} is open for writing")));
                }
                rec.set_content(content);
                rec.size = size;
                rec.mtime = mtime;
                rec.mode = mode & 0o7777;
                rec.ctime = now_ns();
                self.put(&mut txn, ino, &rec)?;
                ino
            }
            None => {
                if expect.is_some_and(|s| !s.is_empty()) {
                    return Err(Error::posix(
                        libc::EAGAIN,
                        format!("{name:?} was removed meanwhile"),
                    ));
                }
                let ino = self.alloc(&mut txn)?;
                let mut rec = Inode::new(Kind::File, mode, dir.uid, dir.gid, parent);
                rec.set_content(content);
                rec.size = size;
                rec.mtime = mtime;
                self.dirents.put(&mut txn, &dirent_key(parent, name), &ino)?;
                self.put(&mut txn, ino, &rec)?;
                touch(&mut dir);
                self.put(&mut txn, parent, &dir)?;
                ino
            }
        };
        self.crash_point()?;
        txn.commit()?;
        // The staged bytes this replaced go once the new link is durable.
        self.staging.retire(ino);
        self.forget_gen(ino);
        self.changed();
        Ok(ino)
    }

    /// A symlink's target.
    pub fn readlink(&self, ino: u64) -> Result<String> {
        let txn = self.read_txn()?;
        self.get(&txn, ino)?
            .target
            .ok_or_else(|| Error::posix(libc::EINVAL, format!("inode {ino} is not a symlink")))
    }

    /// Adds the name `name` in `parent` for file `ino` (a hard link).
    pub fn link(&self, ino: u64, parent: u64, name: &str) -> Result<Attr> {
        check_name(name)?;
        let mut txn = self.wtxn()?;
        let mut rec = self.get(&txn, ino)?;
        if rec.kind == Kind::Dir {
            return Err(Error::posix(libc::EPERM, "hard links to folders".to_string()));
        }
        let mut dir = self.dir(&txn, parent)?;
        if self.child(&txn, parent, name)?.is_some() {
            return Err(Error::posix(libc::EEXIST, format!("{name:?}")));
        }
        self.dirents.put(&mut txn, &dirent_key(parent, name), &ino)?;
        rec.nlink += 1;
        rec.ctime = now_ns();
        self.put(&mut txn, ino, &rec)?;
        touch(&mut dir);
        self.put(&mut txn, parent, &dir)?;
        txn.commit()?;
        self.changed();
        Ok(self.attr_of(ino, &rec))
    }

    /// Removes the file or symlink `name` from `parent`.
    pub fn unlink(&self, parent: u64, name: &str) -> Result<()> {
        self.remove(parent, name, false)
    }

    /// Removes the empty folder `name` from `parent`.
    pub fn rmdir(&self, parent: u64, name: &str) -> Result<()> {
        self.remove(parent, name, true)
    }

    /// Removes entry `name` of `parent` and, for a folder, everything under it.
    pub fn remove_all(&self, parent: u64, name: &str) -> Result<()> {
        let top = self.lookup(parent, name)?;
        if top.kind != Kind::Dir {
            return self.unlink(parent, name);
        }
        // Folders in breadth-first order (files removed on the way), then removed deepest first.
        let mut folders = vec![(parent, name.to_string())];
        let mut inos = vec![top.ino];
        let mut i = 0;
        while let Some(&ino) = inos.get(i) {
            for e in self.readdir(ino)? {
                match e.kind {
                    Kind::Dir => {
                        folders.push((ino, e.name));
                        inos.push(e.ino);
                    }
                    _ => self.unlink(ino, &e.name)?,
                }
            }
            i += 1;
        }
        for (p, n) in folders.iter().rev() {
            self.rmdir(*p, n)?;
        }
        Ok(())
    }

    fn remove(&self, parent: u64, name: &str, want_dir: bool) -> Result<()> {
        check_length(name)?;
        let mut txn = self.wtxn()?;
        let mut dir = self.dir(&txn, parent)?;
        let ino = self
            .child(&txn, parent, name)?
            .ok_or_else(|| Error::posix(libc::ENOENT, format!("no entry {name:?}")))?;
        let rec = self.get(&txn, ino)?;
        match (rec.kind == Kind::Dir, want_dir) {
            (true, false) => return Err(Error::posix(libc::EISDIR, format!("{name:?} is a folder"))),
            (false, true) => return Err(Error::posix(libc::ENOTDIR, format!("{name:?} is not a folder"))),
            _ => {}
        }
        let gone = self.drop_name(&mut txn, &mut dir, parent, name, ino, rec)?;
        touch(&mut dir);
        self.put(&mut txn, parent, &dir)?;
        self.commit_dropping(txn, gone)
    }

    /// Commits a change that removed inode `gone` (if any), then retires its staged bytes: they stay
    /// until the removal is durable.
    fn commit_dropping(&self, txn: RwTxn, gone: Option<u64>) -> Result<()> {
        self.crash_point()?;
        txn.commit()?;
        if let Some(ino) = gone {
            self.staging.retire(ino);
            self.forget_gen(ino);
        }
        self.changed();
        Ok(())
    }

    /// In tests, fails the operation just before its commit, as a crash there would.
    fn crash_point(&self) -> Result<()> {
        #[cfg(test)]
        if self
            .crash_before_commit
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::Task("injected crash before commit".into()));
        }
        Ok(())
    }

    /// Removes the name of `ino` and, with its last name and no open handle, the inode (returned, so the
    /// caller retires its staged bytes after committing). `dir` is the parent's record, updated by the
    /// caller.
    fn drop_name(
        &self,
        txn: &mut RwTxn,
        dir: &mut Inode,
        parent: u64,
        name: &str,
        ino: u64,
        mut rec: Inode,
    ) -> Result<Option<u64>> {
        if rec.kind == Kind::Dir {
            if self
                .dirents
                .prefix_iter(txn, &ino.to_be_bytes())?
                .next()
                .is_some()
            {
                return Err(Error::posix(libc::ENOTEMPTY, format!("folder {name:?}")));
            }
            dir.nlink = dir.nlink.saturating_sub(1);
            rec.nlink = 0;
        } else {
            rec.nlink = rec.nlink.saturating_sub(1);
        }
        self.dirents.delete(txn, &dirent_key(parent, name))?;
        if rec.nlink == 0 && self.open_count(ino) == 0 {
            self.inodes.delete(txn, &ino)?;
            return Ok(Some(ino));
        } else {
            rec.ctime = now_ns();
            if rec.parent == parent && rec.nlink > 0 {
                // Another name remains: point `parent` at one of them.
                if let Some(other) = self.other_parent(txn, ino)? {
                    rec.parent = other;
                }
            }
            self.put(txn, ino, &rec)?;
        }
        Ok(None)
    }

    fn other_parent(&self, txn: &RoTxn, ino: u64) -> Result<Option<u64>> {
        for item in self.dirents.iter(txn)? {
            let (k, v) = item?;
            if v == ino {
                return Ok(k[..8].try_into().ok().map(u64::from_be_bytes));
            }
        }
        Ok(None)
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`, atomically.
    pub fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        mode: RenameMode,
    ) -> Result<()> {
        check_name(new_name)?;
        check_length(name)?;
        let mut txn = self.wtxn()?;
        let ino = self
            .child(&txn, parent, name)?
            .ok_or_else(|| Error::posix(libc::ENOENT, format!("no entry {name:?}")))?;
        let mut rec = self.get(&txn, ino)?;
        self.dir(&txn, new_parent)?;
        if rec.kind == Kind::Dir && self.is_within(&txn, new_parent, ino)? {
            return Err(Error::posix(
                libc::EINVAL,
                format!("moving folder {name:?} into itself"),
            ));
        }
        let target = self.child(&txn, new_parent, new_name)?;
        if target == Some(ino) {
            return Ok(()); // the same name, or two names of one file: nothing to do
        }
        let gone = match (mode, target) {
            (RenameMode::NoReplace, Some(_)) => {
                return Err(Error::posix(libc::EEXIST, format!("{new_name:?}")))
            }
            (RenameMode::Exchange, None) => {
                return Err(Error::posix(
                    libc::ENOENT,
                    format!("no entry {new_name:?} to exchange with"),
                ))
            }
            (RenameMode::Exchange, Some(other)) => {
                let mut orec = self.get(&txn, other)?;
                if self.is_within(&txn, parent, other)? && orec.kind == Kind::Dir {
                    return Err(Error::posix(
                        libc::EINVAL,
                        "exchanging a folder with its descendant",
                    ));
                }
                self.dirents.put(&mut txn, &dirent_key(parent, name), &other)?;
                self.dirents
                    .put(&mut txn, &dirent_key(new_parent, new_name), &ino)?;
                self.move_parent(&mut txn, ino, &mut rec, parent, new_parent)?;
                self.move_parent(&mut txn, other, &mut orec, new_parent, parent)?;
                txn.commit()?;
                self.changed();
                return Ok(());
            }
            (_, Some(other)) => {
                let orec = self.get(&txn, other)?;
                match (rec.kind == Kind::Dir, orec.kind == Kind::Dir) {
                    (true, false) => {
                        return Err(Error::posix(
                            libc::ENOTDIR,
                            format!("{new_name:?} is not a folder"),
                        ))
                    }
                    (false, true) => {
                        return Err(Error::posix(libc::EISDIR, format!("{new_name:?} is a folder")))
                    }
                    _ => {}
                }
                let mut ndir = self.get(&txn, new_parent)?;
                let gone = self.drop_name(&mut txn, &mut ndir, new_parent, new_name, other, orec)?;
                self.put(&mut txn, new_parent, &ndir)?;
                gone
            }
            (_, None) => None,
        };
        self.dirents.delete(&mut txn, &dirent_key(parent, name))?;
        self.dirents
            .put(&mut txn, &dirent_key(new_parent, new_name), &ino)?;
        self.move_parent(&mut txn, ino, &mut rec, parent, new_parent)?;
        self.commit_dropping(txn, gone)
    }

    /// Records that `ino` moved from folder `from` to `to` (parent pointers, folder link counts, times).
    fn move_parent(&self, txn: &mut RwTxn, ino: u64, rec: &mut Inode, from: u64, to: u64) -> Result<()> {
        if rec.parent == from {
            rec.parent = to;
        }
        rec.ctime = now_ns();
        self.put(txn, ino, rec)?;
        for (dir_ino, delta) in [(from, -1i64), (to, 1)] {
            let mut dir = self.get(txn, dir_ino)?;
            if rec.kind == Kind::Dir && from != to {
                dir.nlink = (i64::from(dir.nlink) + delta).max(2) as u32;
            }
            touch(&mut dir);
            self.put(txn, dir_ino, &dir)?;
        }
        Ok(())
    }

    /// Whether folder `ino` is `ancestor` or lies below it.
    fn is_within(&self, txn: &RoTxn, mut ino: u64, ancestor: u64) -> Result<bool> {
        for _ in 0..4096 {
            if ino == ancestor {
                return Ok(true);
            }
            if ino == ROOT || ino == SCRATCH {
                return Ok(false);
            }
            ino = self.get(txn, ino)?.parent;
        }
        Err(Error::posix(libc::ELOOP, "folder cycle"))
    }

    /// Changes attributes; a new size truncates or extends (with zeros) the content.
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        if let Some(size) = set.size {
            let rec = self.getattr(ino)?;
            if rec.kind == Kind::Dir {
                return Err(Error::posix(libc::EISDIR, format!("inode {ino}")));
            }
            if rec.kind != Kind::File {
                return Err(Error::posix(libc::EINVAL, format!("inode {ino}")));
            }
            let file = self.staged(ino, size == 0).await?;
            let path = self.staging.path(ino);
            file.set_len(size).at(&path)?;
            self.bump_gen(ino);
        }
        let mut txn = self.wtxn()?;
        let mut rec = self.get(&txn, ino)?;
        if let Some(m) = set.mode {
            rec.mode = m & 0o7777;
        }
        if let Some(u) = set.uid {
            rec.uid = u;
        }
        if let Some(g) = set.gid {
            rec.gid = g;
        }
        if let Some(a) = set.atime {
            rec.atime = a;
        }
        if let Some(m) = set.mtime {
            rec.mtime = m;
            if rec.dirty {
                let path = self.staging.path(ino);
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(m.max(0) as u64);
                self.staging.file(ino)?.set_modified(t).at(&path)?;
            }
        }
        rec.ctime = now_ns();
        self.put(&mut txn, ino, &rec)?;
        txn.commit()?;
        self.changed();
        Ok(self.attr_of(ino, &rec))
    }

    /// Opens file `ino`; `write` for writing, `truncate` empties it first (O_TRUNC).
    pub async fn open(&self, ino: u64, write: bool, truncate: bool) -> Result<()> {
        let attr = self.getattr(ino)?;
        match attr.kind {
            Kind::Dir if write => return Err(Error::posix(libc::EISDIR, format!("inode {ino}"))),
            Kind::Symlink => return Err(Error::posix(libc::ELOOP, format!("inode {ino} is a symlink"))),
            // The kernel opens fifos and sockets itself and devices not at all (nodev).
            k if k.is_special() => {
                return Err(Error::posix(
                    libc::ENXIO,
                    format!("inode {ino} is a {}", k.name()),
                ))
            }
            _ => {}
        }
        {
            let mut h = self.lock_handles();
            let e = h.open.entry(ino).or_default();
            e.0 += 1;
            e.1 += u32::from(write);
        }
        if write && truncate && attr.size > 0 {
            if let Err(e) = self
                .setattr(
                    ino,
                    SetAttr {
                        size: Some(0),
                        ..SetAttr::default()
                    },
                )
                .await
            {
                self.release(ino, write)?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Closes a handle opened by [`Tree::open`]. The last writer queues the file for sealing; the last
    /// handle of an unlinked file removes it.
    pub fn release(&self, ino: u64, write: bool) -> Result<()> {
        let left = {
            let mut h = self.lock_handles();
            let e = h.open.entry(ino).or_default();
            e.0 = e.0.saturating_sub(1);
            if write {
                e.1 = e.1.saturating_sub(1);
            }
            let left = *e;
            if left.0 == 0 {
                h.open.remove(&ino);
            }
            left
        };
        if left.0 == 0 {
            let mut txn = self.wtxn()?;
            if let Ok(rec) = self.get(&txn, ino) {
                if rec.nlink == 0 {
                    self.inodes.delete(&mut txn, &ino)?;
                    return self.commit_dropping(txn, Some(ino));
                }
            }
        }
        if write && left.1 == 0 {
            self.queue_seal(ino, self.writeback_delay_ms)?;
        }
        Ok(())
    }

    /// Makes `ino`'s written bytes durable in staging and queues it for sealing.
    pub fn fsync(&self, ino: u64) -> Result<()> {
        let txn = self.read_txn()?;
        if self.get(&txn, ino)?.dirty {
            drop(txn);
            let path = self.staging.path(ino);
            self.staging.file(ino)?.sync_all().at(&path)?;
            self.staging.sync()?;
            self.queue_seal(ino, self.writeback_delay_ms)?;
        }
        // The record (dirty, size, names) must be on disk too.
        self.sync()
    }

    /// Makes the tree's metadata durable (fsync of a folder).
    pub fn fsyncdir(&self) -> Result<()> {
        self.sync()
    }

    fn queue_seal(&self, ino: u64, delay_ms: i64) -> Result<()> {
        let txn = self.read_txn()?;
        if matches!(self.get(&txn, ino), Ok(rec) if rec.dirty) {
            drop(txn);
            self.queue
                .push(SEAL, &seal_key(ino), &ino.to_le_bytes(), delay_ms)?;
        }
        Ok(())
    }

    /// Reads up to `len` bytes of file `ino` from `offset`.
    pub async fn read(&self, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
        for _ in 0..3 {
            let rec = {
                let txn = self.read_txn()?;
                self.get(&txn, ino)?
            };
            match rec.kind {
                Kind::Dir => return Err(Error::posix(libc::EISDIR, format!("inode {ino}"))),
                Kind::File => {}
                _ => return Err(Error::posix(libc::EINVAL, format!("inode {ino}"))),
            }
            if rec.dirty {
                let file = match self.staging.file(ino) {
                    Ok(f) => f,
                    // Sealed and removed between the record read and the open: read the record again.
                    Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                let path = self.staging.path(ino);
                let size = file.metadata().at(&path)?.len();
                let end = offset.saturating_add(len).min(size);
                let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
                let mut filled = 0;
                while filled < buf.len() {
                    match file
                        .read_at(&mut buf[filled..], offset + filled as u64)
                        .at(&path)?
                    {
                        0 => break,
                        n => filled += n,
                    }
                }
                buf.truncate(filled);
                return Ok(buf);
            }
            return match rec.content() {
                Some(Content::Link(link)) => {
                    let read = self.read_sealed(&link, offset, len).await;
                    match &read {
                        // Name the link (its root, never its key); the error names the block.
                        Err(e) if e.errno() == libc::EIO => {
                            let root = link.parse::<Link>().map(|l| l.root.to_string());
                            tracing::warn!(
                                ino,
                                offset,
                                link = root.as_deref().unwrap_or("?"),
                                error = %e,
                                "cannot read a file's content"
                            );
                        }
                        _ => {}
                    }
                    read
                }
                Some(Content::Data(d)) => Ok(slice(&d, offset, len).to_vec()),
                _ => Ok(Vec::new()),
            };
        }
        Err(Error::posix(
            libc::EAGAIN,
            format!("inode {ino} kept changing while read"),
        ))
    }

    /// Reads a range of sealed content through the cache of opened blocks.
    async fn read_sealed(&self, link: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let opened = self.opened(link).await?;
        let (size, bs) = transfer::geometry(&opened)?;
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let blocks = self.sealed_blocks(&opened, offset / bs, (end - 1) / bs).await?;
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (i, data) in blocks.iter().enumerate() {
            let start = (offset / bs + i as u64) * bs;
            let lo = offset.saturating_sub(start) as usize;
            let hi = ((end - start) as usize).min(data.len());
            out.extend_from_slice(&data[lo..hi]);
        }
        Ok(out)
    }

    /// Opened blocks `first..=last` of a sealed file, from the cache or fetched, all at once. A block
    /// already being fetched (by read-ahead, or another reader) is waited for, not fetched again.
    async fn sealed_blocks(&self, opened: &Arc<Opened>, first: u64, last: u64) -> Result<Vec<Arc<Vec<u8>>>> {
        let store = self.repo.store();
        let fetches = (first..=last).map(|i| {
            let init = async move {
                let mut got = transfer::read_blocks(store, opened, &[i]).await?;
                match got.pop() {
                    Some((_, data)) => Ok(Arc::new(data)),
                    None => Err(Error::Task(format!("block {i} was not read"))),
                }
            };
            self.plain.try_get_with((opened.root, i), init)
        });
        futures::future::try_join_all(fetches)
            .await
            .map_err(|e: Arc<Error>| Error::posix(e.errno(), e.to_string()))
    }

    /// Fetches the sealed blocks of file `ino` holding `offset..offset+len` into the cache, so a
    /// sequential reader finds them ready (read-ahead). Does nothing for files being written.
    pub async fn prefetch(&self, ino: u64, offset: u64, len: u64) -> Result<()> {
        let rec = self.inode(ino)?;
        let (Kind::File, false, Some(link)) = (rec.kind, rec.dirty, rec.link) else {
            return Ok(());
        };
        let opened = self.opened(&link).await?;
        let (size, bs) = transfer::geometry(&opened)?;
        let end = offset.saturating_add(len).min(size);
        if offset < end {
            self.sealed_blocks(&opened, offset / bs, (end - 1) / bs).await?;
        }
        Ok(())
    }

    /// Streams the whole content of file `ino` into `out` (named `out_name` in errors), with several
    /// blocks in flight for sealed content. Returns the bytes written.
    pub async fn copy_to(
        &self,
        ino: u64,
        out: Box<dyn std::io::Write + Send>,
        out_name: std::path::PathBuf,
    ) -> Result<u64> {
        let rec = self.inode(ino)?;
        if rec.kind != Kind::File {
            return Err(Error::posix(libc::EISDIR, format!("inode {ino} is not a file")));
        }
        if !rec.dirty {
            return match rec.content() {
                Some(Content::Data(d)) => {
                    let mut out = out;
                    out.write_all(&d).and_then(|_| out.flush()).at(&out_name)?;
                    Ok(d.len() as u64)
                }
                None | Some(Content::Empty) => Ok(0),
                Some(Content::Link(link)) => {
                    let opened = self.opened(&link).await?;
                    transfer::read_to(
                        self.repo.store(),
                        &opened,
                        out,
                        out_name,
                        &transfer::no_progress(),
                    )
                    .await
                }
            };
        }
        let mut out = out;
        let mut off = 0;
        loop {
            let chunk = self.read(ino, off, 1 << 20).await?;
            if chunk.is_empty() {
                break;
            }
            out.write_all(&chunk).at(&out_name)?;
            off += chunk.len() as u64;
        }
        out.flush().at(&out_name)?;
        Ok(off)
    }

    /// The opened descriptor of `link`, cached.
    async fn opened(&self, link: &str) -> Result<Arc<Opened>> {
        if let Some(o) = self.lock_opened().get(link) {
            return Ok(o.clone());
        }
        let parsed: Link = link.parse()?;
        let opened = Arc::new(transfer::open(self.repo.store(), &parsed, None).await?);
        let mut cache = self.lock_opened();
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(link.to_string(), opened.clone());
        Ok(opened)
    }

    /// Writes `data` at `offset` into file `ino` (opened for writing); returns the bytes written.
    pub async fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<usize> {
        if self.open_writers(ino) == 0 {
            return Err(Error::posix(
                libc::EBADF,
                format!("inode {ino} is not open for writing"),
            ));
        }
        let file = self.staged(ino, false).await?;
        self.bump_gen(ino);
        let path = self.staging.path(ino);
        file.write_all_at(data, offset).at(&path)?;
        Ok(data.len())
    }

    /// The staging file of file `ino`, made from its sealed content first when it is clean (or empty
    /// when `empty`, for a truncation to zero).
    async fn staged(&self, ino: u64, empty: bool) -> Result<Arc<std::fs::File>> {
        let _guard = self.materialize.lock().await;
        let rec = {
            let txn = self.read_txn()?;
            self.get(&txn, ino)?
        };
        if rec.kind != Kind::File {
            return Err(Error::posix(libc::EISDIR, format!("inode {ino} is not a file")));
        }
        if rec.dirty {
            return self.staging.file(ino);
        }
        let file = match (rec.content(), empty) {
            (Some(Content::Data(d)), false) => {
                let file = self.staging.create_empty(ino)?;
                let path = self.staging.path(ino);
                file.write_all_at(&d, 0).at(&path)?;
                let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(rec.mtime.max(0) as u64);
                file.set_modified(mtime).at(&path)?;
                file
            }
            (Some(Content::Link(link)), false) => {
                let opened = self.opened(&link).await?;
                let tmp = self.staging.temp_path(ino);
                let out = std::fs::File::create(&tmp).at(&tmp)?;
                transfer::read_to(
                    self.repo.store(),
                    &opened,
                    Box::new(out),
                    tmp.clone(),
                    &transfer::no_progress(),
                )
                .await?;
                std::fs::File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp)?;
                self.staging.install(ino)?;
                let file = self.staging.file(ino)?;
                // The staged copy keeps the content's modification time until it is written.
                let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(rec.mtime.max(0) as u64);
                file.set_modified(mtime).at(self.staging.path(ino))?;
                file
            }
            // New content (a new file, or truncated to nothing): its time is now.
            _ => self.staging.create_empty(ino)?,
        };
        let mut txn = self.wtxn()?;
        let mut rec = self.get(&txn, ino)?;
        rec.dirty = true;
        self.put(&mut txn, ino, &rec)?;
        txn.commit()?;
        self.changed();
        Ok(file)
    }

    /// Seals the staged content of `ino` into a link and makes the file clean, unless it was written or
    /// opened for writing meanwhile ([`Sealed::Busy`]: seal again later).
    pub async fn seal(&self, hold: &Hold, ino: u64, session: &transfer::Sealer) -> Result<Sealed> {
        let (rec, gen) = {
            let txn = self.read_txn()?;
            let rec = match self.get(&txn, ino) {
                Ok(r) => r,
                Err(_) => return Ok(Sealed::Clean),
            };
            (rec, self.gen(ino))
        };
        if !rec.dirty {
            return Ok(Sealed::Clean);
        }
        if self.open_writers(ino) > 0 {
            return Ok(Sealed::Busy);
        }
        let path = self.staging.path(ino);
        let file = std::fs::File::open(&path).at(&path)?;
        let meta = file.metadata().at(&path)?;
        if meta.len() <= self.inline_max() {
            // Small: its bytes go into the record itself, nothing is sealed.
            let mut data = vec![0u8; meta.len() as usize];
            file.read_exact_at(&mut data, 0).at(&path)?;
            let content = Content::Data(data);
            return self.settle(ino, gen, &content, meta.len(), &meta);
        }
        let name = self.path_of(ino).unwrap_or_default();
        let name = name.rsplit('/').next().unwrap_or_default().to_string();
        let info = transfer::FileInfo {
            media_type: crate::media::by_name(std::path::Path::new(&name)),
            name,
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec() as u32,
            mode: rec.mode,
        };
        let (link, size) = session.put_reader(hold, file, info).await?;
        session.commit().await?;
        self.settle(ino, gen, &Content::Link(link.to_string()), size, &meta)
    }

    /// Makes `content` (of `size` bytes, staged with `meta`) the clean content of `ino`, unless it was
    /// written (its generation is no longer `gen`) or opened for writing meanwhile.
    fn settle(
        &self,
        ino: u64,
        gen: u64,
        content: &Content,
        size: u64,
        meta: &std::fs::Metadata,
    ) -> Result<Sealed> {
        // The check and the switch happen under the handles lock, so no writer can slip in between.
        // Lock order everywhere: the LMDB write transaction first, then the handles lock (rename and
        // unlink take the handles lock inside their transaction).
        let mut txn = self.wtxn()?;
        let h = self.lock_handles();
        if h.gens.get(&ino).copied().unwrap_or(0) != gen || h.open.get(&ino).is_some_and(|e| e.1 > 0) {
            return Ok(Sealed::Busy);
        }
        let mut cur = match self.get(&txn, ino) {
            Ok(r) if r.dirty => r,
            _ => return Ok(Sealed::Clean),
        };
        cur.set_content(content);
        cur.size = size;
        cur.mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
        self.put(&mut txn, ino, &cur)?;
        txn.commit()?;
        drop(h);
        // The new content must be durable before the staged bytes it replaces go.
        self.sync()?;
        self.staging.remove(ino);
        self.forget_gen(ino);
        self.changed();
        Ok(match content {
            Content::Link(l) => Sealed::Done(l.clone()),
            _ => Sealed::Inline(size),
        })
    }

    /// The most bytes a file of this tree keeps inline ([`inline_max`] of the block size).
    pub fn inline_max(&self) -> u64 {
        inline_max(self.repo.block_size() as u64)
    }

    /// Extended attribute `name` of `ino` (`user.noisefs.link` shows a clean file's link).
    pub fn getxattr(&self, ino: u64, name: &str) -> Result<Vec<u8>> {
        let txn = self.read_txn()?;
        let rec = self.get(&txn, ino)?;
        if name == LINK_XATTR {
            return match rec.content() {
                Some(Content::Link(l)) => Ok(l.into_bytes()),
                _ if rec.dirty => Err(Error::posix(libc::ENODATA, "no sealed link yet (written and not sealed)")),
                _ => Err(Error::posix(
                    libc::ENODATA,
                    "no link of its own: small and empty files are kept in the tree (`noisefs share` makes a link)",
                )),
            };
        }
        if name == STATE_XATTR && rec.kind == Kind::File {
            return Ok(state_of(&rec).as_bytes().to_vec());
        }
        rec.xattrs
            .get(name)
            .map(|v| v.to_vec())
            .ok_or_else(|| Error::posix(libc::ENODATA, format!("no attribute {name}")))
    }

    /// Sets extended attribute `name` (user namespace only).
    pub fn setxattr(&self, ino: u64, name: &str, value: &[u8]) -> Result<()> {
        if name == LINK_XATTR || name == STATE_XATTR {
            return Err(Error::posix(libc::EPERM, format!("{name} is read-only")));
        }
        if !name.starts_with("user.") || name.len() > 255 || value.len() > 64 * 1024 {
            return Err(Error::posix(
                libc::ENOTSUP,
                format!("attribute {name} (only user.*, values up to 64 KiB)"),
            ));
        }
        self.update(ino, |rec| {
            rec.xattrs
                .insert(name.to_string(), serde_bytes::ByteBuf::from(value.to_vec()));
            Ok(())
        })
    }

    /// Removes extended attribute `name`.
    pub fn removexattr(&self, ino: u64, name: &str) -> Result<()> {
        self.update(ino, |rec| match rec.xattrs.remove(name) {
            Some(_) => Ok(()),
            None => Err(Error::posix(libc::ENODATA, format!("no attribute {name}"))),
        })
    }

    /// The names of `ino`'s extended attributes.
    pub fn listxattr(&self, ino: u64) -> Result<Vec<String>> {
        let txn = self.read_txn()?;
        let rec = self.get(&txn, ino)?;
        let mut names: Vec<String> = rec.xattrs.keys().cloned().collect();
        if rec.link.is_some() && !rec.dirty {
            names.push(LINK_XATTR.to_string());
        }
        if rec.kind == Kind::File {
            names.push(STATE_XATTR.to_string());
        }
        Ok(names)
    }

    fn update(&self, ino: u64, f: impl FnOnce(&mut Inode) -> Result<()>) -> Result<()> {
        let mut txn = self.wtxn()?;
        let mut rec = self.get(&txn, ino)?;
        f(&mut rec)?;
        rec.ctime = now_ns();
        self.put(&mut txn, ino, &rec)?;
        txn.commit()?;
        self.changed();
        Ok(())
    }

    /// Totals for `statfs`: space of the disk holding the repository, inodes in use.
    pub fn statfs(&self) -> Result<FsStats> {
        let st = nix_statvfs(self.repo.root())?;
        let txn = self.read_txn()?;
        // Neither the next-inode counter nor the scratch folder is a file.
        let files = self.inodes.len(&txn)?.saturating_sub(2);
        Ok(FsStats {
            block_size: self.repo.block_size() as u64,
            blocks: st.0 / self.repo.block_size() as u64,
            blocks_free: st.1 / self.repo.block_size() as u64,
            files,
            files_free: u64::from(u32::MAX).saturating_sub(files),
            name_max: NAME_MAX as u64,
        })
    }

    /// Every inode below folder `ino` with its path relative to it, parents before children.
    pub fn walk(&self, ino: u64) -> Result<Vec<(String, u64, Inode)>> {
        let txn = self.read_txn()?;
        self.dir(&txn, ino)?;
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), ino)];
        while let Some((prefix, dir)) = stack.pop() {
            for e in self.entries_in(&txn, dir)? {
                let rel = if prefix.is_empty() {
                    e.name.clone()
                } else {
                    format!("{prefix}/{}", e.name)
                };
                let rec = self.get(&txn, e.ino)?;
                if rec.kind == Kind::Dir {
                    stack.push((rel.clone(), e.ino));
                }
                out.push((rel, e.ino, rec));
            }
        }
        Ok(out)
    }

    /// The record of `ino`.
    pub fn inode(&self, ino: u64) -> Result<Inode> {
        let txn = self.read_txn()?;
        self.get(&txn, ino)
    }

    /// Every sealed link the tree holds (roots `gc` must keep).
    pub fn links(&self) -> Result<Vec<String>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.inodes.iter(&txn)? {
            let (ino, bytes) = item?;
            if ino != NEXT_INO {
                if let Some(l) = Inode::decode(ino, bytes)?.link {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    /// What the tree's clean files hold: the bytes kept inline in records, and each sealed file's
    /// link and size (for `repo stats`).
    pub fn holdings(&self) -> Result<Holdings> {
        let txn = self.read_txn()?;
        let mut out = Holdings::default();
        for item in self.inodes.iter(&txn)? {
            let (ino, bytes) = item?;
            if ino == NEXT_INO {
                continue;
            }
            let rec = Inode::decode(ino, bytes)?;
            match rec.content() {
                Some(Content::Data(d)) => {
                    out.inline_files += 1;
                    out.inline_bytes += d.len() as u64;
                }
                Some(Content::Link(l)) => out.sealed.push((l, rec.size)),
                _ => {}
            }
        }
        Ok(out)
    }

    fn open_count(&self, ino: u64) -> u32 {
        self.lock_handles().open.get(&ino).map_or(0, |e| e.0)
    }

    fn open_writers(&self, ino: u64) -> u32 {
        self.lock_handles().open.get(&ino).map_or(0, |e| e.1)
    }

    fn gen(&self, ino: u64) -> u64 {
        self.lock_handles().gens.get(&ino).copied().unwrap_or(0)
    }

    fn bump_gen(&self, ino: u64) {
        *self.lock_handles().gens.entry(ino).or_default() += 1;
    }

    fn forget_gen(&self, ino: u64) {
        self.lock_handles().gens.remove(&ino);
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_opened(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Opened>>> {
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What identifies the state of a tree entry for sync: a file's sealed link (`dirty` while being written),
/// `dir`, or a symlink's target.
pub fn signature(rec: &Inode) -> String {
    match rec.kind {
        Kind::Dir => "dir".into(),
        Kind::Symlink => format!("symlink:{}", rec.target.as_deref().unwrap_or_default()),
        k @ (Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice) => {
            format!("{}:{:o}:{}", k.name(), rec.mode, rec.rdev)
        }
        Kind::File if rec.dirty => "dirty".into(),
        Kind::File => rec.content().unwrap_or(Content::Empty).signature(),
    }
}

/// How a file's content is held, as [`STATE_XATTR`] says it.
fn state_of(rec: &Inode) -> &'static str {
    match rec.content() {
        _ if rec.dirty => "staged",
        Some(Content::Link(_)) => "sealed",
        Some(Content::Data(_)) => "inline",
        _ => "empty",
    }
}

/// `len` bytes of `data` from `offset` (fewer at its end).
fn slice(data: &[u8], offset: u64, len: u64) -> &[u8] {
    let start = (offset.min(data.len() as u64)) as usize;
    let end = (offset.saturating_add(len).min(data.len() as u64)) as usize;
    &data[start..end]
}

fn seal_key(ino: u64) -> String {
    format!("seal/{ino}")
}

fn dirent_key(parent: u64, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + name.len());
    k.extend_from_slice(&parent.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

fn touch(dir: &mut Inode) {
    let now = now_ns();
    dir.mtime = now;
    dir.ctime = now;
}

fn unsafe_uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

fn unsafe_gid() -> u32 {
    // SAFETY: getgid cannot fail and touches no memory.
    unsafe { libc::getgid() }
}

/// (total bytes, available bytes) of the filesystem holding `path`.
fn nix_statvfs(path: &std::path::Path) -> Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| Error::io(path, std::io::Error::from(e)))?;
    let frag = st.fragment_size() as u64;
    Ok((st.blocks() as u64 * frag, st.blocks_available() as u64 * frag))
}

#[cfg(test)]
mod tests;
