//! Retrieving: opening a link (password links included), streaming a file's blocks back in order with
//! several blocks in flight, and materializing folders into a temporary sibling that is renamed into place
//! only when everything arrived, so a failed or refused `get` changes nothing.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::{Progress, PARALLEL_BLOCKS};
use crate::block::{self, BlockId};
use crate::crypto::{ContentCipher, Key};
use crate::descriptor::node::{check_name, join_time, FileContent};
use crate::descriptor::{fetch_node, Body, DirEntry, EntryKind, FanoutReader, Link, LinkSecret, Meta};
use crate::error::IoContext;
use crate::place::TempSibling;
use crate::store::BlockSource;
use crate::{Error, Result};

/// Tuples being opened at once, in order: enough that blocks coming from peers (a round trip each)
/// keep arriving while earlier ones are written; for local blocks it costs only memory (16 tuples of
/// 128 KiB blocks: about 8 MiB, within the 150 MiB peak of a 4 GiB `cat`).
const OPEN_AHEAD: usize = 16;

/// Deepest folder nesting `get` materializes.
pub const MAX_FOLDER_DEPTH: usize = 256;

/// An opened link: its root metadata and a reader over its tree.
pub struct Opened {
    pub root: BlockId,
    pub key: Key,
    pub meta: Meta,
    pub tree: FanoutReader,
}

impl Opened {
    /// A file whose tuples are inline in its folder's manifest (`folder` names that manifest in errors).
    pub fn inline(
        store: &Arc<dyn BlockSource>,
        folder: BlockId,
        key: Key,
        e: &DirEntry,
        tuples: Vec<Vec<BlockId>>,
        block_size: u64,
    ) -> Opened {
        let meta = Meta::File {
            name: e.name.clone(),
            size: e.size,
            block_size,
            tuple_size: tuples.first().map_or(3, |t| t.len() as u8),
            mtime: e.mtime,
            mtime_ns: e.mtime_ns,
            mode: e.mode,
            media_type: e
                .media_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        };
        let tree = FanoutReader::new(store.clone(), key.clone(), folder, Body::Tuples(tuples));
        Opened {
            root: folder,
            key,
            meta,
            tree,
        }
    }

    /// The name recorded in the root.
    pub fn name(&self) -> &str {
        match &self.meta {
            Meta::File { name, .. } | Meta::Dir { name, .. } => name,
            Meta::Wrapped { .. } => "",
        }
    }

    /// Every leaf entry of a folder, in order, refusing unsafe or duplicate names.
    pub async fn entries(&self) -> Result<Vec<DirEntry>> {
        let mut walk = self.entry_walk();
        let mut out = Vec::new();
        while let Some(e) = walk.next().await? {
            out.push(e);
        }
        Ok(out)
    }

    /// A folder's entries one at a time, with memory bounded by one descriptor block.
    pub fn entry_walk(&self) -> EntryWalk {
        EntryWalk {
            root: self.root,
            leaves: self.tree.leaves(),
            current: Vec::new().into_iter(),
            seen: HashSet::new(),
        }
    }
}

/// A folder's entries in order; refuses duplicate names and leaves that are not entries (a count that
/// differs from the folder's metadata is refused when its root is decoded).
pub struct EntryWalk {
    root: BlockId,
    leaves: crate::descriptor::fanout::Leaves,
    current: std::vec::IntoIter<DirEntry>,
    seen: HashSet<String>,
}

impl EntryWalk {
    /// The next entry, or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<DirEntry>> {
        loop {
            if let Some(e) = self.current.next() {
                if !self.seen.insert(e.name.clone()) {
                    return Err(Error::UnsafeName {
                        name: e.name,
                        reason: "appears twice in one folder".into(),
                    });
                }
                return Ok(Some(e));
            }
            match self.leaves.next().await? {
                Some(Body::Entries(entries)) => self.current = entries.into_iter(),
                Some(_) => return Err(self.malformed("a folder tree holds file tuples")),
                None => return Ok(None),
            }
        }
    }

    fn malformed(&self, reason: &str) -> Error {
        Error::Descriptor {
            id: self.root,
            reason: reason.into(),
        }
    }
}

/// Opens `link`, asking `password` for the key of a password link.
pub async fn open(store: &Arc<dyn BlockSource>, link: &Link, password: Option<&str>) -> Result<Opened> {
    let (root, key) = match &link.secret {
        LinkSecret::Key(k) => (link.root, k.clone()),
        LinkSecret::Password { salt, cost } => {
            let password = password.ok_or_else(|| Error::InvalidLink {
                input: format!("noisefs://{}", link.root),
                reason: "it is protected by a password; pass --password".into(),
            })?;
            let pw = password.to_string();
            let (salt, cost) = (*salt, *cost);
            let pw_key = tokio::task::spawn_blocking(move || Key::from_password(&pw, &salt, cost))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            let wrapper = fetch_node(&**store, &pw_key, &link.root, true).await?;
            match wrapper.meta {
                Some(Meta::Wrapped { root, key }) => {
                    let bytes: [u8; 32] = key.as_slice().try_into().map_err(|_| Error::Descriptor {
                        id: link.root,
                        reason: "the wrapped key has the wrong length".into(),
                    })?;
                    (root, Key::from_bytes(bytes))
                }
                _ => {
                    return Err(Error::Descriptor {
                        id: link.root,
                        reason: "a password link must point at a password wrapper".into(),
                    })
                }
            }
        }
    };
    let node = fetch_node(&**store, &key, &root, true).await?;
    let meta = node.meta.ok_or(Error::Descriptor {
        id: root,
        reason: "the root has no metadata".into(),
    })?;
    if matches!(meta, Meta::Wrapped { .. }) {
        return Err(Error::Descriptor {
            id: root,
            reason: "a password wrapper where a file or folder was expected".into(),
        });
    }
    let tree = FanoutReader::new(store.clone(), key.clone(), root, node.body);
    Ok(Opened {
        root,
        key,
        meta,
        tree,
    })
}

/// Streams an opened file's content into `out` (on a writer thread). Returns the bytes written.
pub async fn read_to(
    store: &Arc<dyn BlockSource>,
    opened: &Opened,
    out: Box<dyn Write + Send>,
    out_name: PathBuf,
    progress: &Progress,
) -> Result<u64> {
    let shape = Arc::new(file_shape(opened)?);
    let (root, size) = (shape.root, shape.size);
    let cipher = Arc::new(ContentCipher::new(&opened.key));
    let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(PARALLEL_BLOCKS);
    let writer = std::thread::spawn(move || -> Result<()> {
        let mut out = out;
        for chunk in rx {
            out.write_all(&chunk).at(&out_name)?;
        }
        out.flush().at(&out_name)
    });

    let start = (
        opened.tree.leaves(),
        Vec::<Vec<BlockId>>::new().into_iter(),
        0u64,
        false,
    );
    let tuples = futures::stream::unfold(start, move |(mut leaves, mut cur, index, failed)| async move {
        if failed {
            return None;
        }
        loop {
            if let Some(t) = cur.next() {
                return Some((Ok((index, t)), (leaves, cur, index + 1, false)));
            }
            let err = match leaves.next().await {
                Ok(Some(Body::Tuples(t))) => {
                    cur = t.into_iter();
                    continue;
                }
                Ok(None) => return None,
                Ok(Some(_)) => Error::Descriptor {
                    id: root,
                    reason: "a file tree holds folder entries".into(),
                },
                Err(e) => e,
            };
            return Some((Err(err), (leaves, cur, index, true)));
        }
    });
    let mut opened_blocks = std::pin::pin!(tuples
        .map(|item| {
            let cipher = cipher.clone();
            let store = store.clone();
            let shape = shape.clone();
            async move {
                let (index, tuple) = item?;
                let data = open_block(&store, cipher, &shape, index, tuple).await?;
                Ok(bytes::Bytes::from(data))
            }
        })
        .buffered(OPEN_AHEAD));
    let mut written = 0u64;
    let mut failure = None;
    while let Some(item) = opened_blocks.next().await {
        match item {
            Ok(chunk) => {
                written += chunk.len() as u64;
                progress(chunk.len() as u64);
                if tx.send(chunk).is_err() {
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let wrote = writer
        .join()
        .map_err(|_| Error::Task("the writer thread panicked".into()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    wrote?;
    if written != size {
        return Err(Error::Descriptor {
            id: root,
            reason: format!("the tuples give {written} bytes but the descriptor says {size}"),
        });
    }
    Ok(written)
}

/// What reading one block of a file needs to know about the file.
struct FileShape {
    root: BlockId,
    size: u64,
    bs: usize,
    tuple_size: usize,
}

/// Opens content block `index` from its tuple: fetches and checks the blocks, XORs them, decrypts, and
/// cuts the last block to the file's size.
async fn open_block(
    store: &Arc<dyn BlockSource>,
    cipher: Arc<ContentCipher>,
    shape: &FileShape,
    index: u64,
    tuple: Vec<BlockId>,
) -> Result<Vec<u8>> {
    let (bs, size) = (shape.bs, shape.size);
    if tuple.len() != shape.tuple_size {
        return Err(Error::Descriptor {
            id: shape.root,
            reason: format!(
                "tuple {index} has {} blocks, expected {}",
                tuple.len(),
                shape.tuple_size
            ),
        });
    }
    if index >= size.div_ceil(bs as u64) {
        return Err(Error::Descriptor {
            id: shape.root,
            reason: "more tuples than the file size needs".into(),
        });
    }
    let parts = futures::future::try_join_all(tuple.iter().map(|id| store.get(id))).await?;
    if let Some(p) = parts.iter().find(|p| p.len() != bs) {
        return Err(Error::BlockSize {
            expected: bs,
            actual: p.len(),
        });
    }
    // XOR and decryption of one block take tens of microseconds: done here, on the runtime's worker,
    // rather than paying two thread hand-offs for them.
    let mut data = block::xor_all(&parts);
    cipher.apply(index, &mut data);
    data.truncate((size - index * bs as u64).min(bs as u64) as usize);
    Ok(data)
}

/// Reads `len` bytes of an opened file from `offset` (fewer at the end of the file), fetching only the
/// blocks that hold them.
pub async fn read_range(
    store: &Arc<dyn BlockSource>,
    opened: &Opened,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>> {
    let shape = file_shape(opened)?;
    let end = offset.saturating_add(len).min(shape.size);
    if offset >= end {
        return Ok(Vec::new());
    }
    let bs = shape.bs as u64;
    let indices: Vec<u64> = (offset / bs..=(end - 1) / bs).collect();
    let mut out = Vec::with_capacity((end - offset) as usize);
    for (index, data) in read_blocks(store, opened, &indices).await? {
        let lo = offset.saturating_sub(index * bs) as usize;
        let hi = ((end - index * bs) as usize).min(data.len());
        out.extend_from_slice(&data[lo..hi]);
    }
    Ok(out)
}

/// A file's size and block size.
pub fn geometry(opened: &Opened) -> Result<(u64, u64)> {
    let shape = file_shape(opened)?;
    Ok((shape.size, shape.bs as u64))
}

/// Content blocks `indices` (ascending, each below the file's block count) of an opened file, opened
/// (fetched, XORed, decrypted, cut to the file's size) with several in flight, in the order asked.
pub async fn read_blocks(
    store: &Arc<dyn BlockSource>,
    opened: &Opened,
    indices: &[u64],
) -> Result<Vec<(u64, Vec<u8>)>> {
    let shape = file_shape(opened)?;
    let cipher = Arc::new(ContentCipher::new(&opened.key));
    // First the tuples (the reader remembers its last descriptor leaf), then the blocks, several at once.
    let mut tuples = Vec::with_capacity(indices.len());
    for &index in indices {
        tuples.push((index, opened.tree.tuple_at(index).await?));
    }
    let shape = &shape;
    let blocks = futures::stream::iter(tuples)
        .map(|(index, tuple)| {
            let cipher = cipher.clone();
            async move {
                open_block(store, cipher, shape, index, tuple)
                    .await
                    .map(|d| (index, d))
            }
        })
        .buffered(OPEN_AHEAD);
    blocks.try_collect().await
}

fn file_shape(opened: &Opened) -> Result<FileShape> {
    let Meta::File {
        size,
        block_size,
        tuple_size,
        ..
    } = &opened.meta
    else {
        return Err(Error::Unsupported {
            what: "reading a folder as a file".into(),
            reason: "use `noisefs get` or `noisefs ls` for folders".into(),
        });
    };
    Ok(FileShape {
        root: opened.root,
        size: *size,
        bs: *block_size as usize,
        tuple_size: usize::from(*tuple_size),
    })
}

/// Materializes `opened` (file or folder) at `target`. An existing target is refused unless `force`.
pub async fn get_to(
    store: &Arc<dyn BlockSource>,
    opened: &Opened,
    target: &Path,
    force: bool,
    progress: &Progress,
) -> Result<u64> {
    crate::place::check_target(target, force)?;
    let tmp = TempSibling::new(target, ".noisefs-get-");
    let bytes = materialize(store, opened, tmp.path(), progress).await?;
    tmp.replace()?;
    Ok(bytes)
}

/// Writes a file or folder at `path`, which must not exist.
async fn materialize(
    store: &Arc<dyn BlockSource>,
    opened: &Opened,
    path: &Path,
    progress: &Progress,
) -> Result<u64> {
    if let Meta::File {
        mtime,
        mtime_ns,
        mode,
        ..
    } = &opened.meta
    {
        return write_file(store, opened, path, join_time(*mtime, *mtime_ns), *mode, progress).await;
    }
    let mut pending = Pending::default();
    std::fs::create_dir(path).at(path)?;
    pending.seen_dirs.insert(opened.root);
    let mut total = materialize_dir(store, opened, path, 0, &mut pending, progress).await?;
    while let Some((dir, dir_path, depth)) = pending.stack.pop() {
        total += materialize_dir(store, &dir, &dir_path, depth, &mut pending, progress).await?;
    }
    for (p, mtime, mode) in pending.dir_times.into_iter().rev() {
        set_times_and_mode(&p, mtime, mode)?;
    }
    Ok(total)
}

/// What a folder `get` still has to do: folders created but not yet filled (with their depth), folder
/// roots already seen (a root seen twice is a loop or a copy bomb), and folder times to set last.
#[derive(Default)]
struct Pending {
    stack: Vec<(Opened, PathBuf, usize)>,
    seen_dirs: HashSet<BlockId>,
    dir_times: Vec<(PathBuf, i64, u32)>,
}

/// Writes the entries of folder `dir`, already created at `dir_path`; subfolders go onto the stack.
async fn materialize_dir(
    store: &Arc<dyn BlockSource>,
    dir: &Opened,
    dir_path: &Path,
    depth: usize,
    pending: &mut Pending,
    progress: &Progress,
) -> Result<u64> {
    if let Meta::Dir {
        mtime,
        mtime_ns,
        mode,
        ..
    } = &dir.meta
    {
        pending
            .dir_times
            .push((dir_path.to_path_buf(), join_time(*mtime, *mtime_ns), *mode));
    }
    let mut total = 0;
    let mut walk = dir.entry_walk();
    while let Some(e) = walk.next().await? {
        total += materialize_entry(store, dir.root, e, dir_path, depth + 1, pending, progress).await?;
    }
    Ok(total)
}

async fn materialize_entry(
    store: &Arc<dyn BlockSource>,
    parent_root: BlockId,
    e: DirEntry,
    parent: &Path,
    depth: usize,
    pending: &mut Pending,
    progress: &Progress,
) -> Result<u64> {
    check_name(&e.name)?;
    let path = parent.join(&e.name);
    match e.kind {
        EntryKind::Symlink => {
            let target = e.target.unwrap_or_default();
            std::os::unix::fs::symlink(&target, &path).at(&path)?;
            crate::place::set_symlink_mtime(&path, join_time(e.mtime, e.mtime_ns))?;
            Ok(0)
        }
        EntryKind::File if e.link().is_none() => match e.content() {
            Some(FileContent::Data(data)) => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(data))
                    .at(&path)?;
                set_times_and_mode(&path, join_time(e.mtime, e.mtime_ns), e.mode)?;
                progress(data.len() as u64);
                Ok(data.len() as u64)
            }
            Some(FileContent::Tuples {
                key,
                tuples,
                block_size,
            }) => {
                let opened = Opened::inline(store, parent_root, key, &e, tuples.to_vec(), block_size);
                write_file(
                    store,
                    &opened,
                    &path,
                    join_time(e.mtime, e.mtime_ns),
                    e.mode,
                    progress,
                )
                .await
            }
            _ => Err(Error::UnsafeName {
                name: e.name.clone(),
                reason: "a file entry without a valid link, tuples or content".into(),
            }),
        },
        EntryKind::File | EntryKind::Dir => {
            let link = e.link().ok_or_else(|| Error::UnsafeName {
                name: e.name.clone(),
                reason: "an entry without a valid link".into(),
            })?;
            let child = open(store, &link, None).await?;
            match (&child.meta, e.kind) {
                (
                    Meta::File {
                        mtime,
                        mtime_ns,
                        mode,
                        ..
                    },
                    EntryKind::File,
                ) => {
                    let (mtime, mode) = (join_time(*mtime, *mtime_ns), *mode);
                    write_file(store, &child, &path, mtime, mode, progress).await
                }
                (Meta::Dir { .. }, EntryKind::Dir) => {
                    if depth > MAX_FOLDER_DEPTH {
                        return Err(Error::Descriptor {
                            id: child.root,
                            reason: format!("folders nested deeper than {MAX_FOLDER_DEPTH}"),
                        });
                    }
                    if !pending.seen_dirs.insert(child.root) {
                        return Err(Error::Descriptor {
                            id: child.root,
                            reason: "the same folder appears twice in one tree (a loop or a copy bomb)"
                                .into(),
                        });
                    }
                    std::fs::create_dir(&path).at(&path)?;
                    pending.stack.push((child, path, depth));
                    Ok(0)
                }
                _ => Err(Error::Descriptor {
                    id: link.root,
                    reason: format!("entry {:?} says {:?} but its link says otherwise", e.name, e.kind),
                }),
            }
        }
    }
}

async fn write_file(
    store: &Arc<dyn BlockSource>,
    opened: &Opened,
    path: &Path,
    mtime: i64,
    mode: u32,
    progress: &Progress,
) -> Result<u64> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)?;
    // Chunks arrive a block at a time, already large: no buffering needed.
    let n = read_to(store, opened, Box::new(file), path.to_path_buf(), progress).await?;
    set_times_and_mode(path, mtime, mode)?;
    Ok(n)
}

/// Sets a written file's or folder's modification time (`mtime` in nanoseconds) and mode.
fn set_times_and_mode(path: &Path, mtime: i64, mode: u32) -> Result<()> {
    let f = std::fs::File::open(path).at(path)?;
    f.set_modified(crate::place::system_time(mtime)).at(path)?;
    let mode = crate::place::local_mode(mode);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).at(path)
}

#[cfg(test)]
mod tests {
    //! Forged descriptors, as a hostile peer could make them: each is refused with a clear error.
    use super::*;
    use crate::store::{BlockSource, LocalStore};

    /// The store as a read-only source, as the code under test takes it.
    fn src(s: &Arc<dyn LocalStore>) -> Arc<dyn BlockSource> {
        s.clone()
    }
    use crate::crypto;
    use crate::descriptor::node::{encode, Child, Node};
    use crate::store::MemoryStore;
    use serde_bytes::ByteBuf;

    const BS: usize = 4096;

    fn store() -> Arc<dyn LocalStore> {
        Arc::new(MemoryStore::new())
    }

    async fn put_node(store: &Arc<dyn LocalStore>, key: &Key, meta: Option<Meta>, body: Body) -> BlockId {
        let node = Node { v: 1, meta, body };
        let data = crypto::seal_envelope(key, &encode(&node), BS).unwrap();
        let id = BlockId::of(&data);
        store.put(id, data.into()).await.unwrap();
        id
    }

    async fn put_block(store: &Arc<dyn LocalStore>, len: usize, seed: u8) -> BlockId {
        let data = vec![seed; len];
        let id = BlockId::of(&data);
        store.put(id, data.into()).await.unwrap();
        id
    }

    /// A root with `meta` whose only child is `inner`.
    async fn put_parent(
        store: &Arc<dyn LocalStore>,
        key: &Key,
        meta: Meta,
        inner: BlockId,
        count: u64,
    ) -> BlockId {
        put_node(
            store,
            key,
            Some(meta),
            Body::Children(vec![Child { id: inner, count }]),
        )
        .await
    }

    fn file_meta(size: u64) -> Meta {
        Meta::File {
            name: "f".into(),
            size,
            block_size: BS as u64,
            tuple_size: 3,
            mtime: 0,
            mtime_ns: 0,
            mode: 0o644,
            media_type: "text/plain".into(),
        }
    }

    fn dir_meta(entries: u64) -> Meta {
        Meta::Dir {
            name: "d".into(),
            mtime: 0,
            mtime_ns: 0,
            mode: 0o755,
            entries,
        }
    }

    async fn entries_err(store: &Arc<dyn LocalStore>, key: &Key, root: BlockId) -> String {
        let opened = match open(&src(store), &Link::new(root, key.clone()), None).await {
            Ok(o) => o,
            Err(e) => return e.to_string(),
        };
        assert_eq!(opened.name(), "d");
        opened.entries().await.unwrap_err().to_string()
    }

    /// Why reading the file at `root` fails: at open (a root that lies about its size) or while reading.
    async fn read_err(store: &Arc<dyn LocalStore>, key: &Key, root: BlockId) -> String {
        let opened = match open(&src(store), &Link::new(root, key.clone()), None).await {
            Ok(o) => o,
            Err(e) => return e.to_string(),
        };
        let sink = Box::new(std::io::sink());
        read_to(
            &src(store),
            &opened,
            sink,
            "out".into(),
            &super::super::no_progress(),
        )
        .await
        .unwrap_err()
        .to_string()
    }

    #[tokio::test]
    async fn forged_file_trees_are_refused() {
        let store = store();
        let key = Key::random();
        let a = put_block(&store, BS, 1).await;
        let b = put_block(&store, BS, 2).await;
        let c = put_block(&store, BS, 3).await;
        let short = put_block(&store, 100, 4).await;

        let cases: Vec<(Meta, Body, &str)> = vec![
            (
                file_meta(10),
                Body::Tuples(vec![vec![a, b]]),
                "has 2 blocks, expected 3",
            ),
            (
                file_meta(10),
                Body::Tuples(vec![vec![a, b, c], vec![a, b, c]]),
                "declares 1 entries but holds 2",
            ),
            (
                file_meta(3 * BS as u64),
                Body::Tuples(vec![vec![a, b, c]]),
                "declares 3 entries but holds 1",
            ),
            (file_meta(10), Body::Tuples(vec![vec![a, b, short]]), "block size"),
        ];
        for (meta, body, want) in cases {
            let root = put_node(&store, &key, Some(meta), body).await;
            let err = read_err(&store, &key, root).await;
            assert!(err.contains(want), "{err} should say {want}");
        }
        // A file whose inner node holds folder entries.
        let stray = DirEntry {
            name: "x".into(),
            kind: EntryKind::Symlink,
            target: Some("t".into()),
            ..DirEntry::default()
        };
        let inner = put_node(&store, &key, None, Body::Entries(vec![stray])).await;
        let root = put_parent(&store, &key, file_meta(10), inner, 1).await;
        assert!(read_err(&store, &key, root).await.contains("folder entries"));
        // A file whose inner node cannot be fetched.
        let missing = BlockId::of(b"nowhere");
        let root = put_parent(&store, &key, file_meta(10), missing, 1).await;
        assert!(read_err(&store, &key, root).await.contains("missing"));
    }

    #[tokio::test]
    async fn forged_wrappers_and_folders_are_refused() {
        let store = store();
        let key = Key::random();
        // A wrapper reached with a plain key is not a file or folder.
        let wrapped = Meta::Wrapped {
            root: BlockId::of(b"x"),
            key: ByteBuf::from(vec![0u8; 32]),
        };
        let w = put_node(&store, &key, Some(wrapped), Body::Children(vec![])).await;
        let err = open(&src(&store), &Link::new(w, key.clone()), None)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("password wrapper where"), "{err}");
        // A password link whose root is a plain file.
        let salt = [9u8; crypto::SALT_LEN];
        let pw_key = Key::from_password("pw", &salt, crypto::KdfCost::LEGACY).unwrap();
        let f = put_node(&store, &pw_key, Some(file_meta(0)), Body::Tuples(vec![])).await;
        let link = Link {
            root: f,
            secret: LinkSecret::Password {
                salt,
                cost: crypto::KdfCost::LEGACY,
            },
        };
        let err = open(&src(&store), &link, Some("pw")).await.err().unwrap();
        assert!(
            err.to_string().contains("must point at a password wrapper"),
            "{err}"
        );
        let err = open(&src(&store), &link, None).await.err().unwrap();
        assert!(err.to_string().contains("--password"), "{err}");
        // A link made before the cost was recorded (`#argon2id.<salt>`, 19 MiB and 2 passes) still opens.
        let inner_key = Key::random();
        let inner = put_node(&store, &inner_key, Some(file_meta(0)), Body::Tuples(vec![])).await;
        let wrapped = Meta::Wrapped {
            root: inner,
            key: ByteBuf::from(inner_key.as_bytes().to_vec()),
        };
        let w = put_node(&store, &pw_key, Some(wrapped), Body::Children(vec![])).await;
        let legacy: Link = format!(
            "noisefs://{w}#argon2id.{}",
            data_encoding::BASE64URL_NOPAD.encode(&salt)
        )
        .parse()
        .unwrap();
        let opened = open(&src(&store), &legacy, Some("pw")).await.unwrap();
        assert_eq!(opened.root, inner);
        // The same wrapper named with today's cost derives another key and does not open.
        let today = Link {
            root: w,
            secret: LinkSecret::Password {
                salt,
                cost: crypto::KdfCost::DEFAULT,
            },
        };
        assert!(open(&src(&store), &today, Some("pw")).await.is_err());

        // A folder whose entry count lies.
        let d = put_node(&store, &key, Some(dir_meta(3)), Body::Entries(vec![])).await;
        assert!(entries_err(&store, &key, d)
            .await
            .contains("declares 3 entries but holds 0"));
        // A folder whose inner node holds tuples.
        let tuple = vec![BlockId::of(b"a"); 3];
        let inner = put_node(&store, &key, None, Body::Tuples(vec![tuple])).await;
        let d = put_parent(&store, &key, dir_meta(1), inner, 1).await;
        assert!(entries_err(&store, &key, d).await.contains("file tuples"));

        // An entry that says "file" but links to a folder; a folder that contains itself twice.
        let child_key = Key::random();
        let empty = put_node(&store, &child_key, Some(dir_meta(0)), Body::Entries(vec![])).await;
        let entry = |name: &str, kind| DirEntry {
            name: name.into(),
            kind,
            root: Some(empty),
            key: Some(ByteBuf::from(child_key.as_bytes().to_vec())),
            ..DirEntry::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        for (entries, want) in [
            (vec![entry("x", EntryKind::File)], "its link says otherwise"),
            (
                vec![entry("a", EntryKind::Dir), entry("b", EntryKind::Dir)],
                "appears twice",
            ),
        ] {
            let n = entries.len() as u64;
            let d = put_node(&store, &key, Some(dir_meta(n)), Body::Entries(entries)).await;
            let opened = open(&src(&store), &Link::new(d, key.clone()), None)
                .await
                .unwrap();
            let target = tmp.path().join("t");
            let err = get_to(
                &src(&store),
                &opened,
                &target,
                false,
                &super::super::no_progress(),
            )
            .await
            .unwrap_err();
            assert!(err.to_string().contains(want), "{err} should say {want}");
            assert!(!target.exists());
            assert_eq!(
                std::fs::read_dir(tmp.path()).unwrap().count(),
                0,
                "temporary files left"
            );
        }
    }
}
