//! Files and folders in and out of a repository: [`put`] seals content into tuples and descriptor trees,
//! [`get`] opens links and streams content back, [`walk`] visits everything a link needs (for `gc`).

mod get;
mod put;
mod walk;

pub use get::{cat, get_to, open, read_to, Opened};
pub use put::{media_type, FileInfo, PutResult, Session};
pub use walk::{mark, Marks};

use std::sync::Arc;

/// Receives a count of bytes done; progress bars implement it.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A progress sink that ignores everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

/// Blocks sealed or opened at once: enough to keep both cores and the disk busy.
pub(crate) const PARALLEL_BLOCKS: usize = 8;
/// Tuples sealed between two commits of the state.
pub(crate) const COMMIT_EVERY: usize = 256;
