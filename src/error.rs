//! The library's error type: one enum whose messages say what failed, where, and what to do.

use std::path::PathBuf;

use crate::block::BlockId;

/// Everything the NoiseFS library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("block {id} is missing from the repository (fetch it from a peer, or the link is incomplete)")]
    MissingBlock { id: BlockId },
    #[error("block {id} is corrupt: its bytes hash to {actual}; run `noisefs repo verify` and restore it")]
    CorruptBlock { id: BlockId, actual: BlockId },
    #[error("block has {actual} bytes, the repository block size is {expected}")]
    BlockSize { expected: usize, actual: usize },
    #[error("invalid block id `{input}`: {reason}")]
    InvalidBlockId { input: String, reason: String },
    #[error("invalid link `{input}`: {reason} (expected noisefs://<cid>#<key>)")]
    InvalidLink { input: String, reason: String },
    #[error("cannot decrypt descriptor block {id}: wrong key or password, or the block was forged")]
    Decrypt { id: BlockId },
    #[error("descriptor block {id} is malformed: {reason}")]
    Descriptor { id: BlockId, reason: String },
    #[error("folder manifest has an unsafe entry name {name:?}: {reason}")]
    UnsafeName { name: String, reason: String },
    #[error("{path} already exists; pass --force to replace it")]
    TargetExists { path: PathBuf },
    #[error("repository at {path} has state schema version {found}, this noisefs supports up to {supported}; upgrade noisefs")]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("repository at {path} is locked by process {pid}, which does not take other commands (it is not a daemon or mount); wait for it (`--retry-lock 30s` waits that long), or run `noisefs daemon` so that commands go through one owner")]
    Locked { path: PathBuf, pid: String },
    #[error("no repository at {path}: check --repo and NOISEFS_HOME, or create one there with `noisefs --repo {path} init`")]
    NotInitialized { path: PathBuf },
    #[error("repository at {path} has mode {mode:03o}: other users could read the file names and content kept in it; run `chmod 700 {path}`")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("repository at {path} is already initialized")]
    AlreadyInitialized { path: PathBuf },
    #[error("invalid configuration in {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("block size {0} is not allowed: use a power of two from 4 KiB to 1 MiB")]
    InvalidBlockSize(usize),
    #[error("state database error: {0}")]
    State(#[from] heed::Error),
    #[error("{what} is not supported: {reason}")]
    Unsupported { what: String, reason: String },
    #[error("cryptography failed: {0}")]
    Crypto(String),
    #[error("background task failed: {0}")]
    Task(String),
    /// A filesystem operation on the tree failed the POSIX way (no such entry, exists, not empty...).
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Posix { errno: i32, what: String },
    #[error("invalid search query {query:?} at character {pos}: {reason}")]
    Query {
        query: String,
        pos: usize,
        reason: String,
    },
    #[error("search index at {path}: {reason}; run `noisefs search --reindex` to rebuild it")]
    Index { path: PathBuf, reason: String },
    #[error("{root} is not pinned (see `noisefs pin ls`)")]
    NotPinned { root: BlockId },
    #[error("invalid topic {input:?}: {reason}")]
    Topic { input: String, reason: String },
    #[error("announcement refused: {0}")]
    Announcement(String),
    #[error("store {store} is unavailable ({reason})")]
    Unavailable { store: String, reason: String },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A POSIX failure `errno` on `what` (a path or name the user can recognise).
    pub fn posix(errno: i32, what: impl Into<String>) -> Self {
        Error::Posix {
            errno,
            what: what.into(),
        }
    }

    /// The errno a filesystem call reports for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Posix { errno, .. } => *errno,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::InvalidLink { .. } | Error::InvalidBlockId { .. } | Error::UnsafeName { .. } => {
                libc::EINVAL
            }
            Error::TargetExists { .. } | Error::AlreadyInitialized { .. } => libc::EEXIST,
            Error::Locked { .. } => libc::EBUSY,
            Error::Unsupported { .. } => libc::ENOTSUP,
            Error::Query { .. } => libc::EINVAL,
            // A store or every peer failed to answer in time: an I/O error (EAGAIN would tell a
            // reader of a regular file to spin).
            Error::Unavailable { .. } => libc::EIO,
            Error::Decrypt { .. } | Error::Exposed { .. } => libc::EACCES,
            Error::NotPinned { .. } => libc::ENOENT,
            _ => libc::EIO,
        }
    }
}

/// Adds the path to an I/O result.
pub trait IoContext<T> {
    /// Maps an `io::Error` into [`Error::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_errnos() {
        let id = BlockId::of(b"x");
        let cases: Vec<(Error, i32)> = vec![
            (Error::posix(libc::ENOTEMPTY, "d"), libc::ENOTEMPTY),
            (
                Error::io("/p", std::io::Error::from_raw_os_error(libc::ENOSPC)),
                libc::ENOSPC,
            ),
            (Error::io("/p", std::io::Error::other("x")), libc::EIO),
            (
                Error::InvalidLink {
                    input: "x".into(),
                    reason: "y".into(),
                },
                libc::EINVAL,
            ),
            (Error::TargetExists { path: "/t".into() }, libc::EEXIST),
            (
                Error::Locked {
                    path: "/r".into(),
                    pid: "1".into(),
                },
                libc::EBUSY,
            ),
            (
                Error::Unsupported {
                    what: "a".into(),
                    reason: "b".into(),
                },
                libc::ENOTSUP,
            ),
            (
                Error::Unavailable {
                    store: "s".into(),
                    reason: "r".into(),
                },
                libc::EIO,
            ),
            (Error::Decrypt { id }, libc::EACCES),
            (Error::MissingBlock { id }, libc::EIO),
            (Error::NotPinned { root: id }, libc::ENOENT),
        ];
        for (e, errno) in cases {
            assert_eq!(e.errno(), errno, "{e}");
        }
        let msg = Error::posix(libc::ENOENT, "tree path /a").to_string();
        assert!(msg.starts_with("tree path /a: No such file"), "{msg}");
    }
}
