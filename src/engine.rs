//! The engine: runs the persistent queue. It seals staged files (write-back) and executes folder-sync
//! steps, retries failures with backoff (the item stays queued, with its error, until it succeeds), and
//! reports what it is doing for `status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::queue::{now_ms, Item, Queue};
use crate::repo::Repo;
use crate::search::Search;
use crate::transfer::{no_progress, Session};
use crate::tree::{Sealed, Tree, SEAL};
use crate::{sync, Error, Result};

/// Longest wait before retrying a failed item, in ms.
const MAX_RETRY_MS: i64 = 60_000;
/// Wait before sealing again a file that was busy (written or open for writing), in ms.
const BUSY_RETRY_MS: i64 = 1_000;

/// What the engine reports about itself.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    /// The item running now, as `kind key`.
    pub running: Option<String>,
    pub done: u64,
    pub failed: u64,
}

/// The engine of one repository.
pub struct Engine {
    repo: Arc<Repo>,
    tree: Arc<Tree>,
    session: Session,
    running: Mutex<Option<String>>,
    done: AtomicU64,
    failed: AtomicU64,
    /// Held while running the queue, so two callers (the daemon loop and a command inside the daemon)
    /// never run the same item at once.
    runner: tokio::sync::Mutex<()>,
    /// Woken when work is queued or the engine should look at the queue again.
    pub wake: tokio::sync::Notify,
    /// The search index, opened on first use.
    search: Mutex<Option<Arc<Search>>>,
}

impl Engine {
    /// The engine over `repo`'s tree.
    pub fn new(repo: Arc<Repo>) -> Result<Engine> {
        let tree = Arc::new(Tree::new(repo.clone())?);
        Ok(Engine {
            session: Session::new(repo.clone(), no_progress()),
            repo,
            tree,
            running: Mutex::new(None),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            runner: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            search: Mutex::new(None),
        })
    }

    /// The search index of the tree, opened (and if need be rebuilt) on first use.
    pub fn search(&self) -> Result<Arc<Search>> {
        let mut slot = self.search.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Search::open(self.tree.clone())?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// The repository.
    pub fn repo(&self) -> &Arc<Repo> {
        &self.repo
    }

    /// The tree.
    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        self.tree.queue()
    }

    /// The storing session the engine seals with.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Counters and the running item.
    pub fn status(&self) -> EngineStatus {
        EngineStatus {
            running: self.running.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Runs every item that is due now (items queued meanwhile included). With `ignore_delays`, runs
    /// items whose write-back delay has not passed too, but not items waiting to retry a failure.
    /// Returns how many items ran, and stops early when `stop` says so.
    pub async fn run_ready(&self, ignore_delays: bool, stop: &dyn Fn() -> bool) -> Result<u64> {
        let _running = self.runner.lock().await;
        let mut ran = 0;
        // One sweep in queue order; work queued meanwhile comes after and is reached too. A key runs
        // at most once per call, so work that re-queues itself (a busy file) cannot spin here.
        let mut done_keys = std::collections::HashSet::new();
        let mut after = 0;
        while !stop() {
            let now = now_ms();
            let item = self.queue().next_after(after, |i| {
                !done_keys.contains(&i.key) && (i.not_before <= now || (ignore_delays && i.attempts == 0))
            })?;
            let Some(item) = item else { break };
            after = item.seq;
            done_keys.insert(item.key.clone());
            self.run_item(item).await?;
            ran += 1;
        }
        Ok(ran)
    }

    /// Runs one item and records its outcome in the queue.
    pub async fn run_item(&self, item: Item) -> Result<()> {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{} {}", item.kind, item.key));
        let outcome = match item.kind.as_str() {
            SEAL => self.seal(&item).await,
            sync::SYNC => sync::execute(self, &item).await,
            other => Err(Error::Unsupported {
                what: format!("queue item kind {other}"),
                reason: "written by a newer noisefs; it stays queued".into(),
            }),
        };
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match outcome {
            Ok(()) => {
                self.done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let wait = (1_000i64 << item.attempts.min(6)).min(MAX_RETRY_MS);
                tracing::warn!(kind = %item.kind, key = %item.key, attempts = item.attempts + 1, retry_ms = wait, error = %e, "queued operation failed; will retry");
                self.queue().fail(item.seq, &e.to_string(), wait)
            }
        }
    }

    async fn seal(&self, item: &Item) -> Result<()> {
        let ino = item
            .payload
            .as_slice()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| Error::Task(format!("queue item {} has a malformed payload", item.seq)))?;
        let hold = self.repo.hold().await;
        match self.tree.seal(&hold, ino, &self.session).await? {
            Sealed::Done(link) => {
                tracing::info!(ino, %link, "sealed");
                self.queue().complete(item.seq)
            }
            Sealed::Clean => self.queue().complete(item.seq),
            Sealed::Busy => {
                self.queue()
                    .push(&item.kind, &item.key, &item.payload, BUSY_RETRY_MS)?;
                Ok(())
            }
        }
    }

    /// Runs queued work until nothing is due (delays ignored), as a command does before it returns when
    /// no daemon is there to do it later. Items that keep failing stay queued.
    pub async fn drain(&self) -> Result<u64> {
        self.run_ready(true, &|| false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockSize;
    use crate::repo::Config;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seals_written_files_and_retries_failures() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            block_size: BlockSize::new(4096).unwrap(),
            writeback_delay_ms: 60_000,
            ..Config::default()
        };
        let repo = Arc::new(Repo::init(&dir.path().join("r"), cfg).unwrap());
        let engine = Engine::new(repo.clone()).unwrap();
        let t = engine.tree().clone();
        let f = t.create(crate::tree::ROOT, "f", 0o644, 0, 0).unwrap().ino;
        t.open(f, true, false).await.unwrap();
        t.write(f, 0, &[7u8; 10_000]).await.unwrap();
        t.release(f, true).unwrap();
        // Not due for a minute: an ordinary run leaves it, a drain seals it.
        assert_eq!(engine.run_ready(false, &|| false).await.unwrap(), 0);
        assert!(t.getattr(f).unwrap().dirty);
        assert_eq!(engine.drain().await.unwrap(), 1);
        assert!(!t.getattr(f).unwrap().dirty);
        assert!(engine.queue().is_empty().unwrap());
        assert_eq!(engine.status().done, 1);

        // An unknown kind fails, stays queued with its error, and is not retried at once.
        engine.queue().push("future", "future/1", b"", 0).unwrap();
        engine.queue().push(SEAL, "seal/bad", b"xx", 0).unwrap();
        assert_eq!(engine.drain().await.unwrap(), 2);
        let items = engine.queue().list().unwrap();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i.attempts == 1 && i.last_error.is_some()));
        assert_eq!(engine.drain().await.unwrap(), 0);
        assert_eq!(engine.status().failed, 2);
        assert!(engine.status().running.is_none());
    }
}
