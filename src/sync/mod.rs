//! Folder sync: sessions that keep a local folder and a tree folder equal in both directions. A pass
//! scans both sides, plans against the state of the last sync (three-way, so deletions and renames
//! propagate both ways and concurrent edits become conflicts that keep both versions), and queues the
//! steps; the engine executes them, each step committing its effect on the sync state together with its
//! removal from the queue. Sessions and that state live in LMDB (`sync_sessions`, `sync_base`).

pub mod exec;
pub mod plan;
pub mod scan;
pub mod sig;
pub mod versions;

pub use exec::execute;
pub use plan::{Action, Base, Step};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use heed::byteorder::BE;
use heed::types::{Bytes, U64};
use heed::Database;
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::engine::Engine;
use crate::jobs::{Job, JobContext};
use crate::queue::{Item, Queue};
use crate::state::State;
use crate::tree::{self, Tree};
use crate::{Error, Result};

/// The queue kind of sync steps.
pub const SYNC: &str = "sync";

/// Runs queued sync steps (see [`exec`]).
pub struct SyncJob;

#[async_trait::async_trait]
impl Job for SyncJob {
    fn kind(&self) -> &'static str {
        SYNC
    }

    async fn run(&self, cx: &JobContext, item: &Item) -> Result<()> {
        execute(cx, item).await
    }
}
/// Passes a convergence runs at most (a conflict takes two: rename, then upload the copy).
const MAX_PASSES: usize = 5;
/// Skipped paths (and conflicts) kept per session for `status`.
const MAX_SKIPPED: usize = 50;

/// `[sync]` in `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncConfig {
    /// A pass that would delete more than this share (percent) of a session's synced files from the
    /// tree waits for `noisefs sync resume --confirm` (as does one that finds the local folder emptied).
    pub max_delete_percent: u32,
    /// Days a file that sync replaced or deleted stays restorable (`noisefs sync restore`); 0 keeps none.
    pub keep_versions_days: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            max_delete_percent: 50,
            keep_versions_days: 30,
        }
    }
}

/// A sync session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: u64,
    pub local: PathBuf,
    /// The tree folder, as an absolute tree path.
    pub tree: String,
    pub paused: bool,
    pub created: i64,
    /// When a pass last found nothing left to do (ms since the epoch).
    pub last_sync: Option<i64>,
    /// Why the last pass failed, if it did.
    pub last_error: Option<String>,
    /// Paths the last pass skipped, with the reason.
    #[serde(default)]
    pub skipped: Vec<(String, String)>,
    /// Entries in sync at the end of the last pass.
    #[serde(default)]
    pub entries: u64,
    /// Conflicts found so far.
    #[serde(default)]
    pub conflicts: u64,
    /// The latest conflicts (at most 50): the path, and where its local version was kept.
    #[serde(default)]
    pub conflicted: Vec<(String, String)>,
    /// Why the session waits for the user before deleting (see [`SyncConfig`]), if it does.
    #[serde(default)]
    pub held: Option<String>,
    /// The user confirmed the held deletions: the next pass applies them.
    #[serde(default)]
    pub confirmed: bool,
}

/// The sync databases.
#[derive(Clone)]
pub struct Syncs {
    env: heed::Env,
    sessions: Database<U64<BE>, Bytes>,
    base: Database<Bytes, Bytes>,
}

fn base_key(id: u64, rel: &str) -> Vec<u8> {
    let mut k = id.to_be_bytes().to_vec();
    k.extend_from_slice(rel.as_bytes());
    k
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    ciborium::from_reader(bytes).map_err(|e| Error::Config {
        path: format!("state/{what}").into(),
        reason: format!("unreadable record: {e}"),
    })
}

impl Syncs {
    /// Opens the sync databases in `state`.
    pub fn open(state: &State) -> Result<Syncs> {
        Ok(Syncs {
            env: state.env().clone(),
            sessions: state.database("sync_sessions")?,
            base: state.database("sync_base")?,
        })
    }

    /// Every session.
    pub fn list(&self) -> Result<Vec<Session>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.sessions.iter(&rtxn)? {
            let (_, v) = item?;
            out.push(decode("sync_sessions", v)?);
        }
        Ok(out)
    }

    /// Session `id`.
    pub fn get(&self, id: u64) -> Result<Session> {
        let rtxn = self.env.read_txn()?;
        match self.sessions.get(&rtxn, &id)? {
            Some(v) => decode("sync_sessions", v),
            None => Err(Error::posix(
                libc::ENOENT,
                format!("no sync session {id} (see `noisefs sync list`)"),
            )),
        }
    }

    /// Stores a session record.
    pub fn put(&self, s: &Session) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.sessions
            .put(&mut wtxn, &s.id, &crate::descriptor::node::encode(s))?;
        wtxn.commit()?;
        Ok(())
    }

    /// Changes session `id` with `f`.
    pub fn update(&self, id: u64, f: impl FnOnce(&mut Session)) -> Result<Session> {
        let mut s = self.get(id)?;
        f(&mut s);
        self.put(&s)?;
        Ok(s)
    }

    /// Adds a session between `local` (an existing folder) and tree folder `tree_path` (created if
    /// missing). Returns it.
    pub fn add(&self, t: &Tree, local: &Path, tree_path: &str) -> Result<Session> {
        let meta = std::fs::metadata(local).map_err(|e| Error::io(local, e))?;
        if !meta.is_dir() {
            return Err(Error::posix(
                libc::ENOTDIR,
                format!("{} is not a folder", local.display()),
            ));
        }
        let local = std::fs::canonicalize(local).map_err(|e| Error::io(local, e))?;
        let tree_path = tree::normalize_path(tree_path);
        mkdir_p(t, &tree_path)?;
        for s in self.list()? {
            if s.local == local && s.tree == tree_path {
                return Err(Error::posix(
                    libc::EEXIST,
                    format!(
                        "session {} already syncs {} with {}",
                        s.id,
                        local.display(),
                        tree_path
                    ),
                ));
            }
        }
        let id = self.list()?.iter().map(|s| s.id).max().unwrap_or(0) + 1;
        let s = Session {
            id,
            local,
            tree: tree_path,
            paused: false,
            created: now_ms(),
            last_sync: None,
            last_error: None,
            skipped: Vec::new(),
            entries: 0,
            conflicts: 0,
            conflicted: Vec::new(),
            held: None,
            confirmed: false,
        };
        self.put(&s)?;
        Ok(s)
    }

    /// Removes session `id` and its sync state (the folders are left as they are).
    pub fn remove(&self, id: u64) -> Result<()> {
        self.get(id)?;
        let mut wtxn = self.env.write_txn()?;
        self.sessions.delete(&mut wtxn, &id)?;
        let keys: Vec<Vec<u8>> = self
            .base
            .prefix_iter(&wtxn, &id.to_be_bytes())?
            .map(|r| r.map(|(k, _)| k.to_vec()))
            .collect::<std::result::Result<_, _>>()?;
        for k in keys {
            self.base.delete(&mut wtxn, &k)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// The state of session `id` at its last sync.
    pub fn base(&self, id: u64) -> Result<BTreeMap<String, Base>> {
        let rtxn = self.env.read_txn()?;
        let mut out = BTreeMap::new();
        for item in self.base.prefix_iter(&rtxn, &id.to_be_bytes())? {
            let (k, v) = item?;
            out.insert(
                String::from_utf8_lossy(&k[8..]).into_owned(),
                decode("sync_base", v)?,
            );
        }
        Ok(out)
    }

    /// The state of `rel` in session `id` at its last sync, if it was synced.
    pub fn base_of(&self, id: u64, rel: &str) -> Result<Option<Base>> {
        let rtxn = self.env.read_txn()?;
        match self.base.get(&rtxn, &base_key(id, rel))? {
            Some(v) => Ok(Some(decode("sync_base", v)?)),
            None => Ok(None),
        }
    }

    /// Sets (or with `None` forgets) the synced state of `rel` and removes queue item `seq`, together.
    pub fn settle(&self, queue: &Queue, id: u64, rel: &str, base: Option<&Base>, seq: u64) -> Result<()> {
        self.settle_all(queue, id, &[(rel, base)], seq)
    }

    /// [`Syncs::settle`] for several paths (a move settles where it went and where it came from).
    pub fn settle_all(
        &self,
        queue: &Queue,
        id: u64,
        paths: &[(&str, Option<&Base>)],
        seq: u64,
    ) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for (rel, base) in paths {
            let key = base_key(id, rel);
            match base {
                Some(b) => self
                    .base
                    .put(&mut wtxn, &key, &crate::descriptor::node::encode(b))?,
                None => {
                    self.base.delete(&mut wtxn, &key)?;
                }
            }
        }
        queue.complete_in(&mut wtxn, seq)?;
        wtxn.commit()?;
        Ok(())
    }
}

impl Syncs {
    /// The tree path that local path `p` (absolute; it may no longer exist, and is taken as written
    /// if its folder does not either) has in the session whose folder holds it.
    pub fn tree_path_of(&self, p: &Path) -> Result<String> {
        let canon = match (p.parent(), p.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(dir).map(|d| d.join(name)),
            _ => std::fs::canonicalize(p),
        }
        .unwrap_or_else(|_| p.to_path_buf());
        for s in self.list()? {
            if let Ok(rel) = canon.strip_prefix(&s.local) {
                let rel = rel.to_string_lossy();
                if !rel.is_empty() {
                    return Ok(format!("{}/{rel}", s.tree.trim_end_matches('/')));
                }
            }
        }
        Err(Error::posix(
            libc::ENOENT,
            format!("{} is in no synced folder (see `noisefs sync list`)", p.display()),
        ))
    }
}

/// Puts back the newest version sync kept of tree path `path` (the newest at or before `at`, ms since
/// the epoch); what the path holds now is kept as a version in turn. Returns the version restored.
/// The sessions syncing the path bring it down on their next pass.
pub fn restore(tree: &Tree, path: &str, at: Option<i64>) -> Result<versions::Version> {
    let path = tree::normalize_path(path);
    let vs = versions::Versions::open(tree.repo().state())?;
    let v = vs
        .list(&path)?
        .into_iter()
        .find(|v| at.is_none_or(|at| v.time <= at))
        .ok_or_else(|| {
            Error::posix(
                libc::ENOENT,
                format!(
                    "no kept version of {path}{} (see `noisefs sync versions {path}`)",
                    match at {
                        Some(_) => " from that time or before",
                        None => "",
                    }
                ),
            )
        })?;
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
    let parent = mkdir_p(tree, dir)?;
    if let Ok(cur) = tree.lookup(parent, name) {
        let rec = tree.inode(cur.ino)?;
        if let Some(content) = rec.content().filter(|c| *c != v.content) {
            vs.keep(&versions::Version {
                path: path.clone(),
                time: now_ms(),
                why: versions::Why::Replaced,
                content,
                size: rec.size,
                mtime: rec.mtime,
                mode: rec.mode & sig::PERM,
            })?;
        }
    }
    tree.put_content(parent, name, &v.content, v.size, v.mtime, v.mode, None)?;
    Ok(v)
}

/// Creates tree folder `path` and its parents as needed; returns its inode.
pub fn mkdir_p(t: &Tree, path: &str) -> Result<u64> {
    let mut ino = tree::ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = match t.lookup(ino, part) {
            Ok(a) if a.kind == tree::Kind::Dir => a.ino,
            Ok(_) => {
                return Err(Error::posix(
                    libc::ENOTDIR,
                    format!("tree path {path}: {part} is not a folder"),
                ))
            }
            Err(e) if e.errno() == libc::ENOENT => {
                let parent = t.getattr(ino)?;
                t.mkdir(ino, part, 0o755, parent.uid, parent.gid)?.ino
            }
            Err(e) => return Err(e),
        };
    }
    Ok(ino)
}

/// The payload of a queued sync step.
#[derive(Debug, Serialize, Deserialize)]
pub struct Queued {
    pub session: u64,
    pub step: Step,
}

/// What one pass found.
#[derive(Debug, Default, Serialize)]
pub struct Pass {
    pub planned: usize,
    pub skipped: Vec<(String, String)>,
    pub entries: usize,
}

/// Scans both sides of session `id`, plans, and queues the steps. A paused session plans nothing.
pub fn pass(cx: &JobContext, id: u64) -> Result<Pass> {
    let syncs = Syncs::open(cx.repo.state())?;
    let s = syncs.get(id)?;
    if s.paused {
        return Ok(Pass::default());
    }
    let t = &cx.tree;
    let root = t.resolve(&s.tree)?;
    let local = scan::scan_local(&s.local)?;
    let rules = scan::ignore_rules(&s.local);
    let remote = scan::scan_tree(t, root, &rules)?;
    let base = syncs.base(id)?;
    let steps = plan::plan(&local.entries, &remote.entries, &base);
    let max = cx.repo.config().sync.max_delete_percent;
    let guard = mass_delete(&steps, &base, local.entries.is_empty(), max);
    match guard {
        Some(why) if !s.confirmed => {
            let why =
                format!("{why}; nothing was deleted (`noisefs sync resume --confirm {id}` deletes them)");
            syncs.update(id, |s| s.held = Some(why.clone()))?;
            return Err(Error::posix(libc::ECANCELED, format!("held: {why}")));
        }
        _ if s.held.is_some() || s.confirmed => {
            syncs.update(id, |s| {
                s.held = None;
                s.confirmed = false;
            })?;
        }
        _ => {}
    }
    let mut wtxn = syncs.env.write_txn()?;
    let mut offered = std::collections::HashSet::new();
    for step in &steps {
        let key = format!("{SYNC}/{id}/{}", step.rel);
        let payload = crate::descriptor::node::encode(&Queued {
            session: id,
            step: step.clone(),
        });
        cx.queue.offer_in(&mut wtxn, SYNC, &key, &payload)?;
        offered.insert(key);
    }
    // A step still queued for a path this pass plans nothing for is stale (a failed attempt waiting
    // for its retry, say, whose path has since come to agree): it goes, so that it is not reported.
    for (key, seq) in cx.queue.keys_in(&wtxn, &format!("{SYNC}/{id}/"))? {
        if !offered.contains(&key) {
            cx.queue.complete_in(&mut wtxn, seq)?;
        }
    }
    wtxn.commit()?;
    Ok(Pass {
        planned: steps.len(),
        // What either side left out (a special file in the tree is skipped as a local one is).
        skipped: local.skipped.into_iter().chain(remote.skipped).collect(),
        entries: local.entries.len().max(remote.entries.len()),
    })
}

/// Why the deletions `steps` plans need the user's confirmation, if they do. Guarded are the files a
/// pass would delete from the tree because they vanished locally (what an unmounted disk or an
/// `rm -rf` in the wrong folder looks like): two or more, and either the local folder is empty while
/// the base is not, or they are more than `max_percent` of the synced files. Deletions coming down
/// from the tree were made there on purpose (through the mount or the CLI) or passed this guard in
/// the session they came from.
fn mass_delete(
    steps: &[Step],
    base: &BTreeMap<String, Base>,
    local_empty: bool,
    max_percent: u32,
) -> Option<String> {
    let is_dir = |sig: &str| sig.starts_with("dir");
    let deletes = steps
        .iter()
        .filter(|s| s.action == Action::DeleteTree && !is_dir(&s.tree))
        .count();
    let files = base.values().filter(|b| !is_dir(&b.tree)).count();
    if deletes < 2 {
        return None;
    }
    if local_empty {
        return Some(format!(
            "the local folder is empty: syncing would delete {deletes} files from the tree and every other copy"
        ));
    }
    (deletes as u64 * 100 > u64::from(max_percent) * files as u64).then(|| {
        format!(
            "this pass would delete {deletes} of {files} synced files from the tree (more than {max_percent}%, `[sync] max_delete_percent`)"
        )
    })
}

/// Syncs session `id` until both sides agree (or [`MAX_PASSES`] passes ran), executing the steps now.
/// Records the outcome in the session. Returns the steps executed.
pub async fn converge(engine: &Engine, id: u64) -> Result<usize> {
    let syncs = Syncs::open(engine.repo().state())?;
    let mut total = 0;
    let mut result = Ok(());
    let mut last = Pass::default();
    for _ in 0..MAX_PASSES {
        match pass(engine.context(), id) {
            Ok(p) => last = p,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        if last.planned == 0 {
            break;
        }
        total += last.planned;
        match engine.run_ready(true, &|| false).await {
            // Everything planned is waiting to retry a failure: passes would find the same.
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let failing = engine
        .queue()
        .list()?
        .into_iter()
        .filter(|i| i.kind == SYNC && i.key.starts_with(&format!("{SYNC}/{id}/")))
        .find_map(|i| {
            i.last_error
                .map(|e| format!("{}: {e}", i.key.splitn(3, '/').nth(2).unwrap_or("")))
        });
    let done = last.planned == 0 && failing.is_none();
    syncs.update(id, |s| {
        s.last_error = match &result {
            Err(e) => Some(e.to_string()),
            Ok(()) => failing.clone(),
        };
        if done && result.is_ok() && !s.paused {
            s.last_sync = Some(now_ms());
        }
        s.skipped = last.skipped.iter().take(MAX_SKIPPED).cloned().collect();
        s.entries = last.entries as u64;
    })?;
    result.map(|()| total)
}

/// Rounds [`converge_all`] runs at most.
const MAX_ROUNDS: usize = 5;

/// Whether tree folders `a` and `b` (normalized absolute paths) overlap: one is the other or holds it.
fn overlap(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        let outer = outer.trim_end_matches('/');
        inner == outer || inner.starts_with(&format!("{outer}/"))
    };
    within(a, b) || within(b, a)
}

/// Converges sessions `ids`, then again every session whose tree folder overlaps one whose pass
/// changed something, until a round changes nothing (at most [`MAX_ROUNDS`]): two folders synced
/// through one tree folder agree after one call. Returns each session's total steps, or its error.
pub async fn converge_all(engine: &Engine, ids: &[u64]) -> Result<Vec<(u64, Result<usize>)>> {
    let syncs = Syncs::open(engine.repo().state())?;
    let days = i64::from(engine.repo().config().sync.keep_versions_days);
    let pruned = versions::Versions::open(engine.repo().state())?.prune(now_ms() - days * 86_400_000)?;
    if pruned > 0 {
        tracing::info!(pruned, "sync: versions past their retention forgotten");
    }
    let mut results: BTreeMap<u64, Result<usize>> = BTreeMap::new();
    let mut todo: Vec<u64> = ids.to_vec();
    for _ in 0..MAX_ROUNDS {
        if todo.is_empty() {
            break;
        }
        let mut changed: Vec<(u64, String)> = Vec::new();
        for id in std::mem::take(&mut todo) {
            let r = converge(engine, id).await;
            if matches!(r, Ok(n) if n > 0) {
                changed.push((id, syncs.get(id)?.tree));
            }
            let total = match (results.remove(&id), r) {
                (Some(Ok(a)), Ok(b)) => Ok(a + b),
                (_, r) => r,
            };
            results.insert(id, total);
        }
        todo = syncs
            .list()?
            .into_iter()
            .filter(|s| !s.paused)
            .filter(|s| changed.iter().any(|(id, t)| *id != s.id && overlap(t, &s.tree)))
            .map(|s| s.id)
            .collect();
    }
    Ok(results.into_iter().collect())
}

#[cfg(test)]
mod tests;
