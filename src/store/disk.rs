//! The disk store: one file per block at `<root>/<shard>/<cid>`, written under a temporary name and
//! renamed into place. [`LocalStore::flush`] makes everything written so far durable with one `syncfs`,
//! which the repository calls before it records blocks as stored.

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::{BlockSource, LocalStore, StoreStats};
use crate::block::{self, Block, BlockId};
use crate::error::IoContext;
use crate::place::TempSibling;
use crate::{Error, Result};

/// Blocks as files under one folder.
pub struct DiskStore {
    root: Arc<PathBuf>,
}

impl DiskStore {
    /// A store in `root`, creating it and its 256 shard folders if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for shard in 0..=255u8 {
            let dir = root.join(format!("{shard:02x}"));
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        Ok(DiskStore { root: Arc::new(root) })
    }

    /// The file that holds block `id`.
    pub fn path_of(&self, id: &BlockId) -> PathBuf {
        block_path(&self.root, id)
    }

    /// Runs blocking file work on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || f(&root))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }
}

fn block_path(root: &Path, id: &BlockId) -> PathBuf {
    root.join(id.shard()).join(id.to_string())
}

fn read_verified(root: &Path, id: &BlockId) -> Result<Block> {
    let path = block_path(root, id);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::MissingBlock { id: *id }),
        Err(e) => return Err(Error::io(path, e)),
    };
    block::verify(id, &data)?;
    Ok(Block::from(data))
}

fn write_atomic(root: &Path, id: &BlockId, data: &[u8]) -> Result<()> {
    let path = block_path(root, id);
    let tmp = TempSibling::new(&path, &format!(".tmp-{id}-"));
    let mut f = std::fs::File::create(tmp.path()).at(tmp.path())?;
    f.write_all(data).at(tmp.path())?;
    drop(f);
    tmp.place()
}

/// Calls `f` for every block file (temporary files are skipped).
fn for_each_block(root: &Path, mut f: impl FnMut(BlockId, &std::fs::DirEntry) -> Result<()>) -> Result<()> {
    for shard in 0..=255u8 {
        let dir = root.join(format!("{shard:02x}"));
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            if let Some(id) = entry.file_name().to_str().and_then(is_block_name) {
                f(id, &entry)?;
            }
        }
    }
    Ok(())
}

fn is_block_name(name: &str) -> Option<BlockId> {
    if name.starts_with('.') {
        return None;
    }
    name.parse().ok()
}

#[async_trait]
impl BlockSource for DiskStore {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        let id = *id;
        self.blocking(move |root| read_verified(root, &id)).await
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        let path = self.path_of(id);
        self.blocking(move |_| Ok(path.exists())).await
    }
}

#[async_trait]
impl LocalStore for DiskStore {
    async fn put(&self, id: BlockId, data: Block) -> Result<()> {
        self.blocking(move |root| write_atomic(root, &id, &data)).await
    }

    async fn delete(&self, id: &BlockId) -> Result<()> {
        let path = self.path_of(id);
        self.blocking(move |_| match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
            _ => Ok(()),
        })
        .await
    }

    async fn list(&self) -> Result<Vec<BlockId>> {
        self.blocking(|root| {
            let mut out = Vec::new();
            for_each_block(root, |id, _| {
                out.push(id);
                Ok(())
            })?;
            Ok(out)
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.blocking(|root| {
            let mut stats = StoreStats::default();
            for_each_block(root, |_, entry| {
                stats.blocks += 1;
                stats.bytes += entry.metadata().at(entry.path())?.len();
                Ok(())
            })?;
            Ok(stats)
        })
        .await
    }

    fn location(&self, id: &BlockId) -> Option<std::path::PathBuf> {
        Some(self.path_of(id))
    }

    async fn flush(&self) -> Result<()> {
        self.blocking(|root| {
            let dir = std::fs::File::open(root).at(root)?;
            // SAFETY: syncfs takes a valid open descriptor, which `dir` holds for the call's duration.
            let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
            if rc != 0 {
                return Err(Error::io(root, std::io::Error::last_os_error()));
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path().join("blocks")).unwrap();
        super::super::suite::run(&store).await;
    }

    #[tokio::test]
    async fn detects_corrupt_files_and_ignores_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path()).unwrap();
        let data = Block::from(vec![3u8; 4096]);
        let id = BlockId::of(&data);
        store.put(id, data).await.unwrap();
        std::fs::write(store.path_of(&id), b"rot").unwrap();
        match store.get(&id).await {
            Err(Error::CorruptBlock { id: got, .. }) => assert_eq!(got, id),
            other => panic!("expected corruption, got {other:?}"),
        }
        std::fs::write(dir.path().join(id.shard()).join(".tmp-partial"), b"x").unwrap();
        assert_eq!(store.list().await.unwrap(), vec![id]);
        assert_eq!(store.stats().await.unwrap().blocks, 1);
    }

    #[tokio::test]
    async fn unreadable_root_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path()).unwrap();
        let id = BlockId::of(b"x");
        std::fs::create_dir(store.path_of(&id)).unwrap();
        let err = store.get(&id).await.unwrap_err().to_string();
        assert!(err.contains(&id.to_string()), "{err}");
    }
}
