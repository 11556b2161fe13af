//! Queued work by kind. Each kind of job (sealing a staged file, one folder-sync step; fetching and
//! providing with the network) implements [`Job`] and is registered in a [`Registry`] under the kind
//! its queue items carry; the engine runs items through the registry and knows no job itself. A job
//! gets a [`JobContext`] (repository, tree, queue, storing session), not the engine.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::queue::{Item, Queue};
use crate::repo::Repo;
use crate::transfer::Sealer;
use crate::tree::Tree;
use crate::Result;

mod seal;
pub use seal::SealJob;

/// What a job may use.
pub struct JobContext {
    pub repo: Arc<Repo>,
    pub tree: Arc<Tree>,
    pub queue: Queue,
    /// The storing session jobs seal with (its pending state is shared by every job).
    pub sealer: Sealer,
}

/// One kind of queued work.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// The kind its queue items carry.
    fn kind(&self) -> &'static str;
    /// Runs `item`: on success the job has completed or re-queued the item in the queue itself (often in
    /// the same transaction as its effect); on failure the engine records the error and retries.
    async fn run(&self, cx: &JobContext, item: &Item) -> Result<()>;
}

/// The jobs an engine runs, by kind.
#[derive(Default, Clone)]
pub struct Registry {
    jobs: HashMap<&'static str, Arc<dyn Job>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `job` under its kind (replacing one registered before).
    pub fn register(mut self, job: Arc<dyn Job>) -> Self {
        self.jobs.insert(job.kind(), job);
        self
    }

    /// The job for `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Job>> {
        self.jobs.get(kind)
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = self.jobs.keys().copied().collect();
        k.sort_unstable();
        k
    }
}
