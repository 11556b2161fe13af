//! The FUSE adapter: each kernel request is translated into a call on the NoiseFS tree (which decides
//! everything), answered, and logged with the request's inode and process on failure. No storage logic
//! lives here. Inode numbers are the tree's, except that a subtree mounted as the root appears as inode 1.
//!
//! Requests that may wait on storage (open, read, write, setattr, create) never block a kernel-request
//! thread: each is polled once on the thread, and one that would wait (a block being fetched) goes on as
//! a task on the runtime that replies when done (fuser's replies move to the task), at most
//! [`MAX_IN_FLIGHT`] at once; past that the thread waits for a slot (back-pressure). Metadata requests
//! are answered on the thread from the state database.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use noisefs::tree::{Attr, Cursor, Kind, RenameMode, SetAttr, Tree};

use crate::virt::{Router, VNode};

/// How long the kernel may cache attributes and entries. Changes made through the mount are seen at
/// once; changes made by sync or the CLI meanwhile show up within this time.
const TTL: Duration = Duration::from_secs(1);
/// Largest read and write request (1 MiB, the kernel's maximum).
pub const MAX_IO: u32 = 1 << 20;
/// Virtual entries (query folders and hits) are computed on each lookup, never cached by the kernel.
const NO_TTL: Duration = Duration::ZERO;
/// Flags of every tree file opened: flush does nothing here (writes go straight to the staging file and
/// close reports nothing more), so the kernel is told not to send one at each close (one request fewer
/// per file, which small-file work feels).
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_NOFLUSH;
/// Requests waiting on storage at once; more wait on the kernel-request thread for a slot.
pub const MAX_IN_FLIGHT: usize = 64;

/// Ownership and permission bits a mount shows in place of the stored ones (`uid=`, `gid=`,
/// `umask=` mount options, as rclone and vfat have). The tree keeps what was stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Show {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Permission bits cleared from every mode shown.
    pub umask: Option<u32>,
}

/// One open file.
struct Handle {
    ino: u64,
    write: bool,
    /// Where this handle's reader is (the tree starts read-ahead for sequential readers).
    cursor: Cursor,
}

/// The filesystem served to the kernel (cheap to share with the tasks that answer requests).
pub struct NoiseFs(Arc<Inner>);

impl std::ops::Deref for NoiseFs {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What the adapter holds.
pub struct Inner {
    tree: Arc<Tree>,
    rt: tokio::runtime::Handle,
    /// The tree inode shown as the mount's root.
    root: u64,
    read_only: bool,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    /// The virtual folders (`/.search` is empty when the index could not be opened).
    virt: Router,
    /// What `uid=`, `gid=` and `umask=` mount options impose on what `stat` shows.
    show: Show,
    in_flight: Arc<tokio::sync::Semaphore>,
}

fn errno(e: &noisefs::Error) -> Errno {
    Errno::from_i32(e.errno())
}

impl NoiseFs {
    /// Serves `tree` from inode `root` (the tree's root for a whole mount), with the virtual folders
    /// of `virt`.
    pub fn new(
        tree: Arc<Tree>,
        rt: tokio::runtime::Handle,
        root: u64,
        read_only: bool,
        virt: Router,
        show: Show,
    ) -> NoiseFs {
        NoiseFs(Arc::new(Inner {
            virt,
            tree,
            rt,
            root,
            read_only,
            show,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }))
    }

    /// Answers a request whose work may wait on storage: `work` replies to the kernel itself. It is
    /// polled once on this thread (most requests finish at once: staged bytes, cached blocks, local
    /// disk); one that would wait goes on to the runtime with a slot of [`MAX_IN_FLIGHT`], so the kernel
    /// thread never waits for a slow block, only for a slot when that many are already waiting.
    fn answer<F, Fut>(&self, work: F)
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut fut = Box::pin(work(self.0.clone()));
        {
            let _runtime = self.rt.enter();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if fut.as_mut().poll(&mut cx).is_ready() {
                return;
            }
        }
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => match self.rt.block_on(self.in_flight.clone().acquire_owned()) {
                Ok(p) => p,
                Err(_) => return, // closed: the mount is going away
            },
        };
        self.rt.spawn(async move {
            fut.await;
            drop(permit);
        });
    }
}

impl Inner {
    /// The attributes of a virtual entry.
    fn virtual_attr(&self, ino: u64, node: &VNode) -> FileAttr {
        let mut a = self.reserved_attr(ino);
        match node {
            VNode::Dir => {}
            VNode::File(size) => {
                a.kind = FileType::RegularFile;
                a.perm = 0o444;
                a.nlink = 1;
                a.size = *size;
                a.blocks = size.div_ceil(512);
            }
            VNode::Symlink(target) => {
                a.kind = FileType::Symlink;
                a.perm = 0o777;
                a.nlink = 1;
                a.size = target.len() as u64;
            }
        }
        a
    }

    /// Looks `name` up in a virtual folder.
    fn virtual_lookup(&self, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Ok(name) = name_of(name) else {
            return reply.error(Errno::ENOENT);
        };
        match self.virt.lookup(parent, name) {
            Ok((ino, node)) => reply.entry(&NO_TTL, &self.virtual_attr(ino, &node), Generation(0)),
            Err(e) => {
                if e != libc::ENOENT {
                    tracing::debug!(folder = parent, errno = e, "virtual folder lookup failed");
                }
                reply.error(Errno::from_i32(e))
            }
        }
    }

    /// Lists a virtual folder.
    fn virtual_readdir(&self, ino: u64, offset: u64, mut reply: ReplyDirectory) {
        let mut all = vec![
            (ino, FileType::Directory, ".".to_string()),
            (self.virt.parent(ino), FileType::Directory, "..".to_string()),
        ];
        match self.virt.list(ino) {
            Ok(entries) => all.extend(entries.into_iter().map(|(i, name, node)| {
                let kind = match node {
                    VNode::Dir => FileType::Directory,
                    VNode::File(_) => FileType::RegularFile,
                    VNode::Symlink(_) => FileType::Symlink,
                };
                (i, kind, name)
            })),
            Err(e) => return reply.error(Errno::from_i32(e)),
        }
        for (i, (kino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(kino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    /// Kernel inode -> tree inode.
    fn t(&self, ino: INodeNo) -> u64 {
        match ino.0 {
            1 => self.root,
            n if n == self.root => 1,
            n => n,
        }
    }

    /// Tree inode -> kernel inode.
    fn k(&self, ino: u64) -> INodeNo {
        INodeNo(match ino {
            n if n == self.root => 1,
            1 => self.root,
            n => n,
        })
    }

    fn attr(&self, a: &Attr) -> FileAttr {
        let kind = file_type(a.kind);
        let show = &self.show;
        FileAttr {
            ino: self.k(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: time(a.atime),
            mtime: time(a.mtime),
            ctime: time(a.ctime),
            crtime: time(a.ctime),
            kind,
            perm: (a.mode & 0o7777 & !show.umask.unwrap_or(0)) as u16,
            nlink: a.nlink,
            uid: show.uid.unwrap_or(a.uid),
            gid: show.gid.unwrap_or(a.gid),
            // The kernel's dev_t as FUSE carries it (new_encode_dev: 12-bit major, 20-bit minor).
            rdev: encode_dev(a.rdev),
            blksize: 128 * 1024,
            flags: 0,
        }
    }

    fn reserved_attr(&self, ino: u64) -> FileAttr {
        let root = self.tree.getattr(self.root).ok();
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: FileType::Directory,
            perm: if self.virt.accepts_mkdir(ino) {
                0o755
            } else {
                0o555
            },
            nlink: 2,
            uid: root.as_ref().map_or(0, |r| r.uid),
            gid: root.as_ref().map_or(0, |r| r.gid),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Whether `name` in kernel folder `parent` is a reserved virtual folder.
    fn reserved(&self, parent: INodeNo, name: &OsStr) -> Option<u64> {
        if parent.0 != 1 {
            return None;
        }
        Router::root_named(name.as_bytes())
    }

    /// Refuses changes on a read-only mount, in the reserved folders, and to reserved names.
    fn writable(&self, parent: INodeNo, name: Option<&OsStr>) -> Result<(), Errno> {
        if self.read_only || Router::is_virtual(parent.0) {
            return Err(Errno::EROFS);
        }
        if let Some(n) = name {
            if self.reserved(parent, n).is_some() {
                return Err(Errno::EEXIST);
            }
        }
        Ok(())
    }

    /// For a request that adds `name` to kernel folder `parent`: the tree folder and the name, or the
    /// errno that refuses it (read-only, reserved, not UTF-8).
    fn adding<'n>(&self, parent: INodeNo, name: &'n OsStr) -> Result<(u64, &'n str), Errno> {
        self.writable(parent, Some(name))?;
        Ok((self.t(parent), name_of(name)?))
    }

    /// For a request that removes `name` from kernel folder `parent`: as [`NoiseFs::adding`], and the
    /// reserved folders cannot be removed (EROFS).
    fn removing<'n>(&self, parent: INodeNo, name: &'n OsStr) -> Result<(u64, &'n str), Errno> {
        self.writable(parent, None)?;
        if self.reserved(parent, name).is_some() {
            return Err(Errno::EROFS);
        }
        Ok((self.t(parent), name_of(name)?))
    }

    fn fh(&self, ino: u64, write: bool) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            ino,
            write,
            cursor: Cursor::default(),
        });
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, h);
        FileHandle(fh)
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned()
    }

    fn entry(&self, reply: ReplyEntry, r: noisefs::Result<Attr>, op: &str, req: &Request, ino: u64) {
        match r {
            Ok(a) => reply.entry(&TTL, &self.attr(&a), Generation(0)),
            Err(e) => reply.error(failed(op, req.pid(), ino, &e)),
        }
    }

    fn empty(&self, reply: ReplyEmpty, r: noisefs::Result<()>, op: &str, req: &Request, ino: u64) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(failed(op, req.pid(), ino, &e)),
        }
    }
}

/// Logs a failed request with its operation, inode and process (expected misses at debug level), and
/// gives the errno to answer it with.
fn failed(op: &str, pid: u32, ino: u64, e: &noisefs::Error) -> Errno {
    let code = e.errno();
    if matches!(
        code,
        libc::ENOENT | libc::EEXIST | libc::ENOTEMPTY | libc::ENODATA | libc::ENAMETOOLONG
    ) {
        tracing::debug!(op, ino, pid, errno = code, error = %e);
    } else {
        tracing::warn!(op, ino, pid, errno = code, error = %e, "request failed");
    }
    errno(e)
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn ns(t: TimeOrNow) -> i64 {
    let t = match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

/// The kernel's file type of a tree kind.
fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
    }
}

/// A device number as the tree keeps it (glibc's `makedev`) in the 32-bit form FUSE carries
/// (the kernel's `new_encode_dev`).
fn encode_dev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// The tree's device number (glibc's `makedev`) of the 32-bit one FUSE hands to `mknod`
/// (the kernel's `new_encode_dev`).
fn decode_dev(dev: u32) -> u64 {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    libc::makedev(major, minor)
}

/// A name the tree can hold (UTF-8), else EINVAL.
fn name_of(name: &OsStr) -> Result<&str, Errno> {
    name.to_str().ok_or(Errno::EINVAL)
}

impl Filesystem for NoiseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        let _ = config.set_max_readahead(MAX_IO);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if let Some(ino) = self.reserved(parent, name) {
            return reply.entry(&TTL, &self.reserved_attr(ino), Generation(0));
        }
        if Router::is_virtual(parent.0) {
            return self.virtual_lookup(parent.0, name, reply);
        }
        let name = match name_of(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let p = self.t(parent);
        self.entry(reply, self.tree.lookup(p, name), "lookup", req, p);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if Router::is_root(ino.0) {
            return reply.attr(&TTL, &self.reserved_attr(ino.0));
        }
        if Router::is_virtual(ino.0) {
            return match self.virt.node(ino.0) {
                Some(node) => reply.attr(&NO_TTL, &self.virtual_attr(ino.0, &node)),
                None => reply.error(Errno::ENOENT),
            };
        }
        let t = self.t(ino);
        match self.tree.getattr(t) {
            Ok(a) => reply.attr(&TTL, &self.attr(&a)),
            Err(e) => reply.error(failed("getattr", req.pid(), t, &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if let Err(e) = self.writable(ino, None) {
            return reply.error(e);
        }
        let t = self.t(ino);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(ns),
            mtime: mtime.map(ns),
        };
        let pid = req.pid();
        self.answer(move |me| async move {
            match me.tree.setattr(t, set).await {
                Ok(a) => reply.attr(&TTL, &me.attr(&a)),
                Err(e) => reply.error(failed("setattr", pid, t, &e)),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        if Router::is_virtual(ino.0) {
            return match self.virt.readlink(ino.0) {
                Ok(target) => reply.data(target.as_bytes()),
                Err(e) => reply.error(Errno::from_i32(e)),
            };
        }
        let t = self.t(ino);
        match self.tree.readlink(t) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(failed("readlink", req.pid(), t, &e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (p, name) = match self.adding(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        // Regular files, and fifos, sockets and devices as metadata (the mount is nodev).
        let Some(kind) = Kind::from_mode(mode) else {
            return reply.error(Errno::EINVAL);
        };
        let r = self.tree.mknod(
            p,
            name,
            kind,
            mode & !umask,
            decode_dev(rdev),
            req.uid(),
            req.gid(),
        );
        self.entry(reply, r, "mknod", req, p);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        if Router::is_virtual(parent.0) && !self.read_only {
            let Ok(name) = name_of(name) else {
                return reply.error(Errno::EINVAL);
            };
            return match self.virt.mkdir(parent.0, name) {
                Ok((ino, node)) => reply.entry(&NO_TTL, &self.virtual_attr(ino, &node), Generation(0)),
                Err(e) => reply.error(Errno::from_i32(e)),
            };
        }
        let (p, name) = match self.adding(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let r = self.tree.mkdir(p, name, mode & !umask, req.uid(), req.gid());
        self.entry(reply, r, "mkdir", req, p);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (p, name) = match self.removing(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        self.empty(reply, self.tree.unlink(p, name), "unlink", req, p);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if Router::is_virtual(parent.0) && !self.read_only {
            let Ok(name) = name_of(name) else {
                return reply.error(Errno::ENOENT);
            };
            return match self.virt.rmdir(parent.0, name) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Errno::from_i32(e)),
            };
        }
        let (p, name) = match self.removing(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        self.empty(reply, self.tree.rmdir(p, name), "rmdir", req, p);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        if let Err(e) = self.writable(parent, Some(link_name)) {
            return reply.error(e);
        }
        let (name, target) = match (name_of(link_name), target.to_str()) {
            (Ok(n), Some(t)) => (n, t),
            _ => return reply.error(Errno::EINVAL),
        };
        let p = self.t(parent);
        let r = self.tree.symlink(p, name, target, req.uid(), req.gid());
        self.entry(reply, r, "symlink", req, p);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if let Err(e) = self
            .writable(parent, None)
            .and(self.writable(newparent, Some(newname)))
        {
            return reply.error(e);
        }
        if self.reserved(parent, name).is_some() {
            return reply.error(Errno::EROFS);
        }
        let (name, newname) = match (name_of(name), name_of(newname)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return reply.error(Errno::EINVAL),
        };
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL); // RENAME_WHITEOUT: overlay filesystems only
        };
        let (p, np) = (self.t(parent), self.t(newparent));
        self.empty(
            reply,
            self.tree.rename(p, name, np, newname, mode),
            "rename",
            req,
            p,
        );
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (np, name) = match self.adding(newparent, newname) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let t = self.t(ino);
        self.entry(reply, self.tree.link(t, np, name), "link", req, t);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let acc = flags.0 & libc::O_ACCMODE;
        let write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        if write && (self.read_only || Router::is_virtual(ino.0)) {
            return reply.error(Errno::EROFS);
        }
        if Router::is_virtual(ino.0) {
            return match self.virt.node(ino.0) {
                // Virtual files are made at lookup; read them directly (their size may change).
                Some(VNode::File(_)) => reply.opened(self.fh(ino.0, false), FopenFlags::FOPEN_DIRECT_IO),
                Some(_) => reply.error(Errno::EISDIR),
                None => reply.error(Errno::ENOENT),
            };
        }
        let t = self.t(ino);
        let trunc = write && flags.0 & libc::O_TRUNC != 0;
        let pid = req.pid();
        self.answer(move |me| async move {
            match me.tree.open(t, write, trunc).await {
                Ok(()) => reply.opened(me.fh(t, write), OPEN_FLAGS),
                Err(e) => reply.error(failed("open", pid, t, &e)),
            }
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if Router::is_virtual(ino.0) {
            return match self.virt.read(ino.0, offset, size) {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(Errno::from_i32(e)),
            };
        }
        let t = self.t(ino);
        let (pid, h) = (req.pid(), self.handle(fh));
        self.answer(move |me| async move {
            let len = u64::from(size);
            let read = match &h {
                Some(h) => me.tree.read_sequential(t, &h.cursor, offset, len).await,
                None => me.tree.read(t, offset, len).await,
            };
            match read {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(failed("read", pid, t, &e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let t = self.t(ino);
        let (pid, data) = (req.pid(), data.to_vec());
        self.answer(move |me| async move {
            match me.tree.write(t, offset, &data).await {
                Ok(n) => reply.written(n as u32),
                Err(e) => reply.error(failed("write", pid, t, &e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let h = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        if Router::is_virtual(ino.0) {
            return reply.ok();
        }
        let (t, write) = match h {
            Some(h) => (h.ino, h.write),
            None => (self.t(ino), false),
        };
        self.empty(reply, self.tree.release(t, write), "release", req, t);
    }

    fn fsync(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let t = self.t(ino);
        self.empty(reply, self.tree.fsync(t), "fsync", req, t);
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let t = self.t(ino);
        self.empty(reply, self.tree.fsyncdir(), "fsyncdir", req, t);
    }

    fn readdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if Router::is_virtual(ino.0) {
            return self.virtual_readdir(ino.0, offset, reply);
        }
        let t = self.t(ino);
        let entries = match self.tree.readdir(t) {
            Ok(e) => e,
            Err(e) => {
                return reply.error(failed("readdir", req.pid(), t, &e));
            }
        };
        let parent = match self.tree.inode(t) {
            Ok(rec) if t != self.root => self.k(rec.parent).0,
            _ => 1,
        };
        let dots = [
            (ino.0, FileType::Directory, "."),
            (parent, FileType::Directory, ".."),
        ];
        let all = dots
            .into_iter()
            .map(|(i, k, n)| (INodeNo(i), k, n.to_string()))
            .chain(
                entries
                    .into_iter()
                    .map(|e| (self.k(e.ino), file_type(e.kind), e.name)),
            );
        for (i, (kino, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(kino, (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.tree.statfs() {
            Ok(s) => reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_free,
                s.files,
                s.files_free,
                s.block_size as u32,
                s.name_max as u32,
                s.block_size as u32,
            ),
            Err(e) => reply.error(failed("statfs", req.pid(), 1, &e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        if let Err(e) = self.writable(ino, None) {
            return reply.error(e);
        }
        let name = match name_of(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let t = self.t(ino);
        let exists = self.tree.getxattr(t, name).is_ok();
        if flags & libc::XATTR_CREATE != 0 && exists {
            return reply.error(Errno::EEXIST);
        }
        if flags & libc::XATTR_REPLACE != 0 && !exists {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        self.empty(reply, self.tree.setxattr(t, name, value), "setxattr", req, t);
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if Router::is_virtual(ino.0) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        let name = match name_of(name) {
            Ok(n) => n,
            Err(_) => return reply.error(Errno::from_i32(libc::ENODATA)),
        };
        let t = self.t(ino);
        match self.tree.getxattr(t, name) {
            Ok(v) => xattr_reply(reply, size, &v),
            Err(e) => reply.error(failed("getxattr", req.pid(), t, &e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if Router::is_virtual(ino.0) {
            return xattr_reply(reply, size, &[]);
        }
        let t = self.t(ino);
        match self.tree.listxattr(t) {
            Ok(names) => {
                let mut buf = Vec::new();
                for n in names {
                    buf.extend_from_slice(n.as_bytes());
                    buf.push(0);
                }
                xattr_reply(reply, size, &buf);
            }
            Err(e) => reply.error(failed("listxattr", req.pid(), t, &e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Err(e) = self.writable(ino, None) {
            return reply.error(e);
        }
        let name = match name_of(name) {
            Ok(n) => n,
            Err(_) => return reply.error(Errno::from_i32(libc::ENODATA)),
        };
        let t = self.t(ino);
        self.empty(reply, self.tree.removexattr(t, name), "removexattr", req, t);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Permissions are checked by the kernel (default_permissions).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (p, name) = match self.adding(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let acc = flags & libc::O_ACCMODE;
        let write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        let a = match self.tree.create(p, name, mode & !umask, req.uid(), req.gid()) {
            Ok(a) => a,
            Err(e) => {
                return reply.error(failed("create", req.pid(), p, &e));
            }
        };
        let pid = req.pid();
        self.answer(move |me| async move {
            match me.tree.open(a.ino, write, false).await {
                Ok(()) => {
                    let fh = me.fh(a.ino, write);
                    reply.created(&TTL, &me.attr(&a), Generation(0), fh, OPEN_FLAGS);
                }
                Err(e) => reply.error(failed("create", pid, p, &e)),
            }
        });
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if (size as usize) < value.len() {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_cross_the_fuse_encoding_both_ways() {
        for (major, minor) in [(0, 0), (1, 3), (8, 1), (259, 0), (4095, 0xfffff), (253, 70000)] {
            let dev = libc::makedev(major, minor);
            assert_eq!(decode_dev(encode_dev(dev)), dev, "{major}:{minor}");
        }
        // The kernel's new_encode_dev of 8:1 and of 259:70000.
        assert_eq!(encode_dev(libc::makedev(8, 1)), 0x801);
        assert_eq!(
            encode_dev(libc::makedev(259, 70000)),
            (70000 & 0xff) | (259 << 8) | ((70000 & !0xff) << 12)
        );
        assert_eq!(file_type(Kind::Fifo), FileType::NamedPipe);
        assert_eq!(file_type(Kind::BlockDevice), FileType::BlockDevice);
    }
}
