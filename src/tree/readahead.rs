//! Read-ahead: a [`Cursor`] per open file notices a sequential reader and keeps the sealed blocks ahead
//! of it being fetched into the tree's cache of opened blocks, in the background, so a front end (the
//! mount) only passes its reads through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Tree;
use crate::Result;

/// How far ahead of a sequential reader blocks are fetched.
pub const READ_AHEAD: u64 = 4 << 20;
/// A read that starts within this distance of where the last one ended counts as sequential (the
/// kernel sends several reads at once, so not always in order).
const SEQUENTIAL_SLACK: u64 = 2 << 20;

/// Where one reader of one file is.
#[derive(Debug, Default)]
pub struct Cursor {
    /// Where the last read ended.
    next: AtomicU64,
    /// How far read-ahead has been started.
    ahead: AtomicU64,
}

impl Tree {
    /// Reads like [`Tree::read`], and for a reader that continues about where `cursor` says it
    /// stopped, starts fetching the next stretch once it is past the middle of what was started.
    pub async fn read_sequential(
        self: &Arc<Self>,
        ino: u64,
        cursor: &Cursor,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let data = self.read(ino, offset, len).await?;
        let end = offset + data.len() as u64;
        let was = cursor.next.swap(end, Ordering::Relaxed);
        if offset.abs_diff(was) <= SEQUENTIAL_SLACK && !data.is_empty() {
            self.read_ahead(cursor, ino, end);
        }
        Ok(data)
    }

    fn read_ahead(self: &Arc<Self>, cursor: &Cursor, ino: u64, pos: u64) {
        let ahead = cursor.ahead.load(Ordering::Relaxed);
        if pos + READ_AHEAD / 2 < ahead {
            return;
        }
        let (from, to) = (ahead.max(pos), pos + READ_AHEAD);
        if cursor
            .ahead
            .compare_exchange(ahead, to, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another reader of this handle just did it
        }
        let tree = self.clone();
        tokio::spawn(async move {
            if let Err(e) = tree.prefetch(ino, from, to - from).await {
                tracing::debug!(ino, error = %e, "read-ahead failed (the read itself will report it)");
            }
        });
    }

    /// How far read-ahead has been started for `cursor`.
    pub fn read_ahead_mark(cursor: &Cursor) -> u64 {
        cursor.ahead.load(Ordering::Relaxed)
    }
}
