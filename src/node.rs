//! One node: a repository opened with its long-running services: the engine running queued jobs, the
//! watchers that sync folders, the search index keeper, and the control socket through which the CLI
//! talks to the owner, and the network node when it is on. `noisefs daemon` and the mount each run one
//! node; a CLI command that finds no owner opens the repository and uses [`engine`] alone.
//!
//! The control socket runs the CLI's command code on the client's standard streams, so the node takes
//! its command handler from [`crate::cli::command_handler`]: the one place the core reaches up to the
//! CLI, and the reason the mount needs nothing of the CLI itself.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::daemon;
use crate::engine::Engine;
use crate::jobs::{Registry, SealJob};
use crate::repo::Repo;
use crate::sync::SyncJob;
use crate::Result;

/// How often the owner looks for pinned roots it has not provided yet.
const PROVIDE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Every kind of queued job this noisefs runs.
pub fn jobs() -> Registry {
    Registry::new()
        .register(Arc::new(SealJob))
        .register(Arc::new(SyncJob))
}

/// The engine of `repo` with every job registered.
pub fn engine(repo: Arc<Repo>) -> Result<Engine> {
    Engine::new(repo, jobs())
}

/// A repository and its services.
pub struct Node {
    engine: Arc<Engine>,
    /// Where this node's owner is mounted (a mount's node), for `status`.
    mountpoint: Option<std::path::PathBuf>,
}

impl Node {
    /// Opens the repository at `root` (creating it on first use) with its engine.
    pub fn open(root: &Path) -> Result<Node> {
        let repo = Arc::new(Repo::open(root)?);
        Ok(Node {
            engine: Arc::new(engine(repo)?),
            mountpoint: None,
        })
    }

    /// A node over an engine already made (a command that runs the services in the foreground).
    pub fn with_engine(engine: Arc<Engine>) -> Node {
        Node {
            engine,
            mountpoint: None,
        }
    }

    /// The node of a mount on `dir` (`status` names it).
    pub fn mounted_on(self, dir: &Path) -> Node {
        Node {
            mountpoint: Some(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())),
            ..self
        }
    }

    /// The engine (and through it the repository, tree and queue).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// What `status` shows of this process as the repository's owner.
    pub fn info(&self) -> daemon::Info {
        let root = self.engine.repo().root();
        daemon::Info {
            pid: std::process::id(),
            started: crate::clock::now_ms(),
            socket: daemon::socket_path(root),
            mountpoint: self.mountpoint.clone(),
        }
    }

    /// Runs every service, serving the CLI on the control socket, until `shutdown` completes; then runs
    /// the work that is due and leaves the rest queued.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let handler = crate::cli::command_handler(self.engine.clone(), self.info());
        let providing = self.start_network().await?;
        let served = daemon::serve(self.engine.clone(), Some(handler), shutdown).await;
        if let Some(task) = providing {
            task.abort();
        }
        if let Some(net) = self.engine.network() {
            net.shutdown().await;
        }
        served
    }

    /// Starts the node when the network is on, and a task that provides pinned roots as they appear
    /// (checked every few seconds; Kademlia republishes what it provides on its own interval), and the
    /// announcements' service.
    async fn start_network(&self) -> Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(net) = self.engine.network().cloned() else {
            return Ok(None);
        };
        let info = net.info().await?;
        tracing::info!(peer = %info.peer, addrs = ?info.addrs, "the network is on");
        self.engine.announcements()?.start().await?;
        Ok(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROVIDE_CHECK);
            loop {
                tick.tick().await;
                match net.provide_pins().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(roots = n, "provided pinned roots"),
                    Err(e) => tracing::warn!(error = %e, "cannot provide pinned roots"),
                }
            }
        })))
    }

    /// Runs the engine and the sync watchers without a control socket, until `shutdown` completes (the
    /// foreground `noisefs sync run`).
    pub async fn run_without_socket(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        daemon::serve(self.engine.clone(), None, shutdown).await
    }
}

/// Completes on SIGINT or SIGTERM.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| crate::Error::io("<signals>", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| crate::Error::io("<signals>", e))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
