//! Sharing and receiving: [`share`] snapshots a tree file or folder into immutable manifests and returns
//! its link; [`receive`] adds what a link names into the tree (file content stays where it is and is
//! read on demand, or is fetched at once with `now`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize as _;
use serde_bytes::ByteBuf;

use crate::descriptor::node::{join_time, FileContent};
use crate::descriptor::{DirEntry, EntryKind, Link, Meta};
use crate::engine::Engine;
use crate::hold::Hold;
use crate::transfer::{self, no_progress, FileInfo, Opened};
use crate::tree::{Content, Kind, Sealed, SCRATCH};
use crate::{Error, Result};

/// The mode bits a received share keeps: permissions only, never setuid, setgid or sticky from a
/// stranger's manifest.
const PERM: u32 = 0o777;

/// What a share or receive covered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The link (share) or the tree path filled (receive).
    pub target: String,
    pub files: u64,
    pub folders: u64,
    pub bytes: u64,
    pub dir: bool,
    /// Tree paths left out, with the reason (special files: a manifest holds no fifos, sockets or
    /// devices).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<(String, String)>,
}

/// Snapshots tree path `path` (sealing files still being written first) and returns its link, pinned.
pub async fn share(engine: &Engine, hold: &Hold, path: &str) -> Result<(Link, Report)> {
    let t = engine.tree();
    let ino = t.resolve(path)?;
    let rec = t.inode(ino)?;
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut items = vec![(String::new(), ino, rec.clone())];
    if rec.kind == Kind::Dir {
        items.extend(t.walk(ino)?);
    }
    if rec.kind == Kind::Symlink {
        return Err(Error::posix(
            libc::EINVAL,
            format!("{path} is a symlink; share what it points at"),
        ));
    }
    if rec.kind.is_special() {
        return Err(Error::posix(
            libc::EINVAL,
            format!(
                "{path} is a {}; only files and folders can be shared",
                rec.kind.name()
            ),
        ));
    }
    // Seal what is still staged, so the snapshot holds the latest bytes.
    for (rel, i, r) in &items {
        if r.dirty && t.seal(hold, *i, engine.sealer()).await? == Sealed::Busy {
            return Err(Error::posix(
                libc::EBUSY,
                format!("{path}/{rel} is open for writing; close it and share again"),
            ));
        }
    }
    let mut report = Report {
        target: String::new(),
        files: 0,
        folders: 0,
        bytes: 0,
        dir: rec.kind == Kind::Dir,
        skipped: Vec::new(),
    };
    let session = engine.sealer();
    let mut children: HashMap<String, Vec<DirEntry>> = HashMap::new();
    let mut root_link = None;
    // Children before parents: walk order reversed.
    for (rel, i, _) in items.iter().rev() {
        let r = t.inode(*i)?;
        let entry_name = if rel.is_empty() {
            name.clone()
        } else {
            rel.rsplit('/').next().unwrap_or(rel).to_string()
        };
        let (mtime, mtime_ns) = crate::descriptor::node::split_time(r.mtime);
        let mut entry = DirEntry {
            name: entry_name.clone(),
            mtime,
            mtime_ns,
            mode: r.mode,
            ..DirEntry::default()
        };
        let link = match r.kind {
            Kind::File => {
                report.files += 1;
                report.bytes += r.size;
                entry.kind = EntryKind::File;
                entry.size = r.size;
                match r.content() {
                    Some(Content::Link(l)) => {
                        let l: Link = l.parse()?;
                        entry.root = Some(l.root);
                        entry.key = l.key().map(|k| ByteBuf::from(k.as_bytes().to_vec()));
                        Some(l)
                    }
                    // Small and empty files travel inside their folder's (encrypted) manifest.
                    Some(Content::Data(d)) => {
                        entry.data = Some(ByteBuf::from(d));
                        None
                    }
                    _ => {
                        entry.data = Some(ByteBuf::new());
                        None
                    }
                }
            }
            Kind::Symlink => {
                entry.kind = EntryKind::Symlink;
                entry.target = r.target.clone();
                None
            }
            k @ (Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice) => {
                report.skipped.push((
                    format!("{}/{rel}", path.trim_end_matches('/')),
                    format!(
                        "a {} is not shared (links hold files, folders and symlinks)",
                        k.name()
                    ),
                ));
                continue;
            }
            Kind::Dir => {
                report.folders += 1;
                let mut list = children.remove(rel).unwrap_or_default();
                list.sort_by(|a, b| a.name.cmp(&b.name));
                entry.kind = EntryKind::Dir;
                entry.size = list
                    .iter()
                    .map(|e| if e.kind == EntryKind::File { e.size } else { 0 })
                    .sum();
                let l = session
                    .put_manifest(hold, &entry_name, r.mtime, r.mode, list)
                    .await?;
                entry.root = Some(l.root);
                entry.key = l.key().map(|k| ByteBuf::from(k.as_bytes().to_vec()));
                Some(l)
            }
        };
        if rel.is_empty() {
            root_link = link;
        } else {
            let parent = rel
                .rsplit_once('/')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            children.entry(parent).or_default().push(entry);
        }
    }
    let link = match root_link {
        Some(l) => l,
        // A small or empty file has no sealed content of its own: seal its bytes so it has a link.
        None => {
            // Read again: sealing above may have made its staged bytes inline.
            let rec = t.inode(ino)?;
            let data = rec.content().and_then(|c| match c {
                Content::Data(d) => Some(d),
                _ => None,
            });
            let (mtime, mtime_ns) = crate::descriptor::node::split_time(rec.mtime);
            let info = FileInfo {
                name: name.clone(),
                mtime,
                mtime_ns,
                mode: rec.mode,
                media_type: crate::media::by_name(std::path::Path::new(&name)),
            };
            let bytes = std::io::Cursor::new(data.unwrap_or_default());
            session.put_reader(hold, bytes, info).await?.0
        }
    };
    session.finish(&link, &name, report.bytes, report.dir).await?;
    report.target = link.to_string();
    Ok((link, report))
}

/// `[receive]` in `config.toml`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReceiveConfig {
    /// The most a received share may declare in file sizes (bytes, or a size such as `"500GiB"`);
    /// a larger share is refused and leaves nothing in the tree.
    #[serde(deserialize_with = "size_or_bytes")]
    pub max_size: u64,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig { max_size: 1 << 40 }
    }
}

fn size_or_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(t) => crate::fmt::parse_size(&t).map_err(serde::de::Error::custom),
    }
}

/// How one receive runs.
#[derive(Clone)]
pub struct ReceiveOptions {
    /// Read every file's content at once (so missing blocks are found, and fetched from peers, now
    /// instead of on first read).
    pub now: bool,
    /// The most the share may declare in file sizes, for this receive in place of `[receive]
    /// max_size`.
    pub max_size: Option<u64>,
    /// Told the bytes of each file received: as its content is read with `now`, else as its entry is
    /// added.
    pub progress: transfer::Progress,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            now: false,
            max_size: None,
            progress: no_progress(),
        }
    }
}

/// Adds what `opened` (from `link`, with its key) names at tree path `path`: inside it when it is a
/// folder, else under that name. See [`receive_into`] and [`ReceiveOptions`].
pub async fn receive(
    engine: &Engine,
    hold: &Hold,
    opened: Opened,
    path: Option<&str>,
    opts: &ReceiveOptions,
) -> Result<Report> {
    let t = engine.tree().clone();
    let name = match opened.name() {
        "" => opened.root.to_string(),
        n => n.to_string(),
    };
    let path = path
        .map(crate::tree::normalize_path)
        .unwrap_or_else(|| "/".into());
    let (parent, name) = match t.resolve(&path) {
        Ok(ino) if t.getattr(ino)?.kind == Kind::Dir => (ino, name),
        Ok(_) => {
            return Err(Error::posix(
                libc::EEXIST,
                format!("tree path {path} exists; choose another"),
            ))
        }
        Err(e) if e.errno() == libc::ENOENT => {
            let (dir, last) = path.rsplit_once('/').unwrap_or(("", &path));
            (crate::sync::mkdir_p(&t, dir)?, last.to_string())
        }
        Err(e) => return Err(e),
    };
    let target = join(&t.path_of(parent)?, &name);
    receive_into(engine, hold, opened, parent, &name, &target, opts).await
}

/// Adds what `opened` names as entry `name` of tree folder `parent` (`target` names it in messages).
///
/// A folder is built in the tree's scratch folder and renamed into place when complete, so a receive
/// that fails (a hostile or broken share, missing blocks, a share larger than `[receive] max_size` (or
/// the options' `max_size`) or, with `now`, than the free space) leaves nothing behind, and one cut short by a crash is removed when
/// the tree is next opened. A folder reached twice is refused, and content kept inside a manifest gets a
/// descriptor over the same blocks instead of a copy.
pub async fn receive_into(
    engine: &Engine,
    hold: &Hold,
    opened: Opened,
    parent: u64,
    name: &str,
    target: &str,
    opts: &ReceiveOptions,
) -> Result<Report> {
    let t = engine.tree().clone();
    if t.lookup(parent, name).is_ok() {
        return Err(Error::posix(
            libc::EEXIST,
            format!("{target} already exists in the tree"),
        ));
    }
    let mut budget = Budget::new(engine, opts)?;
    let mut report = Report {
        target: target.to_string(),
        files: 0,
        folders: 0,
        bytes: 0,
        dir: matches!(opened.meta, Meta::Dir { .. }),
        skipped: Vec::new(),
    };
    let store = engine.repo().store().clone();
    if let Meta::File {
        size,
        mtime,
        mtime_ns,
        mode,
        ..
    } = &opened.meta
    {
        budget.take(*size, target)?;
        let link = Link::new(opened.root, opened.key.clone()).to_string();
        if opts.now {
            fetch(&store, &opened, &opts.progress).await?;
        } else {
            (opts.progress)(*size);
        }
        t.put_link(
            parent,
            name,
            &link,
            *size,
            join_time(*mtime, *mtime_ns),
            *mode & PERM,
            None,
        )?;
        report.files = 1;
        report.bytes = *size;
        return Ok(report);
    }
    let Meta::Dir { mode, .. } = &opened.meta else {
        return Err(Error::Descriptor {
            id: opened.root,
            reason: "neither a file nor a folder".into(),
        });
    };
    let owner = t.getattr(parent)?;
    let (top, building) = t.mkdir_scratch("receive", *mode & PERM, owner.uid, owner.gid)?;
    let built = Build {
        engine,
        hold,
        tree: &t,
        owner: (owner.uid, owner.gid),
        opts,
        target,
    }
    .fill(opened, top, &mut budget, &mut report)
    .await;
    let placed = built.and_then(|()| {
        t.rename(
            SCRATCH,
            &building,
            parent,
            name,
            crate::tree::RenameMode::NoReplace,
        )
    });
    if let Err(e) = placed {
        if let Err(clean) = t.remove_all(SCRATCH, &building) {
            tracing::warn!(error = %clean, "could not remove a failed receive from the scratch folder");
        }
        return Err(e);
    }
    Ok(report)
}

/// What a receive may still take: `[receive] max_size` (or the options' `max_size`), and with `now`
/// the repository's free space.
struct Budget {
    left: u64,
    why: &'static str,
}

impl Budget {
    fn new(engine: &Engine, opts: &ReceiveOptions) -> Result<Budget> {
        let (cap, why) = match opts.max_size {
            Some(cap) => (cap, "--max-size"),
            None => (
                engine.repo().config().receive.max_size,
                "`[receive] max_size` in the repository's config.toml",
            ),
        };
        if opts.now {
            let st = engine.tree().statfs()?;
            let free = st.blocks_free.saturating_mul(st.block_size);
            if free < cap {
                return Ok(Budget {
                    left: free,
                    why: "the repository's free space (--now stores every block)",
                });
            }
        }
        Ok(Budget { left: cap, why })
    }

    /// Takes `size` declared bytes for `at`, or refuses the share.
    fn take(&mut self, size: u64, at: &str) -> Result<()> {
        self.left = self.left.checked_sub(size).ok_or_else(|| {
            Error::posix(
                libc::EFBIG,
                format!(
                    "the share at {at} declares more than {} allows; nothing was received",
                    self.why
                ),
            )
        })?;
        Ok(())
    }
}

/// One folder receive's fixed parts.
struct Build<'a> {
    engine: &'a Engine,
    hold: &'a Hold,
    tree: &'a crate::tree::Tree,
    owner: (u32, u32),
    opts: &'a ReceiveOptions,
    target: &'a str,
}

impl Build<'_> {
    /// Fills tree folder `top` with the folder `opened`, walking its subfolders depth first.
    async fn fill(&self, opened: Opened, top: u64, budget: &mut Budget, report: &mut Report) -> Result<()> {
        let t = self.tree;
        let (uid, gid) = self.owner;
        let store = self.engine.repo().store().clone();
        let mut seen = std::collections::HashSet::from([opened.root]);
        let mut stack = vec![(Arc::new(opened), top, 1usize)];
        // Folder times are set last, once their entries no longer change them.
        let mut times = Vec::new();
        while let Some((dir, ino, depth)) = stack.pop() {
            report.folders += 1;
            if let Meta::Dir { mtime, mtime_ns, .. } = &dir.meta {
                times.push((ino, join_time(*mtime, *mtime_ns)));
            }
            if depth > transfer::MAX_FOLDER_DEPTH {
                return Err(Error::Descriptor {
                    id: dir.root,
                    reason: "folders nested too deep".into(),
                });
            }
            let mut walk = dir.entry_walk();
            while let Some(e) = walk.next().await? {
                match e.kind {
                    EntryKind::Dir => {
                        let link = e.link().ok_or_else(|| Error::Descriptor {
                            id: dir.root,
                            reason: format!("folder entry {:?} has no link", e.name),
                        })?;
                        if !seen.insert(link.root) {
                            return Err(Error::Descriptor {
                                id: link.root,
                                reason: "the same folder appears twice in one share (a loop or a copy bomb)"
                                    .into(),
                            });
                        }
                        let child = transfer::open(&store, &link, None).await?;
                        let sub = t.mkdir(ino, &e.name, e.mode & PERM, uid, gid)?.ino;
                        stack.push((Arc::new(child), sub, depth + 1));
                    }
                    EntryKind::Symlink => {
                        let target = e.target.clone().unwrap_or_default();
                        let sub = t.symlink(ino, &e.name, &target, uid, gid)?.ino;
                        let set = crate::tree::SetAttr {
                            mtime: Some(join_time(e.mtime, e.mtime_ns)),
                            ..Default::default()
                        };
                        t.setattr(sub, set).await?;
                    }
                    EntryKind::File => {
                        budget.take(e.size, self.target)?;
                        let content = self.file_content(&store, &dir, &e).await?;
                        let sub = t.put_content(
                            ino,
                            &e.name,
                            &content,
                            e.size,
                            join_time(e.mtime, e.mtime_ns),
                            e.mode & PERM,
                            Some(""),
                        )?;
                        let set = crate::tree::SetAttr {
                            uid: Some(uid),
                            gid: Some(gid),
                            ..Default::default()
                        };
                        t.setattr(sub, set).await?;
                        report.files += 1;
                        report.bytes += e.size;
                    }
                }
            }
        }
        for (ino, mtime) in times.into_iter().rev() {
            let set = crate::tree::SetAttr {
                mtime: Some(mtime),
                ..Default::default()
            };
            t.setattr(ino, set).await?;
        }
        Ok(())
    }

    /// The content a received file gets in the tree: its own link; its bytes inline when the manifest
    /// kept them and they are small enough for the tree ([`crate::tree::inline_max`]), else sealed
    /// into a link of their own; or for tuples kept inside the manifest a descriptor of its own, made
    /// without copying the content.
    async fn file_content(
        &self,
        store: &Arc<dyn crate::store::BlockSource>,
        dir: &Opened,
        e: &DirEntry,
    ) -> Result<Content> {
        let link = match e.content() {
            Some(FileContent::Link(l)) => {
                if self.opts.now {
                    fetch(
                        store,
                        &transfer::open(store, &l, None).await?,
                        &self.opts.progress,
                    )
                    .await?;
                } else {
                    (self.opts.progress)(e.size);
                }
                l
            }
            Some(FileContent::Data(bytes)) if bytes.len() as u64 <= self.tree.inline_max() => {
                (self.opts.progress)(e.size);
                return Ok(Content::Data(bytes.to_vec()));
            }
            Some(FileContent::Data(bytes)) => {
                (self.opts.progress)(e.size);
                restore(self.engine, self.hold, e, bytes.to_vec()).await?
            }
            Some(FileContent::Tuples {
                key,
                tuples,
                block_size,
            }) => {
                let inline = Opened::inline(store, dir.root, key.clone(), e, tuples.to_vec(), block_size);
                if self.opts.now {
                    fetch(store, &inline, &self.opts.progress).await?;
                } else {
                    (self.opts.progress)(e.size);
                }
                self.engine
                    .sealer()
                    .put_file_tuples(self.hold, inline.meta.clone(), key, tuples.to_vec())
                    .await?
            }
            None => {
                return Err(Error::Descriptor {
                    id: dir.root,
                    reason: format!("file entry {:?} has no content", e.name),
                })
            }
        };
        Ok(Content::Link(link.to_string()))
    }
}

async fn restore(engine: &Engine, hold: &Hold, e: &DirEntry, bytes: Vec<u8>) -> Result<Link> {
    let info = FileInfo {
        name: e.name.clone(),
        mtime: e.mtime,
        mtime_ns: e.mtime_ns,
        mode: e.mode,
        media_type: e
            .media_type
            .clone()
            .unwrap_or_else(|| crate::media::by_name(std::path::Path::new(&e.name))),
    };
    let (link, _) = engine
        .sealer()
        .put_reader(hold, std::io::Cursor::new(bytes), info)
        .await?;
    engine.sealer().commit().await?;
    Ok(link)
}

async fn fetch(
    store: &Arc<dyn crate::store::BlockSource>,
    opened: &Opened,
    progress: &transfer::Progress,
) -> Result<()> {
    transfer::read_to(
        store,
        opened,
        Box::new(std::io::sink()),
        "<fetch>".into(),
        progress,
    )
    .await?;
    Ok(())
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockSize;
    use crate::repo::{Config, Repo};
    use crate::tree::ROOT;

    /// Opens `link` and receives it at tree path `at`, queued (not sealed now).
    async fn receive_at(engine: &Engine, link: &Link, at: &str) -> Result<Report> {
        let opened = transfer::open(engine.repo().store(), link, None).await?;
        receive(
            engine,
            &engine.repo().hold().await,
            opened,
            Some(at),
            &ReceiveOptions::default(),
        )
        .await
    }

    /// Options that add up what the receive reports as it goes.
    fn counted(now: bool, max_size: Option<u64>) -> (ReceiveOptions, Arc<std::sync::atomic::AtomicU64>) {
        let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sum = total.clone();
        let progress: transfer::Progress = Arc::new(move |n| {
            sum.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        });
        (
            ReceiveOptions {
                now,
                max_size,
                progress,
            },
            total,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn share_snapshots_and_receive_adds_back() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            block_size: BlockSize::new(4096).unwrap(),
            ..Config::default()
        };
        let repo = Arc::new(Repo::init(&dir.path().join("repo"), cfg).unwrap());
        let engine = crate::node::engine(repo.clone()).unwrap();
        let t = engine.tree().clone();
        let d = t.mkdir(ROOT, "d", 0o750, 0, 0).unwrap().ino;
        let sub = t.mkdir(d, "sub", 0o755, 0, 0).unwrap().ino;
        t.create(d, "empty", 0o600, 0, 0).unwrap();
        t.symlink(d, "ln", "sub/f", 0, 0).unwrap();
        let f = t.create(sub, "f", 0o644, 0, 0).unwrap().ino;
        t.open(f, true, false).await.unwrap();
        t.write(f, 0, &vec![3u8; 9_000]).await.unwrap();
        // Open for writing: cannot be snapshotted yet.
        assert_eq!(
            share(&engine, &engine.repo().hold().await, "/d")
                .await
                .unwrap_err()
                .errno(),
            libc::EBUSY
        );
        t.release(f, true).unwrap();
        // Staged content is sealed as part of the share.
        let (link, report) = share(&engine, &engine.repo().hold().await, "/d").await.unwrap();
        assert_eq!(
            (report.files, report.folders, report.bytes, report.dir),
            (2, 2, 9_000, true)
        );
        assert!(!t.getattr(f).unwrap().dirty);
        assert!(repo.state().pins().unwrap().iter().any(|(r, _)| *r == link.root));
        assert_eq!(
            share(&engine, &engine.repo().hold().await, "/d/ln")
                .await
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );
        // A never-written file still gets a link.
        let (elink, er) = share(&engine, &engine.repo().hold().await, "/d/empty")
            .await
            .unwrap();
        assert_eq!((er.files, er.bytes, er.dir), (1, 0, false));

        // Receive the folder elsewhere (into an existing folder, with --now), and the single file.
        t.mkdir(ROOT, "inbox", 0o755, 0, 0).unwrap();
        let opened = transfer::open(repo.store(), &link, None).await.unwrap();
        let (opts, fetched) = counted(true, None);
        let r = receive(
            &engine,
            &engine.repo().hold().await,
            opened,
            Some("/inbox"),
            &opts,
        )
        .await
        .unwrap();
        assert_eq!((r.files, r.folders, r.target.as_str()), (2, 2, "/inbox/d"));
        // With --now the progress counts the content as it is read: each file's bytes once.
        assert_eq!(fetched.load(std::sync::atomic::Ordering::Relaxed), 9_000);
        let got = t.resolve("/inbox/d/sub/f").unwrap();
        assert_eq!(t.read(got, 0, 1 << 20).await.unwrap(), vec![3u8; 9_000]);
        assert_eq!(t.getattr(t.resolve("/inbox/d").unwrap()).unwrap().mode, 0o750);
        assert_eq!(t.readlink(t.resolve("/inbox/d/ln").unwrap()).unwrap(), "sub/f");
        assert_eq!(
            receive_at(&engine, &link, "/inbox").await.unwrap_err().errno(),
            libc::EEXIST
        );
        let r = receive_at(&engine, &elink, "/new/dir/e").await.unwrap();
        assert_eq!(r.target, "/new/dir/e");
        assert_eq!(
            receive_at(&engine, &elink, "/new/dir/e")
                .await
                .unwrap_err()
                .errno(),
            libc::EEXIST
        );

        // A folder stored by `put` keeps small files inline; received, they stay inline in the tree,
        // and larger ones get links of their own.
        let src = dir.path().join("p");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("tiny"), b"tiny").unwrap();
        std::fs::write(src.join("mid"), vec![5u8; 10_000]).unwrap();
        let res = engine
            .sealer()
            .put_path(&engine.repo().hold().await, &src)
            .await
            .unwrap();
        let opened = transfer::open(repo.store(), &res.link.parse().unwrap(), None)
            .await
            .unwrap();
        let (opts, counted_bytes) = counted(false, None);
        let r = receive(&engine, &engine.repo().hold().await, opened, None, &opts)
            .await
            .unwrap();
        assert_eq!((r.files, r.target.as_str()), (2, "/p"));
        // Without --now each file counts as its entry is added (inline or not).
        assert_eq!(counted_bytes.load(std::sync::atomic::Ordering::Relaxed), 10_004);
        let ino = t.resolve("/p/tiny").unwrap();
        assert_eq!(
            t.inode(ino).unwrap().content(),
            Some(Content::Data(b"tiny".to_vec()))
        );
        let ino = t.resolve("/p/mid").unwrap();
        assert!(t.inode(ino).unwrap().link.is_some());
        assert_eq!(t.read(ino, 0, 1 << 20).await.unwrap(), vec![5u8; 10_000]);
    }

    fn dir_entry(name: &str, link: &Link) -> DirEntry {
        DirEntry {
            name: name.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            root: Some(link.root),
            key: link.key().map(|k| ByteBuf::from(k.as_bytes().to_vec())),
            ..DirEntry::default()
        }
    }

    /// A folder manifest named `name` holding `entries`, as a peer could make it.
    async fn manifest(engine: &Engine, hold: &Hold, name: &str, entries: Vec<DirEntry>) -> Link {
        engine
            .sealer()
            .put_manifest(hold, name, 0, 0o755, entries)
            .await
            .unwrap()
    }

    /// Names at the tree's root, hidden ones included.
    fn root_names(t: &crate::tree::Tree) -> Vec<String> {
        t.readdir(ROOT).unwrap().into_iter().map(|e| e.name).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_broken_and_oversized_shares_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            block_size: BlockSize::new(4096).unwrap(),
            receive: ReceiveConfig { max_size: 20_000 },
            ..Config::default()
        };
        let repo = Arc::new(Repo::init(&dir.path().join("repo"), cfg).unwrap());
        let engine = crate::node::engine(repo.clone()).unwrap();
        let t = engine.tree().clone();
        let hold = repo.hold().await;
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), vec![7u8; 15_000]).unwrap();
        std::fs::write(src.join("a"), b"a").unwrap();
        let sub: Link = engine
            .sealer()
            .put_path(&hold, &src.join("sub"))
            .await
            .unwrap()
            .link
            .parse()
            .unwrap();
        let before = root_names(&t);
        let sealer = engine.sealer();

        // The same folder twice (each copy would multiply what the tree holds).
        let twice = manifest(
            &engine,
            &hold,
            "twice",
            vec![dir_entry("x", &sub), dir_entry("y", &sub)],
        )
        .await;
        let err = receive_at(&engine, &twice, "/").await.unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        assert_eq!(root_names(&t), before);

        // A subfolder whose blocks are missing, after entries that were received fine.
        let gone = Link::new(crate::block::BlockId::of(b"gone"), crate::crypto::Key::random());
        let broken = manifest(
            &engine,
            &hold,
            "broken",
            vec![dir_entry("a", &sub), dir_entry("z", &gone)],
        )
        .await;
        assert!(receive_at(&engine, &broken, "/").await.is_err());
        assert_eq!(root_names(&t), before);

        // Two copies of 15,000 bytes declared: over `[receive] max_size` (20,000).
        let other: Link = sealer
            .put_path(&hold, &src.join("sub"))
            .await
            .unwrap()
            .link
            .parse()
            .unwrap();
        let big = manifest(
            &engine,
            &hold,
            "big",
            vec![dir_entry("a", &sub), dir_entry("b", &other)],
        )
        .await;
        let err = receive_at(&engine, &big, "/").await.unwrap_err();
        assert_eq!(err.errno(), libc::EFBIG, "{err}");
        assert!(err.to_string().contains("max_size"), "{err}");
        assert_eq!(root_names(&t), before);
        // Nothing half-built is left where it was built either.
        assert!(t.readdir(SCRATCH).unwrap().is_empty());
        // A cap given for one receive (`--max-size`) takes the config's place, both ways.
        let receive_capped = |cap: u64, at: &'static str| {
            let (engine, big) = (&engine, &big);
            async move {
                let opened = transfer::open(engine.repo().store(), big, None).await?;
                let opts = ReceiveOptions {
                    max_size: Some(cap),
                    ..ReceiveOptions::default()
                };
                receive(engine, &engine.repo().hold().await, opened, Some(at), &opts).await
            }
        };
        let err = receive_capped(1_000, "/capped").await.unwrap_err();
        assert_eq!(err.errno(), libc::EFBIG, "{err}");
        assert!(err.to_string().contains("--max-size"), "{err}");
        assert!(t.resolve("/capped").is_err());
        let r = receive_capped(40_000, "/uncapped").await.unwrap();
        assert_eq!(r.bytes, 30_000);
        t.remove_all(ROOT, "uncapped").unwrap();
        assert_eq!(root_names(&t), before);

        // One copy fits, and lands under its name with nothing hidden left beside it.
        let one = manifest(&engine, &hold, "one", vec![dir_entry("a", &sub)]).await;
        receive_at(&engine, &one, "/").await.unwrap();
        assert_eq!(root_names(&t).len(), before.len() + 1);
        assert!(t.readdir(SCRATCH).unwrap().is_empty());
        // Its small file kept inside the manifest got a descriptor over the same content blocks.
        let received: Link = t
            .inode(t.resolve("/one/a/f").unwrap())
            .unwrap()
            .link
            .unwrap()
            .parse()
            .unwrap();
        let opened = transfer::open(repo.store(), &sub, None).await.unwrap();
        let inline = opened.entries().await.unwrap().remove(0);
        let Some(FileContent::Tuples { key, tuples, .. }) = inline.content() else {
            panic!("15,000 bytes at 4 KiB blocks are kept inline");
        };
        assert_eq!(received.key(), Some(&key));
        let got = transfer::open(repo.store(), &received, None).await.unwrap();
        assert_eq!(got.tree.tuple_at(0).await.unwrap(), tuples[0]);
        let ino = t.resolve("/one/a/f").unwrap();
        assert_eq!(t.read(ino, 0, 1 << 20).await.unwrap(), vec![7u8; 15_000]);
    }
}
