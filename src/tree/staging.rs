//! Staging: the repository's `staging/` folder, where a file's bytes live from its first write until the
//! engine seals them (one file per inode, named by the inode number), with a cache of open descriptors.
//!
//! Staged bytes stay until the change that replaces them is durable: an unlink or a replacement commits
//! first, then [`Staging::retire`]s the file (renamed to `<ino>.retired.<n>`), and retired files are
//! deleted only after the next state sync ([`Staging::purge_retired`]). A crash before that sync finds
//! the inode still dirty and [`Staging::restore`] puts its bytes back.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::IoContext;
use crate::Result;

/// The staging folder and its open files.
pub struct Staging {
    dir: PathBuf,
    open: Mutex<HashMap<u64, Arc<File>>>,
    /// Numbers retired files, after the time the folder was opened (unique across runs).
    retired: AtomicU64,
}

const RETIRED: &str = ".retired.";

impl Staging {
    /// Opens (creating) the staging folder `dir`.
    pub fn open(dir: PathBuf) -> Result<Staging> {
        std::fs::create_dir_all(&dir).at(&dir)?;
        Ok(Staging {
            dir,
            open: Mutex::new(HashMap::new()),
            retired: AtomicU64::new(crate::clock::now_ns().max(0) as u64),
        })
    }

    /// Where inode `ino`'s bytes are staged.
    pub fn path(&self, ino: u64) -> PathBuf {
        self.dir.join(ino.to_string())
    }

    /// A temporary name beside the staging file, for building it before it counts.
    pub fn temp_path(&self, ino: u64) -> PathBuf {
        self.dir.join(format!("{ino}.tmp"))
    }

    /// The staging file of `ino`, opened read-write (kept open until [`Staging::close`]).
    pub fn file(&self, ino: u64) -> Result<Arc<File>> {
        let mut open = self.lock();
        if let Some(f) = open.get(&ino) {
            return Ok(f.clone());
        }
        let path = self.path(ino);
        let f = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .at(&path)?,
        );
        open.insert(ino, f.clone());
        Ok(f)
    }

    /// Creates an empty staging file for `ino` (replacing any). Not synced: an empty file loses nothing,
    /// and [`crate::tree::Tree::fsync`] makes it durable with its content.
    pub fn create_empty(&self, ino: u64) -> Result<Arc<File>> {
        let path = self.path(ino);
        let f = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .at(&path)?,
        );
        self.lock().insert(ino, f.clone());
        Ok(f)
    }

    /// Moves the (synced) temporary file of `ino` into place and makes the rename durable.
    pub fn install(&self, ino: u64) -> Result<()> {
        self.close(ino);
        let (tmp, path) = (self.temp_path(ino), self.path(ino));
        std::fs::rename(&tmp, &path).at(&path)?;
        self.sync()
    }

    /// Makes the staging folder's entries durable.
    pub fn sync(&self) -> Result<()> {
        sync_dir(&self.dir)
    }

    /// Forgets the open descriptor of `ino` (readers holding it keep reading).
    pub fn close(&self, ino: u64) {
        self.lock().remove(&ino);
    }

    /// Removes the staging file of `ino`, if any.
    pub fn remove(&self, ino: u64) {
        self.close(ino);
        let _ = std::fs::remove_file(self.path(ino));
        let _ = std::fs::remove_file(self.temp_path(ino));
    }

    /// Moves the staging file of `ino` aside after the change that replaces it was committed (not yet
    /// synced); it is deleted by the next [`Staging::purge_retired`].
    pub fn retire(&self, ino: u64) {
        self.close(ino);
        let _ = std::fs::remove_file(self.temp_path(ino));
        let n = self.retired.fetch_add(1, Ordering::Relaxed);
        let to = self.dir.join(format!("{ino}{RETIRED}{n}"));
        match std::fs::rename(self.path(ino), &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(ino, error = %e, "cannot move a replaced staging file aside; removing it");
                let _ = std::fs::remove_file(self.path(ino));
            }
        }
    }

    /// Deletes every retired staging file: call after the state is synced.
    pub fn purge_retired(&self) -> Result<()> {
        for (_, _, path) in self.retired()? {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// Puts back the newest retired file of `ino` as its staging file (after a crash lost the change that
    /// retired it); returns whether there was one.
    pub fn restore(&self, ino: u64) -> Result<bool> {
        let newest = self
            .retired()?
            .into_iter()
            .filter(|(i, _, _)| *i == ino)
            .max_by_key(|(_, n, _)| *n);
        match newest {
            Some((_, _, from)) => {
                let to = self.path(ino);
                std::fs::rename(&from, &to).at(&to)?;
                self.sync()?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Retired files: (inode, number, path).
    fn retired(&self) -> Result<Vec<(u64, u64, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some((ino, n)) = name.split_once(RETIRED) {
                if let (Ok(ino), Ok(n)) = (ino.parse(), n.parse()) {
                    out.push((ino, n, entry.path()));
                }
            }
        }
        Ok(out)
    }

    /// Inode numbers that have a staging file (temporary files included, as their inode).
    pub fn inodes(&self) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Ok(ino) = name.trim_end_matches(".tmp").parse() {
                out.push(ino);
            }
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<File>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Makes renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
