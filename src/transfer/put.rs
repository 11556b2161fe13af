//! Storing: a [`Sealer`] streams files and folders into sealed tuples and descriptor trees, committing the
//! state in small batches after the blocks are durable, and pins what it was asked to store.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use serde_bytes::ByteBuf;

use super::{Progress, COMMIT_EVERY, PARALLEL_BLOCKS};
use crate::block::{self, BlockId};
use crate::crypto::{self, ContentCipher, Key};
use crate::descriptor::node::{check_name, Meta};
use crate::descriptor::{DirEntry, EntryKind, FanoutWriter, Link, SealedNode};
use crate::error::IoContext;
use crate::hold::Hold;
use crate::pool::set_key;
use crate::repo::Repo;
use crate::state::{Batch, BlockKind, PinRecord};
use crate::store::LocalStore;
use crate::{Error, Result};

/// What storing one path produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutResult {
    /// The link, with its key (or salt for password links).
    pub link: String,
    /// The name recorded in the descriptor.
    pub name: String,
    /// Bytes of content (for folders, of every file below).
    pub size: u64,
    /// Whether it is a folder.
    pub dir: bool,
    /// Files stored (1 for a file).
    pub files: u64,
    /// What inside a folder was not stored, and why (an unreadable file, a vanished one, a name that
    /// is not UTF-8). A folder stored with skips is still stored and pinned; the CLI exits with
    /// "partial".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// A path inside a stored folder that was left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

impl Skipped {
    fn new(path: &Path, reason: impl std::fmt::Display) -> Skipped {
        let s = Skipped {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        tracing::warn!(path = %s.path, reason = %s.reason, "not stored");
        s
    }
}

/// Whether `e` is a failure to read the source at `path` (so that entry is skipped, not the whole
/// folder), as opposed to a failure of the repository.
fn source_failure(e: &Error, path: &Path) -> bool {
    matches!(e, Error::Io { path: p, .. } if p == path)
}

/// The reason of a source failure, without the path (the skip names it).
fn io_reason(e: Error) -> String {
    match e {
        Error::Io { source, .. } => source.to_string(),
        e => e.to_string(),
    }
}

/// How [`Sealer::store_file`] left a file.
enum Stored {
    /// With a descriptor of its own.
    Link(Link, u64),
    /// As tuples for its folder's manifest.
    Inline {
        key: Key,
        tuples: Vec<Vec<BlockId>>,
        size: u64,
    },
}

/// Files up to this many bytes live inside their folder's manifest: an eighth of a block.
pub fn inline_data_max(block_size: usize) -> usize {
    block_size / 8
}

/// Files of up to this many blocks keep their tuples in their folder's manifest: as many tuples as fit in
/// an eighth of a block (36-byte ids plus CBOR framing).
pub fn inline_tuples_max(block_size: usize, tuple_size: usize) -> usize {
    (block_size / 8) / (38 * tuple_size + 4)
}

/// The metadata of a file being stored.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub name: String,
    /// Seconds since the epoch, and nanoseconds past them.
    pub mtime: i64,
    pub mtime_ns: u32,
    pub mode: u32,
    pub media_type: String,
}

/// A storing session over one repository: shares the pending state batch and randomizer choices across
/// every file it stores, and commits them after the blocks they name are durable. Every call that
/// stores takes the caller's [`Hold`], so `gc` cannot remove what it stores before it is referenced.
pub struct Sealer {
    repo: Arc<Repo>,
    batch: Mutex<Batch>,
    /// Randomizer sets this session chose and has not committed (also in the repository's pending set).
    mine: Mutex<Vec<[u8; 32]>>,
    since_commit: Mutex<usize>,
    progress: Progress,
}

impl Sealer {
    /// A session reporting stored bytes to `progress`.
    pub fn new(repo: Arc<Repo>, progress: Progress) -> Self {
        Sealer {
            repo,
            batch: Mutex::new(Batch::default()),
            mine: Mutex::new(Vec::new()),
            since_commit: Mutex::new(0),
            progress,
        }
    }

    /// Stores the file or folder at `path` (following a symlink given here), pins it and returns its link.
    pub async fn put_path(&self, hold: &Hold, path: &Path) -> Result<PutResult> {
        let meta = std::fs::metadata(path).at(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (link, size, files, skipped) = if meta.is_dir() {
            self.put_dir(hold, path, &name).await?
        } else if meta.is_file() {
            let file = std::fs::File::open(path).at(path)?;
            let info = file_info(path, &name, &meta);
            let (link, size) = self.put_reader(hold, file, info).await?;
            (link, size, 1, Vec::new())
        } else {
            return Err(Error::Unsupported {
                what: format!("storing {}", path.display()),
                reason: "only regular files and folders can be stored".into(),
            });
        };
        self.finish(&link, &name, size, meta.is_dir()).await?;
        Ok(PutResult {
            link: link.to_string(),
            name,
            size,
            dir: meta.is_dir(),
            files,
            skipped,
        })
    }

    /// Stores a byte stream as a file; returns its link and size. Not pinned until [`Sealer::finish`].
    pub async fn put_reader(
        &self,
        _hold: &Hold,
        reader: impl Read + Send + 'static,
        info: FileInfo,
    ) -> Result<(Link, u64)> {
        match self.store_file(reader, info, 0).await? {
            Stored::Link(link, size) => Ok((link, size)),
            Stored::Inline { .. } => unreachable!("store_file with no inline allowance seals a root"),
        }
    }

    /// Stores a byte stream; a file of at most `inline_tuples` blocks is returned as its tuples (for its
    /// folder's manifest) instead of getting a descriptor of its own.
    async fn store_file(
        &self,
        reader: impl Read + Send + 'static,
        info: FileInfo,
        inline_tuples: usize,
    ) -> Result<Stored> {
        let repo = self.repo.clone();
        let bs = repo.block_size();
        let key = Key::random();
        let cipher = Arc::new(ContentCipher::new(&key));
        let mut rx = spawn_reader(reader, bs);
        let chunks = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut sealed = chunks
            .map(|chunk| {
                let cipher = cipher.clone();
                async move {
                    let (index, data, len) = chunk?;
                    let tuple = self.seal_block(index, data, len, &cipher).await?;
                    Ok::<_, Error>((tuple, len))
                }
            })
            .buffered(PARALLEL_BLOCKS);
        let mut tree = FanoutWriter::<Vec<BlockId>>::new(key.clone(), bs);
        let mut size = 0u64;
        while let Some(item) = sealed.next().await {
            let (tuple, len) = item?;
            size += len as u64;
            (self.progress)(len as u64);
            let nodes = tree.push(tuple)?;
            self.store_nodes(nodes).await?;
            self.maybe_commit().await?;
        }
        let tree = match tree.into_small(inline_tuples) {
            Ok(tuples) => return Ok(Stored::Inline { key, tuples, size }),
            Err(tree) => tree,
        };
        let meta = Meta::File {
            name: info.name,
            size,
            block_size: bs as u64,
            tuple_size: repo.config().tuple_size,
            mtime: info.mtime,
            mtime_ns: info.mtime_ns,
            mode: info.mode,
            media_type: info.media_type,
        };
        let (root, nodes) = tree.finish(meta)?;
        self.store_nodes(nodes).await?;
        Ok(Stored::Link(Link::new(root, key), size))
    }

    /// The folder entry of the regular file at `path`: its content inline when it is far smaller than a
    /// block, its tuples inline when it has a few blocks, else a link to a descriptor of its own.
    async fn file_entry(&self, path: &Path, name: &str, meta: &std::fs::Metadata) -> Result<DirEntry> {
        let bs = self.repo.block_size();
        let info = file_info(path, name, meta);
        let base = DirEntry {
            name: name.to_string(),
            kind: EntryKind::File,
            mtime: info.mtime,
            mtime_ns: info.mtime_ns,
            mode: info.mode,
            media_type: Some(info.media_type.clone()),
            ..DirEntry::default()
        };
        if meta.len() <= inline_data_max(bs) as u64 {
            let data = std::fs::read(path).at(path)?;
            if data.len() <= inline_data_max(bs) {
                (self.progress)(data.len() as u64);
                return Ok(DirEntry {
                    size: data.len() as u64,
                    data: Some(ByteBuf::from(data)),
                    ..base
                });
            }
        }
        let file = std::fs::File::open(path).at(path)?;
        let tuple_size = usize::from(self.repo.config().tuple_size);
        Ok(
            match self
                .store_file(file, info, inline_tuples_max(bs, tuple_size))
                .await?
            {
                Stored::Link(link, size) => DirEntry {
                    size,
                    root: Some(link.root),
                    key: link.key().map(|k| ByteBuf::from(k.as_bytes().to_vec())),
                    ..base
                },
                Stored::Inline { key, tuples, size } => DirEntry {
                    size,
                    key: Some(ByteBuf::from(key.as_bytes().to_vec())),
                    tuples: Some(tuples),
                    block_size: Some(bs as u64),
                    ..base
                },
            },
        )
    }

    /// Stores a folder and everything below it; returns its link, content bytes and file count.
    /// Stores folder `dir`: its link, content bytes and files, and what inside it could not be read
    /// (left out; the rest is stored).
    async fn put_dir(&self, _hold: &Hold, dir: &Path, name: &str) -> Result<(Link, u64, u64, Vec<Skipped>)> {
        // Depth-first with an explicit stack so deep trees do not recurse. Each folder's entries stream
        // into its manifest tree as they are made, so memory stays bounded however large a folder is.
        struct Frame {
            name: String,
            meta: std::fs::Metadata,
            pending: std::vec::IntoIter<std::fs::DirEntry>,
            key: Key,
            tree: FanoutWriter<DirEntry>,
            entries: u64,
            size: u64,
            files: u64,
        }
        let bs = self.repo.block_size();
        let open = |path: &Path, name: String| -> Result<Frame> {
            let meta = std::fs::symlink_metadata(path).at(path)?;
            let mut children: Vec<std::fs::DirEntry> = std::fs::read_dir(path)
                .at(path)?
                .collect::<std::io::Result<_>>()
                .at(path)?;
            children.sort_by_key(|e| e.file_name());
            let key = Key::random();
            Ok(Frame {
                name,
                meta,
                pending: children.into_iter(),
                tree: FanoutWriter::new(key.clone(), bs),
                key,
                entries: 0,
                size: 0,
                files: 0,
            })
        };
        let mut stack = vec![open(dir, name.to_string())?];
        let mut skipped = Vec::new();
        loop {
            let Some(top) = stack.last_mut() else {
                unreachable!("the stack always holds the root frame until it returns");
            };
            let Some(child) = top.pending.next() else {
                let done = stack.pop().unwrap_or_else(|| unreachable!());
                let (root, nodes) = done.tree.finish(Meta::Dir {
                    name: done.name.clone(),
                    mtime: done.meta.mtime(),
                    mtime_ns: done.meta.mtime_nsec() as u32,
                    mode: done.meta.permissions().mode() & 0o7777,
                    entries: done.entries,
                })?;
                self.store_nodes(nodes).await?;
                let link = Link::new(root, done.key);
                let Some(parent) = stack.last_mut() else {
                    return Ok((link, done.size, done.files, skipped));
                };
                parent.size += done.size;
                parent.files += done.files;
                let entry = entry_for(
                    &done.name,
                    EntryKind::Dir,
                    done.size,
                    &done.meta,
                    Some(&link),
                    None,
                );
                parent.entries += 1;
                self.store_nodes(parent.tree.push(entry)?).await?;
                continue;
            };
            let path = child.path();
            let name = match child.file_name().into_string() {
                Ok(n) => n,
                Err(raw) => {
                    skipped.push(Skipped::new(&path, format!("the name {raw:?} is not UTF-8")));
                    continue;
                }
            };
            if let Err(e) = check_name(&name) {
                skipped.push(Skipped::new(&path, e));
                continue;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    skipped.push(Skipped::new(&path, e));
                    continue;
                }
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                match open(&path, name) {
                    Ok(frame) => stack.push(frame),
                    Err(e) if source_failure(&e, &path) => skipped.push(Skipped::new(&path, io_reason(e))),
                    Err(e) => return Err(e),
                }
            } else if ft.is_file() {
                let entry = match self.file_entry(&path, &name, &meta).await {
                    Ok(entry) => entry,
                    Err(e) if source_failure(&e, &path) => {
                        skipped.push(Skipped::new(&path, io_reason(e)));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let top = stack.last_mut().unwrap_or_else(|| unreachable!());
                top.size += entry.size;
                top.files += 1;
                top.entries += 1;
                self.store_nodes(top.tree.push(entry)?).await?;
            } else if ft.is_symlink() {
                let target = match std::fs::read_link(&path) {
                    Ok(t) => t.to_string_lossy().into_owned(),
                    Err(e) => {
                        skipped.push(Skipped::new(&path, e));
                        continue;
                    }
                };
                let top = stack.last_mut().unwrap_or_else(|| unreachable!());
                top.entries += 1;
                let entry = entry_for(&name, EntryKind::Symlink, 0, &meta, None, Some(target));
                self.store_nodes(top.tree.push(entry)?).await?;
            } else {
                tracing::warn!(path = %path.display(), "skipping a special file (fifo, socket or device)");
            }
        }
    }

    /// Seals content block `index`: encrypt, XOR with a fresh randomizer set, store.
    async fn seal_block(
        &self,
        index: u64,
        mut data: Vec<u8>,
        len: usize,
        cipher: &Arc<ContentCipher>,
    ) -> Result<Vec<BlockId>> {
        let (rands, blocks) = self.fetch_randomizers().await?;
        let cipher = cipher.clone();
        let (id, data) = tokio::task::spawn_blocking(move || {
            if len < data.len() {
                crypto::fill_random(&mut data[len..]);
            }
            cipher.apply(index, &mut data);
            for r in &blocks {
                block::xor_into(&mut data, r);
            }
            (BlockId::of(&data), Bytes::from(data))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        self.repo.stack().put(id, data).await?;
        let mut tuple = Vec::with_capacity(rands.len() + 1);
        tuple.push(id);
        tuple.extend(rands);
        {
            let mut batch = self.lock_batch();
            batch.new_blocks.push((id, BlockKind::Data));
            batch.refs.extend(tuple.iter().copied());
        }
        self.repo.with_pool(|pool| pool.add(id, 0))?;
        Ok(tuple)
    }

    /// Chooses a randomizer set and fetches its blocks. A block found missing or corrupt is dropped from
    /// the pool (with a warning: `noisefs repo verify` tells more) and another set is chosen.
    async fn fetch_randomizers(&self) -> Result<(Vec<BlockId>, Vec<bytes::Bytes>)> {
        let mut failures = 0;
        loop {
            let rands = self.choose_randomizers().await?;
            let fetched =
                futures::future::try_join_all(rands.iter().map(|id| self.repo.store().get(id))).await;
            let bad = match fetched {
                Ok(blocks) => return Ok((rands, blocks)),
                Err(Error::MissingBlock { id }) | Err(Error::CorruptBlock { id, .. }) if failures < 16 => id,
                Err(e) => return Err(e),
            };
            failures += 1;
            tracing::warn!(block = %bad, "randomizer missing or corrupt; choosing another (run `noisefs repo verify`)");
            self.repo.with_pool(|pool| pool.drop_block(&bad))?;
        }
    }

    /// Picks a randomizer set never used before, adding fresh random blocks while the pool is too small.
    async fn choose_randomizers(&self) -> Result<Vec<BlockId>> {
        let n = usize::from(self.repo.config().tuple_size) - 1;
        loop {
            let chosen = self.repo.with_pool(|pool| {
                // Sets chosen by every session of this repository and not committed yet, so two sessions
                // (the engine and a command in the daemon) never pick the same set.
                let mut pending = self.repo.pending_sets();
                let state = self.repo.state();
                let set = pool.choose(n, &mut rand::thread_rng(), |k| {
                    pending.contains(k) || state.set_used(k).unwrap_or(true)
                });
                if let Some(set) = &set {
                    pending.insert(set_key(set));
                    self.mine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(set_key(set));
                }
                set
            })?;
            if let Some(set) = chosen {
                let mut batch = self.lock_batch();
                batch.used_sets.push(set_key(&set));
                batch.uses.extend(set.iter().copied());
                return Ok(set);
            }
            self.add_random_block().await?;
        }
    }

    /// Makes, stores and pools one fresh random block.
    async fn add_random_block(&self) -> Result<()> {
        let bs = self.repo.block_size();
        let (id, data) = tokio::task::spawn_blocking(move || {
            let mut data = vec![0u8; bs];
            crypto::fill_random(&mut data);
            (BlockId::of(&data), Bytes::from(data))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        self.repo.stack().put(id, data).await?;
        self.lock_batch().new_blocks.push((id, BlockKind::Random));
        self.repo.with_pool(|pool| pool.add(id, 0))?;
        tracing::debug!(block = %id, "added a fresh random block to the pool");
        Ok(())
    }

    async fn store_nodes(&self, nodes: Vec<SealedNode>) -> Result<()> {
        for n in nodes {
            self.repo.stack().put(n.id, n.data).await?;
            let mut batch = self.lock_batch();
            batch.new_blocks.push((n.id, BlockKind::Descriptor));
            batch.refs.push(n.id);
            drop(batch);
            self.repo.with_pool(|pool| pool.add(n.id, 0))?;
        }
        Ok(())
    }

    async fn maybe_commit(&self) -> Result<()> {
        let due = {
            let mut n = self.since_commit.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            if *n >= COMMIT_EVERY {
                *n = 0;
                true
            } else {
                false
            }
        };
        if due {
            self.commit().await?;
        }
        Ok(())
    }

    /// Makes every stored block durable, then records them in the state.
    pub async fn commit(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.lock_batch());
        if batch.is_empty() {
            return Ok(());
        }
        self.repo.stack().flush().await?;
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || {
            repo.state().apply(&batch)?;
            repo.state().sync()
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let mine = std::mem::take(&mut *self.mine.lock().unwrap_or_else(|p| p.into_inner()));
        let mut pending = self.repo.pending_sets();
        for k in mine {
            pending.remove(&k);
        }
        Ok(())
    }

    /// Commits and pins `link` so `gc` keeps it.
    pub async fn finish(&self, link: &Link, name: &str, size: u64, dir: bool) -> Result<()> {
        self.commit().await?;
        let record = PinRecord {
            link: link.to_string(),
            name: name.to_string(),
            size,
            dir,
            created: crate::clock::now_secs(),
        };
        self.repo.state().pin(&link.root, &record)
    }

    /// Stores a folder manifest holding `entries` (sorted by name, names unique), modified at `mtime`
    /// (nanoseconds since the epoch), and returns its link. Not pinned until [`Sealer::finish`].
    pub async fn put_manifest(
        &self,
        _hold: &Hold,
        name: &str,
        mtime: i64,
        mode: u32,
        entries: Vec<DirEntry>,
    ) -> Result<Link> {
        let key = Key::random();
        let mut tree = FanoutWriter::<DirEntry>::new(key.clone(), self.repo.block_size());
        let count = entries.len() as u64;
        for e in entries {
            self.store_nodes(tree.push(e)?).await?;
        }
        let (mtime, mtime_ns) = crate::descriptor::node::split_time(mtime);
        let (root, nodes) = tree.finish(Meta::Dir {
            name: name.to_string(),
            mtime,
            mtime_ns,
            mode,
            entries: count,
        })?;
        self.store_nodes(nodes).await?;
        Ok(Link::new(root, key))
    }

    /// A file descriptor (root metadata `meta`, a [`Meta::File`]) over content tuples already stored and
    /// sealed under `key`: a received file kept inside its folder's manifest gets a link of its own
    /// without its content being copied.
    pub async fn put_file_tuples(
        &self,
        _hold: &Hold,
        meta: Meta,
        key: Key,
        tuples: Vec<Vec<BlockId>>,
    ) -> Result<Link> {
        let mut tree = FanoutWriter::<Vec<BlockId>>::new(key.clone(), self.repo.block_size());
        for t in tuples {
            self.store_nodes(tree.push(t)?).await?;
        }
        let (root, nodes) = tree.finish(meta)?;
        self.store_nodes(nodes).await?;
        Ok(Link::new(root, key))
    }

    /// Wraps `link` for a password: a descriptor block sealed under the Argon2id key of `password`.
    pub async fn wrap_with_password(&self, _hold: &Hold, link: &Link, password: &str) -> Result<Link> {
        let (salt, cost) = (crypto::random_salt(), crypto::KdfCost::DEFAULT);
        let pw = password.to_string();
        let pw_key = tokio::task::spawn_blocking(move || Key::from_password(&pw, &salt, cost))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let inner_key = link.key().ok_or_else(|| Error::Unsupported {
            what: "wrapping a password link again".into(),
            reason: "give the link that carries its key".into(),
        })?;
        let tree = FanoutWriter::<DirEntry>::new(pw_key, self.repo.block_size());
        let (root, nodes) = tree.finish(Meta::Wrapped {
            root: link.root,
            key: ByteBuf::from(inner_key.as_bytes().to_vec()),
        })?;
        self.store_nodes(nodes).await?;
        self.commit().await?;
        Ok(Link {
            root,
            secret: crate::descriptor::LinkSecret::Password { salt, cost },
        })
    }

    /// Wraps `link` for a password (see [`Sealer::wrap_with_password`]) and moves its pin, if any, to the
    /// wrapper's root: the pin keeps the inner link, which `gc` walks, so the wrapper is kept with it.
    pub async fn protect(&self, hold: &Hold, link: &Link, password: &str) -> Result<Link> {
        let wrapped = self.wrap_with_password(hold, link, password).await?;
        let state = self.repo.state();
        if let Some((_, mut record)) = state.pins()?.into_iter().find(|(r, _)| *r == link.root) {
            state.unpin(&link.root)?;
            record.created = crate::clock::now_secs();
            state.pin(&wrapped.root, &record)?;
        }
        Ok(wrapped)
    }

    fn lock_batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn entry_for(
    name: &str,
    kind: EntryKind,
    size: u64,
    meta: &std::fs::Metadata,
    link: Option<&Link>,
    target: Option<String>,
) -> DirEntry {
    DirEntry {
        name: name.to_string(),
        kind,
        size,
        mtime: meta.mtime(),
        mtime_ns: meta.mtime_nsec() as u32,
        mode: meta.permissions().mode() & 0o7777,
        root: link.map(|l| l.root),
        key: link
            .and_then(|l| l.key())
            .map(|k| ByteBuf::from(k.as_bytes().to_vec())),
        target,
        ..DirEntry::default()
    }
}

fn file_info(path: &Path, name: &str, meta: &std::fs::Metadata) -> FileInfo {
    FileInfo {
        name: name.to_string(),
        mtime: meta.mtime(),
        mtime_ns: meta.mtime_nsec() as u32,
        mode: meta.permissions().mode() & 0o7777,
        media_type: crate::media::by_name(path),
    }
}

type Chunk = Result<(u64, Vec<u8>, usize)>;

/// Reads `reader` on its own thread in block-size chunks `(index, buffer, bytes filled)`. An empty
/// stream yields no chunk; the last chunk may be short.
fn spawn_reader(mut reader: impl Read + Send + 'static, bs: usize) -> tokio::sync::mpsc::Receiver<Chunk> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(PARALLEL_BLOCKS);
    std::thread::spawn(move || {
        let mut index = 0u64;
        loop {
            let mut buf = vec![0u8; bs];
            let mut filled = 0;
            while filled < bs {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Error::io("<input>", e)));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            if tx.blocking_send(Ok((index, buf, filled))).is_err() || filled < bs {
                return;
            }
            index += 1;
        }
    });
    rx
}
