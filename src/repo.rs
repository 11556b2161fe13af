//! The embedded repository: its folder (`$NOISEFS_HOME`, else `$XDG_DATA_HOME/noisefs`, else
//! `~/.local/share/noisefs`; mode 0700), `config.toml`, the lock that makes one process its owner, and the
//! composed block store and state. Created on first use.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::block::BlockSize;
use crate::error::IoContext;
use crate::pool::Pool;
use crate::state::{FetchedLog, State};
use crate::store::{BlockSource, BreakerStatus, DiskStore, LocalStore, MemoryStore, Stack, StackBuilder};
use crate::{Error, Result};

/// Version of the repository layout and config.
pub const REPO_VERSION: u32 = 1;

/// `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Layout version.
    pub version: u32,
    /// Block size in bytes, fixed at init.
    pub block_size: BlockSize,
    /// Blocks per tuple: one stored block plus `tuple_size - 1` randomizers.
    pub tuple_size: u8,
    /// Size of the in-memory block cache, in MiB.
    pub cache_mib: u64,
    /// How long a written file waits after its last close or fsync before it is sealed, in ms.
    #[serde(default = "default_writeback_delay_ms")]
    pub writeback_delay_ms: u64,
    /// Timeouts, retries and circuit breaker around the block store.
    #[serde(default)]
    pub store: crate::store::Resilience,
    /// Folder sync's safety rails.
    #[serde(default)]
    pub sync: crate::sync::SyncConfig,
    /// Limits on what `receive` takes from a share.
    #[serde(default)]
    pub receive: crate::share::ReceiveConfig,
    /// The network: off in a new repository.
    #[serde(default)]
    pub network: crate::network::NetworkConfig,
}

fn default_writeback_delay_ms() -> u64 {
    2000
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: REPO_VERSION,
            block_size: BlockSize::DEFAULT,
            tuple_size: 3,
            cache_mib: 64,
            writeback_delay_ms: default_writeback_delay_ms(),
            store: crate::store::Resilience::default(),
            sync: crate::sync::SyncConfig::default(),
            receive: crate::share::ReceiveConfig::default(),
            network: crate::network::NetworkConfig::default(),
        }
    }
}

impl Config {
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let cfg: Config = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if cfg.version > REPO_VERSION {
            return Err(bad(format!(
                "layout version {} is newer than this noisefs supports ({REPO_VERSION}); upgrade noisefs",
                cfg.version
            )));
        }
        if !(2..=8).contains(&cfg.tuple_size) {
            return Err(bad(format!("tuple_size {} must be from 2 to 8", cfg.tuple_size)));
        }
        Ok(cfg)
    }

    fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let body = format!("# NoiseFS repository configuration (see docs/formats.md)\n{text}");
        write_private(path, body.as_bytes())
    }
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish()
    }
}

/// An open repository. Holding it means holding the repository's lock.
pub struct Repo {
    root: PathBuf,
    config: Config,
    state: Arc<State>,
    fetched: Arc<FetchedLog>,
    local: Arc<dyn LocalStore>,
    stack: Arc<Stack>,
    reader: Arc<dyn BlockSource>,
    pool: Mutex<Option<Pool>>,
    pending_sets: Mutex<std::collections::HashSet<[u8; 32]>>,
    gate: crate::hold::Gate,
    _lock: File,
}

impl Repo {
    /// The default repository folder for this user.
    pub fn default_path() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os("NOISEFS_HOME").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p).join("noisefs"));
        }
        match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".local/share/noisefs")),
            None => Err(Error::Config {
                path: PathBuf::from("$HOME"),
                reason: "neither NOISEFS_HOME, XDG_DATA_HOME nor HOME is set; pass --repo".into(),
            }),
        }
    }

    /// Creates a repository at `root` with `config`; refuses one that exists.
    pub fn init(root: &Path, config: Config) -> Result<Repo> {
        Self::init_with(root, config, |disk| disk)
    }

    /// Creates a repository whose blocks live in memory (gone when it is dropped); the state, tree and
    /// staging are on disk at `root` as usual. For tests and benchmarks that leave the block disk out.
    pub fn init_in_memory(root: &Path, config: Config) -> Result<Repo> {
        Self::init_with(root, config, |_| Arc::new(MemoryStore::new()))
    }

    fn init_with(
        root: &Path,
        config: Config,
        backend: impl FnOnce(Arc<DiskStore>) -> Arc<dyn LocalStore>,
    ) -> Result<Repo> {
        if root.join("config.toml").exists() {
            return Err(Error::AlreadyInitialized {
                path: root.to_path_buf(),
            });
        }
        match std::fs::read_dir(root) {
            // An existing folder becomes the repository only when empty: init never takes over (or
            // changes the mode of) a folder that holds something else.
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::Config {
                        path: root.to_path_buf(),
                        reason: "the folder exists and is not empty; give a new or empty folder".into(),
                    });
                }
            }
            Err(_) => {
                if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).at(parent)?;
                }
                std::fs::DirBuilder::new().mode(0o700).create(root).at(root)?
            }
        }
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).at(root)?;
        let lock = Self::lock(root)?;
        config.save(&root.join("config.toml"))?;
        crate::network::config::keypair(root)?;
        Self::compose(root, config, lock, backend)
    }

    /// The standard location, created on first use: `$XDG_DATA_HOME/noisefs`, else
    /// `~/.local/share/noisefs`. A `--repo` or `NOISEFS_HOME` folder is never created by use, so a
    /// typo there is an error instead of a new empty repository.
    pub fn standard_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p).join("noisefs"));
        }
        std::env::var_os("HOME")
            .filter(|p| !p.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share/noisefs"))
    }

    /// Opens the repository at `root`; at the standard location ([`Repo::standard_path`]) it is created
    /// with the default config on first use, anywhere else it must have been made by `noisefs init`.
    pub fn open(root: &Path) -> Result<Repo> {
        if !root.join("config.toml").exists() {
            if Self::standard_path().as_deref() != Some(root) {
                return Err(Error::NotInitialized {
                    path: root.to_path_buf(),
                });
            }
            tracing::info!("creating the repository at its standard location on first use");
            return Self::init(root, Config::default());
        }
        Self::open_existing(root)
    }

    /// Opens an existing repository; [`Error::NotInitialized`] when there is none.
    pub fn open_existing(root: &Path) -> Result<Repo> {
        Self::open_with(root, |disk| disk)
    }

    /// Opens an existing repository with another local store: `backend` gets the disk store and returns
    /// what to use instead (tests put a fault-injecting or throttled store there).
    pub fn open_with(
        root: &Path,
        backend: impl FnOnce(Arc<DiskStore>) -> Arc<dyn LocalStore>,
    ) -> Result<Repo> {
        let cfg_path = root.join("config.toml");
        if !cfg_path.exists() {
            return Err(Error::NotInitialized {
                path: root.to_path_buf(),
            });
        }
        check_private(root)?;
        let lock = Self::lock(root)?;
        let config = Config::load(&cfg_path)?;
        Self::compose(root, config, lock, backend)
    }

    fn compose(
        root: &Path,
        config: Config,
        lock: File,
        backend: impl FnOnce(Arc<DiskStore>) -> Arc<dyn LocalStore>,
    ) -> Result<Repo> {
        tighten(root)?;
        let state = Arc::new(State::open(&root.join("state"))?);
        let fetched = Arc::new(FetchedLog::new(state.clone()));
        let local = backend(Arc::new(DiskStore::open(root.join("blocks"))?));
        let stack = Arc::new(
            StackBuilder::new("disk", local.clone())
                .resilience(config.store.clone())
                .cache_bytes(config.cache_mib << 20)
                .on_fetched(fetched.clone())
                .build(),
        );
        let reader: Arc<dyn BlockSource> = stack.clone();
        Ok(Repo {
            root: root.to_path_buf(),
            config,
            state,
            fetched,
            local,
            stack,
            reader,
            pool: Mutex::new(None),
            pending_sets: Mutex::new(std::collections::HashSet::new()),
            gate: crate::hold::Gate::default(),
            _lock: lock,
        })
    }

    /// Whether a process holds the lock of the repository at `root` now (a quick probe: it is free
    /// again when this returns).
    pub fn is_locked(root: &Path) -> bool {
        match File::open(root.join("repo.lock")) {
            Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Takes the repository lock, recording this process's id in it (the file is 0600).
    fn lock(root: &Path) -> Result<File> {
        let path = root.join("repo.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(Error::Locked {
                    path: root.to_path_buf(),
                    pid: match pid.trim() {
                        "" => "unknown".into(),
                        p => p.to_string(),
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        file.set_len(0).at(&path)?;
        file.rewind().at(&path)?;
        write!(file, "{}", std::process::id()).at(&path)?;
        Ok(file)
    }

    /// The repository folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Changes `config.toml` with `edit` and saves it; the change applies from the next open (a
    /// running owner keeps the configuration it was opened with). Returns the new configuration.
    pub fn edit_config(&self, edit: impl FnOnce(&mut Config)) -> Result<Config> {
        let path = self.root.join("config.toml");
        let mut cfg = Config::load(&path)?;
        edit(&mut cfg);
        cfg.save(&path)?;
        Ok(cfg)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The block size in bytes.
    pub fn block_size(&self) -> usize {
        self.config.block_size.get()
    }

    /// The state databases.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Writes the records of blocks fetched from peers that are still gathered in memory.
    pub fn record_fetched(&self) -> Result<()> {
        self.fetched.flush()
    }

    /// Where blocks are read from: the cache, then the local store, then remote sources.
    pub fn store(&self) -> &Arc<dyn BlockSource> {
        &self.reader
    }

    /// The whole store stack: reads as [`Repo::store`], writes and deletes to the local store.
    pub fn stack(&self) -> &Arc<Stack> {
        &self.stack
    }

    /// The repository's own store, without cache or breaker (verification reads it directly).
    pub fn local(&self) -> &Arc<dyn LocalStore> {
        &self.local
    }

    /// Every store layer's circuit breaker, for `status`.
    pub fn breakers(&self) -> Vec<BreakerStatus> {
        self.stack.breakers()
    }

    /// A hold for one writing operation: `gc` removes none of the blocks it stores, chooses or refers to
    /// until it is dropped (see [`crate::hold`]).
    pub async fn hold(&self) -> crate::hold::Hold {
        self.gate.hold().await
    }

    /// The gate between writers and `gc`.
    pub fn gate(&self) -> &crate::hold::Gate {
        &self.gate
    }

    /// Randomizer sets chosen by storing sessions and not committed yet.
    pub fn pending_sets(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<[u8; 32]>> {
        self.pending_sets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the randomizer pool, loaded from the state on first use.
    pub fn with_pool<T>(&self, f: impl FnOnce(&mut Pool) -> T) -> Result<T> {
        let mut guard = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let mut pool = match guard.take() {
            Some(pool) => pool,
            None => self.load_pool()?,
        };
        let out = f(&mut pool);
        *guard = Some(pool);
        Ok(out)
    }

    /// Builds the pool from the block records, most popular first so they fill the hot set. The hot set
    /// is what half the cache holds, so its blocks stay cached while in use.
    fn load_pool(&self) -> Result<Pool> {
        let cache_blocks = (self.config.cache_mib << 20) / self.block_size() as u64;
        let mut pool = Pool::new((cache_blocks / 2).clamp(2, 4096) as usize);
        let mut blocks = self.state.blocks()?;
        blocks.sort_by_key(|(_, rec)| std::cmp::Reverse(rec.popularity));
        for (id, rec) in blocks {
            pool.add(id, rec.popularity);
        }
        Ok(pool)
    }

    /// Drops the in-memory pool so the next use reloads it (after `gc`).
    pub fn reset_pool(&self) {
        *self.pool.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A repository for unit tests: 4 KiB blocks, sealing without delay, in `<dir>/repo`.
/// Refuses a repository folder that other users can enter or read: its staging, search index, state
/// and logs hold names and content in clear.
fn check_private(root: &Path) -> Result<()> {
    let mode = std::fs::metadata(root).at(root)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Exposed {
            path: root.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` mode 0600, aside and renamed, so a crash never leaves half a file.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)
}

/// What the repository keeps directly inside its folder, and the mode each gets: folders 0700, files
/// 0600 (also for repositories made by versions that left them at the umask's default).
const PRIVATE: [(&str, u32); 10] = [
    ("blocks", 0o700),
    ("state", 0o700),
    ("staging", 0o700),
    ("index", 0o700),
    ("config.toml", 0o600),
    ("repo.lock", 0o600),
    ("mount.log", 0o600),
    ("daemon.log", 0o600),
    ("daemon.sock", 0o600),
    (crate::network::KEY_FILE, 0o600),
];

/// Creates the repository's folders 0700 and sets every entry of [`PRIVATE`] that exists to its mode.
fn tighten(root: &Path) -> Result<()> {
    for (name, mode) in PRIVATE {
        let path = root.join(name);
        if mode == 0o700 {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .at(&path)?;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.permissions().mode() & 0o777 != mode && !m.file_type().is_symlink() => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).at(&path)?
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn test_repo(dir: &Path) -> Arc<Repo> {
    let cfg = Config {
        block_size: crate::block::BlockSize::new(4096).expect("block size"),
        writeback_delay_ms: 0,
        ..Config::default()
    };
    Arc::new(Repo::init(&dir.join("repo"), cfg).expect("test repository"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_repository_stays_private_and_init_takes_over_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // An existing folder with something in it is not taken over, nor has its mode changed.
        let busy = dir.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::set_permissions(&busy, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(busy.join("notes"), b"mine").unwrap();
        let err = Repo::init(&busy, Config::default()).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(
            std::fs::symlink_metadata(&busy).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
        assert!(!busy.join("config.toml").exists());

        // Made by init: 0700 folders and 0600 files, also what an earlier version left looser.
        let root = dir.path().join("repo");
        drop(Repo::init(&root, Config::default()).unwrap());
        for (name, want) in PRIVATE {
            if root.join(name).exists() {
                assert_eq!(mode(&root.join(name)), want, "{name}");
            }
        }
        std::fs::set_permissions(root.join("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(root.join("config.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Repo::open(&root).unwrap());
        assert_eq!(
            (mode(&root.join("state")), mode(&root.join("config.toml"))),
            (0o700, 0o600)
        );

        // A repository folder opened up to others is refused, saying what to do.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = Repo::open(&root).unwrap_err();
        assert_eq!(err.errno(), libc::EACCES);
        assert!(err.to_string().contains("chmod 700"), "{err}");
        assert_eq!(mode(&root), 0o755, "the mode is the user's to change");
    }

    #[test]
    fn init_open_lock_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let cfg = Config {
            block_size: BlockSize::new(4096).unwrap(),
            ..Config::default()
        };
        let repo = Repo::init(&root, cfg.clone()).unwrap();
        assert_eq!(repo.config(), &cfg);
        assert_eq!(repo.block_size(), 4096);
        assert!(format!("{repo:?}").contains("block_size"));
        let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A second owner is refused with our pid named (flock locks are per open file description).
        match Repo::open(&root) {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("opened a locked repository"),
        }
        drop(repo);
        assert!(matches!(
            Repo::init(&root, Config::default()),
            Err(Error::AlreadyInitialized { .. })
        ));
        let again = Repo::open(&root).unwrap();
        assert_eq!(again.config().block_size.get(), 4096);
        assert!(again.with_pool(|p| p.is_empty()).unwrap());
        drop(again);

        std::fs::write(
            root.join("config.toml"),
            "version = 9\nblock_size = 4096\ntuple_size = 3\ncache_mib = 1\n",
        )
        .unwrap();
        assert!(Repo::open(&root).unwrap_err().to_string().contains("newer"));
        std::fs::write(
            root.join("config.toml"),
            "version = 1\nblock_size = 4096\ntuple_size = 1\ncache_mib = 1\n",
        )
        .unwrap();
        assert!(Repo::open(&root).unwrap_err().to_string().contains("tuple_size"));
        std::fs::write(
            root.join("config.toml"),
            "version = 1\nblock_size = 1000\ntuple_size = 3\ncache_mib = 1\n",
        )
        .unwrap();
        assert!(Repo::open(&root).is_err());
        assert!(matches!(
            Repo::open_existing(&dir.path().join("none")),
            Err(Error::NotInitialized { .. })
        ));
    }
}
