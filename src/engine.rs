//! The engine: runs the persistent queue. Each item goes to the job registered for its kind (see
//! [`crate::jobs`]); failures are retried with backoff (the item stays queued, with its error, until it
//! succeeds), and the engine reports what it is doing for `status`. It knows no job itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::now_ms;
use crate::jobs::{JobContext, Registry};
use crate::network::Network;
use crate::queue::{Item, Queue};
use crate::repo::Repo;
use crate::search::Search;
use crate::transfer::{no_progress, Sealer};
use crate::tree::Tree;
use crate::{Error, Result};

/// Longest wait before retrying a failed item, in ms.
const MAX_RETRY_MS: i64 = 60_000;

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
    cx: JobContext,
    jobs: Registry,
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
    /// The repository's network when it is on (its node starts on first use).
    network: Option<Arc<Network>>,
    /// Announcements and subscriptions, opened on first use.
    announcements: std::sync::OnceLock<Arc<crate::announce::Announcements>>,
}

impl Engine {
    /// The engine over `repo`'s tree, running the kinds of work `jobs` has.
    pub fn new(repo: Arc<Repo>, jobs: Registry) -> Result<Engine> {
        let tree = Arc::new(Tree::new(repo.clone())?);
        let queue = Queue::open(repo.state())?;
        let network = Network::attach(&repo);
        Ok(Engine {
            cx: JobContext {
                sealer: Sealer::new(repo.clone(), no_progress()),
                repo,
                tree,
                queue,
            },
            jobs,
            running: Mutex::new(None),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            runner: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            search: Mutex::new(None),
            network,
            announcements: std::sync::OnceLock::new(),
        })
    }

    /// The search index of the tree, opened (and if need be rebuilt) on first use.
    pub fn search(&self) -> Result<Arc<Search>> {
        let mut slot = self.search.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Search::open(self.cx.tree.clone())?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Announcements and subscriptions (their service starts with the owner's node).
    pub fn announcements(&self) -> Result<Arc<crate::announce::Announcements>> {
        if let Some(a) = self.announcements.get() {
            return Ok(a.clone());
        }
        let repo = &self.cx.repo;
        let a = Arc::new(crate::announce::Announcements::open(
            repo.root().to_path_buf(),
            repo.state(),
            self.network.clone(),
        )?);
        Ok(self.announcements.get_or_init(|| a).clone())
    }

    /// The repository's network, when it is on.
    pub fn network(&self) -> Option<&Arc<Network>> {
        self.network.as_ref()
    }

    /// What jobs get: repository, tree, queue, storing session.
    pub fn context(&self) -> &JobContext {
        &self.cx
    }

    /// The repository.
    pub fn repo(&self) -> &Arc<Repo> {
        &self.cx.repo
    }

    /// The tree.
    pub fn tree(&self) -> &Arc<Tree> {
        &self.cx.tree
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.cx.queue
    }

    /// The storing session the engine's jobs seal with.
    pub fn sealer(&self) -> &Sealer {
        &self.cx.sealer
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

    /// Runs one item through its job and records the outcome in the queue.
    pub async fn run_item(&self, item: Item) -> Result<()> {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{} {}", item.kind, item.key));
        let outcome = match self.jobs.get(&item.kind) {
            Some(job) => job.run(&self.cx, &item).await,
            None => Err(Error::Unsupported {
                what: format!("queue item kind {}", item.kind),
                reason: format!(
                    "this noisefs runs {}; it was written by a newer one and stays queued",
                    self.jobs.kinds().join(", ")
                ),
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
    use crate::tree::SEAL;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_items_through_their_jobs_and_retries_failures() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            block_size: BlockSize::new(4096).unwrap(),
            writeback_delay_ms: 60_000,
            ..Config::default()
        };
        let repo = Arc::new(Repo::init(&dir.path().join("r"), cfg).unwrap());
        let engine = crate::node::engine(repo.clone()).unwrap();
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

        // An unknown kind fails, stays queued with its error naming the kinds this engine runs, and is
        // not retried at once; so does a malformed seal.
        engine.queue().push("future", "future/1", b"", 0).unwrap();
        engine.queue().push(SEAL, "seal/bad", b"xx", 0).unwrap();
        assert_eq!(engine.drain().await.unwrap(), 2);
        let items = engine.queue().list().unwrap();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i.attempts == 1 && i.last_error.is_some()));
        let unknown = items.iter().find(|i| i.kind == "future").unwrap();
        assert!(
            unknown.last_error.as_deref().unwrap().contains("runs seal, sync"),
            "{unknown:?}"
        );
        assert_eq!(engine.drain().await.unwrap(), 0);
        assert_eq!(engine.status().failed, 2);
        assert!(engine.status().running.is_none());
    }
}
