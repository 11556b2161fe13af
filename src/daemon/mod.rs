//! The daemon: the long-running owner of a repository. It runs the engine (write-back sealing, queued
//! sync steps), watches sync sessions' folders (`notify`) and the tree for changes, and serves commands
//! over `daemon.sock` in the repository (mode 0600, see [`proto`]). On SIGINT/SIGTERM it stops taking
//! requests, runs the queued work that is due, and leaves the rest persisted for the next start.
//!
//! The socket serves only its own user (and root), checked by the peer's credentials, holds at most
//! [`MAX_CONNECTIONS`] at once, drops a connection that sends no request within [`IDLE`], and cancels a
//! command whose client goes away (Ctrl-C of the client cancels the work).

pub mod proto;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use serde::Serialize;

use crate::clock::now_ms;
use crate::engine::Engine;
use crate::error::IoContext;
use crate::sync::{self, Syncs};
use crate::Result;

/// The socket's name in the repository folder.
pub const SOCKET: &str = "daemon.sock";
/// How long changes settle before a session syncs.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often every session is rescanned even without events (events can be lost).
const RESCAN: Duration = Duration::from_secs(60);
/// How long tree changes settle before the search index is updated.
const INDEX_DELAY: Duration = Duration::from_secs(1);
/// How long shutdown may spend running due work.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);
/// Most connections served at once; more are answered "busy" and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may stay open without sending its request.
pub const IDLE: Duration = Duration::from_secs(5);

/// What `status` shows about a running daemon.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub pid: u32,
    /// Start time, ms since the epoch.
    pub started: i64,
    pub socket: PathBuf,
    /// Where the owner is mounted, when it is a mount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<PathBuf>,
}

/// Runs one `run` request: the request, its three descriptors (stdin, stdout, stderr) and a future that
/// completes when the client goes away (the handler then drops the command's work); returns the exit
/// status. The CLI provides it, so the daemon need not know the commands.
pub type Handler = Arc<dyn Fn(proto::Request, Vec<OwnedFd>, Hangup) -> i32 + Send + Sync>;

/// Completes when the client of a command has closed its connection.
pub type Hangup = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The exit status of a command cancelled because its client went away (as for SIGINT).
pub const CANCELLED: i32 = 130;

/// The socket path of the repository at `root`.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join(SOCKET)
}

/// Connects to the daemon of the repository at `root`, if one is running.
pub fn connect(root: &Path) -> Option<UnixStream> {
    UnixStream::connect(socket_path(root)).ok()
}

/// Serves `engine`'s repository until `shutdown` completes. With a `handler`, also listens on the
/// control socket; without, only syncs and seals (the foreground `sync run`).
pub async fn serve(
    engine: Arc<Engine>,
    handler: Option<Handler>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let stop = Arc::new(AtomicBool::new(false));
    let socket = socket_path(engine.repo().root());
    let (accept, indexer) = match handler {
        Some(h) => (
            Some(listen(&socket, h, events_tx.clone(), stop.clone())?),
            Some(tokio::spawn(keep_index_current(engine.clone()))),
        ),
        None => (None, None),
    };
    let syncs = Syncs::open(engine.repo().state())?;
    let mut watchers: HashMap<u64, notify::RecommendedWatcher> = HashMap::new();
    let mut tree_changes = engine.tree().subscribe();
    let mut dirty: HashSet<u64> = syncs.list()?.iter().map(|s| s.id).collect();
    let mut last_rescan = std::time::Instant::now();
    let mut last_sync = std::time::Instant::now();
    tokio::pin!(shutdown);
    tracing::info!(socket = %socket.display(), "daemon running");
    loop {
        refresh_watchers(&syncs, &mut watchers, &events_tx);
        if let Err(e) = engine.run_ready(false, &|| stop.load(Ordering::Relaxed)).await {
            tracing::warn!(error = %e, "running queued work failed");
        }
        let ids: Vec<u64> = std::mem::take(&mut dirty).into_iter().collect();
        match sync::converge_all(&engine, &ids).await {
            Ok(results) => {
                for (id, r) in results {
                    if let Err(e) = r {
                        tracing::warn!(session = id, error = %e, "sync pass failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "sync passes failed"),
        }
        // Our own sync steps changed the tree; that needs no new pass.
        tree_changes.borrow_and_update();
        let wait = match engine.queue().next_due()? {
            Some(due) => Duration::from_millis((due - now_ms()).clamp(10, 1000) as u64),
            // Wake once a second anyway, to sync the state after changes made meanwhile.
            None => Duration::from_secs(1),
        };
        tokio::select! {
            () = &mut shutdown => break,
            Some(id) = events.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                mark(&syncs, &mut dirty, id);
                while let Ok(id) = events.try_recv() {
                    mark(&syncs, &mut dirty, id);
                }
            }
            Ok(()) = tree_changes.changed() => {
                tokio::time::sleep(DEBOUNCE).await;
                mark(&syncs, &mut dirty, 0);
            }
            () = engine.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        if last_sync.elapsed() >= Duration::from_secs(1) {
            // Commits are not synced one by one (see State::open); bound what a power loss can take.
            if let Err(e) = engine.tree().sync() {
                tracing::warn!(error = %e, "cannot sync the state");
            }
            last_sync = std::time::Instant::now();
        }
        if last_rescan.elapsed() >= RESCAN {
            mark(&syncs, &mut dirty, 0);
            last_rescan = std::time::Instant::now();
        }
    }
    tracing::info!("daemon stopping: running due work, persisting the rest");
    stop.store(true, Ordering::Relaxed);
    if let Some(task) = indexer {
        task.abort();
    }
    if let Some(t) = accept {
        let _ = UnixStream::connect(&socket); // wakes the accept loop so it sees `stop`
        let _ = t.join();
        let _ = std::fs::remove_file(&socket);
    }
    let deadline = std::time::Instant::now() + SHUTDOWN_DRAIN;
    let drained = engine
        .run_ready(false, &|| std::time::Instant::now() > deadline)
        .await;
    engine.tree().sync()?;
    let left = engine.queue().len()?;
    tracing::info!(left, "daemon stopped");
    drained.map(|_| ())
}

/// Keeps the search index current: indexes the tree at start, then after each burst of changes, so
/// searches rarely wait for a refresh of their own.
async fn keep_index_current(engine: Arc<Engine>) {
    let search = match engine.search() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "search index unavailable; searches will report the error");
            return;
        }
    };
    let mut changes = engine.tree().subscribe();
    loop {
        match search.refresh().await {
            Ok(done) if done.indexed + done.removed > 0 => {
                tracing::info!(
                    indexed = done.indexed,
                    removed = done.removed,
                    entries = done.entries,
                    "search index updated"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot update the search index"),
        }
        if changes.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(INDEX_DELAY).await;
    }
}

/// Adds session `id` (0: every session) to `dirty`.
fn mark(syncs: &Syncs, dirty: &mut HashSet<u64>, id: u64) {
    if id != 0 {
        dirty.insert(id);
    } else if let Ok(all) = syncs.list() {
        dirty.extend(all.iter().filter(|s| !s.paused).map(|s| s.id));
    }
}

/// Watches every session's local folder; drops watchers of removed sessions.
fn refresh_watchers(
    syncs: &Syncs,
    watchers: &mut HashMap<u64, notify::RecommendedWatcher>,
    events: &tokio::sync::mpsc::UnboundedSender<u64>,
) {
    let Ok(sessions) = syncs.list() else { return };
    let live: HashSet<u64> = sessions.iter().filter(|s| !s.paused).map(|s| s.id).collect();
    watchers.retain(|id, _| live.contains(id));
    let new: Vec<&sync::Session> = sessions
        .iter()
        .filter(|s| live.contains(&s.id) && !watchers.contains_key(&s.id))
        .collect();
    for s in new {
        let (tx, id) = (events.clone(), s.id);
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let ours = ev.as_ref().is_ok_and(|e| {
                e.paths.iter().all(|p| {
                    p.file_name()
                        .is_some_and(|n| sync::scan::is_temp(&n.to_string_lossy()))
                })
            });
            if !ours {
                let _ = tx.send(id);
            }
        });
        match watcher.and_then(|mut w| w.watch(&s.local, notify::RecursiveMode::Recursive).map(|()| w)) {
            Ok(w) => {
                watchers.insert(s.id, w);
            }
            Err(e) => {
                tracing::warn!(session = s.id, path = %s.local.display(), error = %e, "cannot watch; relying on periodic rescans")
            }
        }
    }
}

/// Binds the control socket (0600) and accepts connections on a thread, one thread per connection.
fn listen(
    socket: &Path,
    handler: Handler,
    events: tokio::sync::mpsc::UnboundedSender<u64>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let listener = bind_private(socket)?;
    let live = Arc::new(AtomicUsize::new(0));
    Ok(std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let _ = conn.set_write_timeout(Some(IDLE));
            if let Err(why) = admit(&conn) {
                tracing::warn!("{why}");
                refuse(&conn, why);
                continue;
            }
            if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                live.fetch_sub(1, Ordering::SeqCst);
                refuse(
                    &conn,
                    format!("the daemon is busy ({MAX_CONNECTIONS} connections open); try again"),
                );
                continue;
            }
            let (handler, events, live) = (handler.clone(), events.clone(), live.clone());
            std::thread::spawn(move || {
                serve_connection(&conn, &handler);
                live.fetch_sub(1, Ordering::SeqCst);
                // A command may have added, paused or removed sessions, or changed the tree.
                let _ = events.send(0);
            });
        }
    }))
}

/// Binds a Unix socket at `socket` that is never reachable with a wider mode than 0600: it is bound
/// under a temporary name, restricted, then renamed into place.
fn bind_private(socket: &Path) -> Result<UnixListener> {
    let temp = socket.with_extension(format!("sock-{}", std::process::id()));
    // We hold the repository lock, so socket files left here are from a process that died.
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp).at(&temp)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)).at(&temp)?;
    std::fs::rename(&temp, socket).at(socket)?;
    Ok(listener)
}

/// Whether the peer may use the socket: the daemon's own user or root.
fn admit(conn: &UnixStream) -> std::result::Result<(), String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let own = nix::unistd::geteuid().as_raw();
    match getsockopt(conn, PeerCredentials) {
        Ok(c) if c.uid() == own || c.uid() == 0 => Ok(()),
        Ok(c) => Err(format!(
            "refused a connection from uid {} (pid {}): the daemon serves only uid {own}",
            c.uid(),
            c.pid()
        )),
        Err(e) => Err(format!("refused a connection whose peer is unknown: {e}")),
    }
}

/// Answers a connection that will not be served, and closes it.
fn refuse(conn: &UnixStream, why: String) {
    let resp = proto::Response {
        exit: 2,
        pid: std::process::id(),
        error: Some(why),
    };
    let _ = proto::reply(conn, &resp);
}

/// A future that completes when the client at the other end of `conn` closes it.
fn hangup(conn: &UnixStream) -> Hangup {
    let watch = conn.try_clone();
    Box::pin(async move {
        let Ok(watch) = watch else {
            return std::future::pending().await;
        };
        let stream = match watch
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(watch))
        {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        let mut buf = [0u8; 256];
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut buf) {
                Ok(0) => return,
                // The client sends nothing after its request; bytes are ignored.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
}

fn serve_connection(conn: &UnixStream, handler: &Handler) {
    let pid = std::process::id();
    let _ = conn.set_read_timeout(Some(IDLE));
    let resp = match proto::recv(conn) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            tracing::debug!("a connection sent no request within {IDLE:?}; closed");
            return;
        }
        Err(e) => proto::Response {
            exit: 2,
            pid,
            error: Some(format!("malformed request: {e}")),
        },
        Ok((req, _)) if req.v != proto::VERSION => proto::Response {
            exit: 2,
            pid,
            error: Some(format!(
                "protocol version {} is not {}; use the same noisefs version as the daemon",
                req.v,
                proto::VERSION
            )),
        },
        Ok((req, _)) if req.op == "ping" => proto::Response {
            exit: 0,
            pid,
            error: None,
        },
        Ok((req, fds)) if req.op == "run" && fds.len() == 3 => {
            let _ = conn.set_read_timeout(None);
            let exit = handler(req, fds, hangup(conn));
            // The hang-up watch made the socket non-blocking; the answer is written blocking.
            let _ = conn.set_nonblocking(false);
            proto::Response {
                exit,
                pid,
                error: None,
            }
        }
        Ok((req, fds)) => proto::Response {
            exit: 2,
            pid,
            error: Some(format!(
                "unknown request {:?} with {} descriptors",
                req.op,
                fds.len()
            )),
        },
    };
    if let Err(e) = proto::reply(conn, &resp) {
        tracing::debug!(error = %e, "client went away before the answer");
    }
}
