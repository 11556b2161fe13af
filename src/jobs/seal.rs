//! The seal job: turns a staged file into sealed content (write-back), under a hold so `gc` keeps what
//! it stores. A file written or open for writing meanwhile is queued again a second later.

use async_trait::async_trait;

use super::{Job, JobContext};
use crate::queue::Item;
use crate::tree::{Sealed, SEAL};
use crate::{Error, Result};

/// Wait before sealing again a file that was busy (written or open for writing), in ms.
const BUSY_RETRY_MS: i64 = 1_000;

/// Seals `seal` items: the payload is the inode number (8 bytes, little-endian).
pub struct SealJob;

#[async_trait]
impl Job for SealJob {
    fn kind(&self) -> &'static str {
        SEAL
    }

    async fn run(&self, cx: &JobContext, item: &Item) -> Result<()> {
        let ino = item
            .payload
            .as_slice()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| Error::Task(format!("queue item {} has a malformed payload", item.seq)))?;
        let hold = cx.repo.hold().await;
        match cx.tree.seal(&hold, ino, &cx.sealer).await? {
            Sealed::Done(link) => {
                tracing::info!(ino, root = link.split('#').next().unwrap_or_default(), "sealed");
                cx.queue.complete(item.seq)
            }
            Sealed::Inline(size) => {
                tracing::debug!(ino, size, "kept inline");
                cx.queue.complete(item.seq)
            }
            Sealed::Clean => cx.queue.complete(item.seq),
            Sealed::Busy => {
                cx.queue
                    .push(&item.kind, &item.key, &item.payload, BUSY_RETRY_MS)?;
                Ok(())
            }
        }
    }
}
