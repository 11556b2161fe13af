//! The commands over the mutable namespace: `tree`, `sync`, `share`, `receive` and `status`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use super::args::{SyncCommand, TreeCommand};
use super::commands::new_password;
use super::io::Io;
use super::progress::{bytes_bar, PeerTicker};
use crate::clock::now_ms;
use crate::engine::Engine;
use crate::fmt::{format_time, human_bytes, mode_string};
use crate::sync::{self, Syncs};
use crate::transfer::Opened;
use crate::tree::{copy, Kind, RenameMode, ROOT};

/// `noisefs tree …`.
pub async fn tree(engine: &Arc<Engine>, io: &Io, cmd: TreeCommand) -> anyhow::Result<u8> {
    let t = engine.tree();
    let mut out = io.out.clone();
    match cmd {
        TreeCommand::Ls { path, out: j } => {
            let ino = t.resolve(&path)?;
            let attr = t.getattr(ino)?;
            let rows: Vec<(String, crate::tree::Attr, Option<String>)> = if attr.kind == Kind::Dir {
                t.readdir(ino)?
                    .into_iter()
                    .map(|e| {
                        let a = t.getattr(e.ino)?;
                        let target = if a.kind == Kind::Symlink {
                            t.readlink(e.ino).ok()
                        } else {
                            None
                        };
                        Ok((e.name, a, target))
                    })
                    .collect::<crate::Result<_>>()?
            } else {
                let name = crate::tree::normalize_path(&path)
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let target = if attr.kind == Kind::Symlink {
                    t.readlink(ino).ok()
                } else {
                    None
                };
                vec![(name, attr, target)]
            };
            if j.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(name, a, target)| {
                        json!({"name": name, "kind": a.kind, "size": a.size, "mode": crate::fmt::json_mode(a.mode), "mtime": a.mtime.div_euclid(1_000_000_000), "mtime_ns": a.mtime,
                               "dirty": a.dirty, "ino": a.ino, "target": target})
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                for (name, a, target) in rows {
                    let k = match a.kind {
                        Kind::Dir => 'd',
                        Kind::Symlink => 'l',
                        Kind::File => '-',
                        Kind::Fifo => 'p',
                        Kind::Socket => 's',
                        Kind::CharDevice => 'c',
                        Kind::BlockDevice => 'b',
                    };
                    let name = crate::fmt::printable(&name);
                    let suffix = match (&target, a.kind) {
                        (Some(t), _) => format!(" -> {}", crate::fmt::printable(t)),
                        (None, Kind::Dir) => "/".into(),
                        _ => String::new(),
                    };
                    let flag = if a.dirty { " (not sealed yet)" } else { "" };
                    writeln!(
                        out,
                        "{k}{} {:>10} {} {name}{suffix}{flag}",
                        mode_string(a.mode),
                        a.size,
                        format_time(a.mtime.div_euclid(1_000_000_000))
                    )?;
                }
            }
        }
        TreeCommand::Mkdir { path, parents } => {
            if parents {
                sync::mkdir_p(t, &path)?;
            } else {
                let (parent, name) = t.resolve_parent(&path)?;
                let owner = t.getattr(parent)?;
                t.mkdir(parent, name, 0o755, owner.uid, owner.gid)
                    .with_context(|| format!("cannot create tree folder {path}"))?;
            }
        }
        TreeCommand::Rm { path, recursive } => {
            let (parent, name) = t.resolve_parent(&path)?;
            let attr = t
                .lookup(parent, name)
                .with_context(|| format!("cannot remove {path}"))?;
            if attr.kind == Kind::Dir && recursive {
                t.remove_all(parent, name)
                    .with_context(|| format!("cannot remove {path}"))?;
            } else if attr.kind == Kind::Dir {
                t.rmdir(parent, name)
                    .with_context(|| format!("cannot remove {path} (use -r for a folder with content)"))?;
            } else {
                t.unlink(parent, name)?;
            }
        }
        TreeCommand::Mv { from, to } => {
            let (sp, sn) = t.resolve_parent(&from)?;
            let (dp, dn) = match t.resolve(&to) {
                Ok(ino) if t.getattr(ino)?.kind == Kind::Dir => (ino, sn),
                // A trailing slash names a folder: it must exist (as mv(1) says).
                _ if to.ends_with('/') && !to.trim_end_matches('/').is_empty() => {
                    anyhow::bail!("cannot move {from} to {to}: no folder {to} in the tree (create it with `noisefs tree mkdir`)")
                }
                _ => t.resolve_parent(&to)?,
            };
            t.rename(sp, sn, dp, dn, RenameMode::NoReplace)
                .with_context(|| format!("cannot move {from} to {to}"))?;
        }
        TreeCommand::Import { local, path } => {
            let local = io.path(&local);
            let hold = engine.repo().hold().await;
            let r = copy::import(t, &hold, engine.sealer(), &local, &path)
                .await
                .with_context(|| format!("cannot import {}", local.display()))?;
            print_skipped(io, "skipped", &r.skipped)?;
            writeln!(
                out,
                "imported {} files, {} folders ({}) to {}",
                r.files,
                r.folders,
                human_bytes(r.bytes),
                r.target
            )?;
        }
        TreeCommand::Export { path, local, force } => {
            let local = io.path(&local);
            let r = copy::export(t, &path, &local, force)
                .await
                .with_context(|| format!("cannot export {path}"))?;
            print_skipped(io, "skipped", &r.skipped)?;
            writeln!(
                out,
                "exported {} files, {} folders ({}) to {}",
                r.files,
                r.folders,
                human_bytes(r.bytes),
                r.target
            )?;
        }
    }
    Ok(0)
}

/// Names on standard error what an import, export or share left out, and why (`<verb> <path>: <why>`).
fn print_skipped(io: &Io, verb: &str, skipped: &[(String, String)]) -> anyhow::Result<()> {
    for (p, why) in skipped {
        writeln!(io.err.clone(), "{verb} {}: {why}", crate::fmt::printable(p))?;
    }
    Ok(())
}

/// `noisefs sync …`.
pub async fn sync(engine: &Arc<Engine>, io: &Io, cmd: SyncCommand, quiet: bool) -> anyhow::Result<u8> {
    let syncs = Syncs::open(engine.repo().state())?;
    let mut out = io.out.clone();
    match cmd {
        SyncCommand::Add { local, path } => {
            let local = io.path(&local);
            let s = syncs
                .add(engine.tree(), &local, &path)
                .with_context(|| format!("cannot sync {} with {path}", local.display()))?;
            writeln!(out, "session {}: {} <-> {}", s.id, s.local.display(), s.tree)?;
            if io.daemon.is_none() && !quiet {
                writeln!(
                    io.err.clone(),
                    "no daemon runs: `noisefs sync run --once` syncs now, `noisefs daemon` keeps it in sync"
                )?;
            }
        }
        SyncCommand::List { out: j } => {
            let list = syncs.list()?;
            if j.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&list.iter().map(session_json).collect::<Vec<_>>())?
                )?;
            } else {
                for s in list {
                    writeln!(
                        out,
                        "{:>3}  {}  {} <-> {}",
                        s.id,
                        state_of(&s),
                        s.local.display(),
                        s.tree
                    )?;
                }
            }
        }
        SyncCommand::Status { id, out: j } => {
            let list: Vec<sync::Session> = match id {
                Some(id) => vec![syncs.get(id)?],
                None => syncs.list()?,
            };
            let queue = engine.queue().list()?;
            if j.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|s| {
                        let q: Vec<_> = queue.iter().filter(|i| i.key.starts_with(&format!("{}/{}/", sync::SYNC, s.id))).collect();
                        json!({"session": session_json(s), "state": state_of(s), "queued": q.len(),
                               "failing": q.iter().filter(|i| i.last_error.is_some()).map(|i| json!({"key": i.key, "attempts": i.attempts, "error": i.last_error})).collect::<Vec<_>>()})
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                for s in &list {
                    session_text(&mut out, s, &queue)?;
                }
            }
        }
        SyncCommand::Pause { id } => {
            syncs.update(id, |s| s.paused = true)?;
            writeln!(out, "session {id} paused")?;
        }
        SyncCommand::Resume { id, confirm } => {
            let before = syncs.get(id)?;
            if confirm && before.held.is_none() {
                anyhow::bail!("session {id} holds no deletions (see `noisefs sync status {id}`)");
            }
            syncs.update(id, |s| {
                s.paused = false;
                s.confirmed |= confirm;
            })?;
            engine.wake.notify_one();
            if confirm {
                writeln!(
                    out,
                    "session {id} resumed; its next pass applies the held deletions"
                )?;
            } else {
                writeln!(out, "session {id} resumed")?;
            }
        }
        SyncCommand::Remove { id } => {
            syncs.remove(id)?;
            writeln!(out, "session {id} removed; both folders are left as they are")?;
        }
        SyncCommand::Versions { path, out: j } => {
            let tree_path = versions_path(&syncs, io, &path)?;
            let list = sync::versions::Versions::open(engine.repo().state())?.list(&tree_path)?;
            if j.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&list.iter().map(version_json).collect::<Vec<_>>())?
                )?;
            } else if list.is_empty() {
                writeln!(out, "no kept versions of {tree_path}")?;
            } else {
                for v in &list {
                    writeln!(
                        out,
                        "{}  {:<8}  {:>10}  {}",
                        format_time_ms(v.time),
                        format!("{:?}", v.why).to_lowercase(),
                        human_bytes(v.size),
                        mode_string(v.mode)
                    )?;
                }
            }
        }
        SyncCommand::Restore { path, at } => {
            let tree_path = versions_path(&syncs, io, &path)?;
            let at = at.map(|a| parse_at(&a)).transpose()?;
            let v = sync::restore(engine.tree(), &tree_path, at)
                .with_context(|| format!("cannot restore {path}"))?;
            let ids: Vec<u64> = syncs.list()?.iter().filter(|s| !s.paused).map(|s| s.id).collect();
            for (id, r) in sync::converge_all(engine, &ids).await? {
                if let Err(e) = r {
                    writeln!(io.err.clone(), "session {id}: {e}")?;
                }
            }
            writeln!(
                out,
                "restored {tree_path} to its version of {} ({})",
                format_time_ms(v.time),
                human_bytes(v.size)
            )?;
        }
        SyncCommand::Run { id, once } => {
            if !once {
                if let Some(d) = &io.daemon {
                    writeln!(
                        out,
                        "the daemon (pid {}) already syncs every session as changes happen",
                        d.pid
                    )?;
                    return Ok(0);
                }
                let stop = crate::node::shutdown_signal()?;
                crate::node::Node::with_engine(engine.clone())
                    .run_without_socket(stop)
                    .await?;
                return Ok(0);
            }
            let ids: Vec<u64> = match id {
                Some(id) => vec![syncs.get(id)?.id],
                None => syncs.list()?.iter().map(|s| s.id).collect(),
            };
            let mut failed = false;
            for (id, steps) in sync::converge_all(engine, &ids).await? {
                let s = syncs.get(id)?;
                match (steps, &s.last_error) {
                    (Ok(n), None) => writeln!(out, "session {id}: in sync ({n} steps)")?,
                    (Ok(_), Some(e)) | (Err(_), Some(e)) => {
                        failed = true;
                        writeln!(io.err.clone(), "session {id}: {e}")?;
                    }
                    (Err(e), None) => {
                        failed = true;
                        writeln!(io.err.clone(), "session {id}: {e}")?;
                    }
                }
            }
            return Ok(u8::from(failed));
        }
    }
    Ok(0)
}

/// The tree path `arg` names: a path in a synced folder, else (if absolute) a tree path.
fn versions_path(syncs: &Syncs, io: &Io, arg: &str) -> anyhow::Result<String> {
    match syncs.tree_path_of(&io.path(Path::new(arg))) {
        Ok(p) => Ok(p),
        Err(_) if arg.starts_with('/') => Ok(crate::tree::normalize_path(arg)),
        Err(e) => Err(e.into()),
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, from ms since the epoch.
fn format_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    format!(
        "{}:{:02}.{:03}",
        format_time(secs),
        secs.rem_euclid(60),
        ms.rem_euclid(1000)
    )
}

/// The end (inclusive, ms since the epoch) of the moment `--at` names: a time as `format_time_ms`
/// prints it, or what [`crate::fmt::parse_date`] reads (then to the end of that second).
fn parse_at(s: &str) -> anyhow::Result<i64> {
    let (head, frac) = match s.trim().rsplit_once('.') {
        Some((h, f)) if !f.is_empty() && f.len() <= 3 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (h, Some(f))
        }
        _ => (s, None),
    };
    let secs = crate::fmt::parse_date(head, crate::clock::now_secs()).map_err(anyhow::Error::msg)?;
    let ms = match frac {
        Some(f) => format!("{f:0<3}").parse::<i64>()?,
        None => 999,
    };
    Ok(secs * 1000 + ms)
}

/// A sync session in the JSON vocabulary (docs/cli.md): times in seconds, with `created_ms` and
/// `last_sync_ms` for the exact ones.
fn session_json(s: &sync::Session) -> serde_json::Value {
    let mut v = json!(s);
    v["created"] = json!(s.created.div_euclid(1000));
    v["created_ms"] = json!(s.created);
    v["last_sync"] = json!(s.last_sync.map(|ms| ms.div_euclid(1000)));
    v["last_sync_ms"] = json!(s.last_sync);
    v
}

/// A kept version in the JSON vocabulary: `time` in seconds (`time_ms` is what `--at` takes to the
/// millisecond), `mtime` in seconds (`mtime_ns` exact), `mode` in octal.
fn version_json(v: &sync::versions::Version) -> serde_json::Value {
    json!({
        "path": v.path,
        "time": v.time.div_euclid(1000),
        "time_ms": v.time,
        "why": v.why,
        "size": v.size,
        "mtime": v.mtime.div_euclid(1_000_000_000),
        "mtime_ns": v.mtime,
        "mode": crate::fmt::json_mode(v.mode),
    })
}

fn state_of(s: &sync::Session) -> &'static str {
    match (s.paused, &s.last_error, s.last_sync) {
        (true, _, _) => "paused",
        _ if s.held.is_some() => "held",
        (_, Some(_), _) => "error",
        (_, None, None) => "new",
        (_, None, Some(_)) => "idle",
    }
}

fn session_text(out: &mut impl Write, s: &sync::Session, queue: &[crate::queue::Item]) -> anyhow::Result<()> {
    let prefix = format!("{}/{}/", sync::SYNC, s.id);
    let queued: Vec<_> = queue.iter().filter(|i| i.key.starts_with(&prefix)).collect();
    writeln!(out, "session {}: {} <-> {}", s.id, s.local.display(), s.tree)?;
    writeln!(out, "  state:      {}", state_of(s))?;
    let last = s
        .last_sync
        .map(|t| format_time(t / 1000))
        .unwrap_or_else(|| "never".into());
    writeln!(out, "  last sync:  {last}")?;
    writeln!(
        out,
        "  entries:    {}   conflicts: {}   queued steps: {}",
        s.entries,
        s.conflicts,
        queued.len()
    )?;
    match (&s.held, &s.last_error) {
        (Some(why), _) => writeln!(out, "  held:       {why}")?,
        (None, Some(e)) => writeln!(out, "  error:      {e}")?,
        (None, None) => {}
    }
    for i in queued.iter().filter(|i| i.last_error.is_some()) {
        writeln!(
            out,
            "  failing:    {} (attempt {}): {}",
            i.key.trim_start_matches(&prefix),
            i.attempts,
            i.last_error.as_deref().unwrap_or_default()
        )?;
    }
    for (p, why) in &s.skipped {
        writeln!(out, "  skipped:    {p}: {why}")?;
    }
    for (p, kept) in &s.conflicted {
        writeln!(out, "  conflict:   {p} (the local version kept as {kept})")?;
    }
    Ok(())
}

/// `noisefs share`.
pub async fn share(
    engine: &Arc<Engine>,
    io: &Io,
    path: &str,
    password: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let password = if password { Some(new_password(io)?) } else { None };
    let hold = engine.repo().hold().await;
    let (link, mut report) = crate::share::share(engine, &hold, path)
        .await
        .with_context(|| format!("cannot share {path}"))?;
    if let Some(pw) = password {
        let wrapped = engine.sealer().protect(&hold, &link, &pw).await?;
        report.target = wrapped.to_string();
    }
    drop(hold);
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_skipped(io, "left out", &report.skipped)?;
        writeln!(out, "{}", report.target)?;
    }
    Ok(0)
}

/// What `noisefs receive` was given besides the link.
pub struct ReceiveArgs {
    pub path: Option<String>,
    pub now: bool,
    pub max_size: Option<u64>,
    pub json: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// `noisefs receive`.
pub async fn receive(engine: &Arc<Engine>, io: &Io, opened: Opened, args: ReceiveArgs) -> anyhow::Result<u8> {
    let hold = engine.repo().hold().await;
    // With --now the bar moves as content is read (from peers when the repository lacks it).
    let (bar, progress) = bytes_bar(0, args.quiet, "receiving");
    let ticker = PeerTicker::start(&bar, engine.network(), "receiving");
    let opts = crate::share::ReceiveOptions {
        now: args.now,
        max_size: args.max_size,
        progress,
    };
    let report = crate::share::receive(engine, &hold, opened, args.path.as_deref(), &opts).await;
    drop(ticker);
    bar.finish_and_clear();
    let report = report.context("cannot receive")?;
    drop(hold);
    let mut out = io.out.clone();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        writeln!(
            out,
            "received {} files, {} folders ({}) at {}",
            report.files,
            report.folders,
            human_bytes(report.bytes),
            report.target
        )?;
    }
    Ok(0)
}

/// `noisefs status`.
pub async fn status(engine: &Arc<Engine>, io: &Io, json: bool) -> anyhow::Result<u8> {
    let queue = engine.queue().list()?;
    let sessions = Syncs::open(engine.repo().state())?.list()?;
    let breakers = engine.repo().breakers();
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for i in &queue {
        *kinds.entry(i.kind.clone()).or_default() += 1;
    }
    let failing: Vec<_> = queue.iter().filter(|i| i.last_error.is_some()).collect();
    let dirty = engine
        .tree()
        .walk(ROOT)?
        .iter()
        .filter(|(_, _, r)| r.dirty)
        .count();
    let mut out = io.out.clone();
    if json {
        let v = json!({
            "daemon": io.daemon.as_ref().map(|d| json!({"running": true, "pid": d.pid, "started": d.started.div_euclid(1000), "socket": d.socket, "mountpoint": d.mountpoint}))
                .unwrap_or_else(|| json!({"running": false})),
            "repository": engine.repo().root(),
            "queue": {"len": queue.len(), "by_kind": kinds, "items": queue},
            "engine": engine.status(),
            "unsealed_files": dirty,
            "sessions": sessions.iter().map(|s| json!({"session": session_json(s), "state": state_of(s)})).collect::<Vec<_>>(),
            "stores": breakers,
            "network": super::net::status_json(engine).await,
            "announcements": engine.announcements()?.status()?,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    match &io.daemon {
        Some(d) => writeln!(
            out,
            "daemon:     {} (pid {}, up {}s, socket {})",
            match &d.mountpoint {
                Some(m) => format!("the mount on {} owns the repository", m.display()),
                None => "running".into(),
            },
            d.pid,
            (now_ms() - d.started) / 1000,
            d.socket.display()
        )?,
        None => writeln!(
            out,
            "daemon:     not running (commands open the repository themselves)"
        )?,
    }
    writeln!(out, "repository: {}", engine.repo().root().display())?;
    writeln!(out, "network:    {}", super::net::status_line(engine).await)?;
    let a = engine.announcements()?.status()?;
    let refused: Vec<String> = a
        .refused
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    writeln!(
        out,
        "announce:   {} kept, {} subscription(s); refused: {}",
        a.stored,
        a.subscriptions,
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    )?;
    let by_kind: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    writeln!(
        out,
        "queue:      {} operations{}; {} failing; {} files not sealed yet",
        queue.len(),
        if by_kind.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_kind.join(", "))
        },
        failing.len(),
        dirty
    )?;
    let st = engine.status();
    if let Some(r) = &st.running {
        writeln!(out, "running:    {r}")?;
    }
    for i in failing.iter().take(20) {
        let wait = ((i.not_before - now_ms()) / 1000).max(0);
        writeln!(
            out,
            "  {} {}: attempt {}, retry in {wait}s: {}",
            i.kind,
            i.key,
            i.attempts,
            i.last_error.as_deref().unwrap_or_default()
        )?;
    }
    if sessions.is_empty() {
        writeln!(out, "sessions:   none")?;
    }
    for s in &sessions {
        let last = s
            .last_sync
            .map(|t| format_time(t / 1000))
            .unwrap_or_else(|| "never".into());
        writeln!(
            out,
            "session {}:  {} ({} <-> {}), last sync {last}, {} entries, {} conflicts{}",
            s.id,
            state_of(s),
            s.local.display(),
            s.tree,
            s.entries,
            s.conflicts,
            s.last_error
                .as_ref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        )?;
    }
    for b in breakers {
        writeln!(
            out,
            "store {}: breaker {}, {} failures ({} in a row), {} retries{}",
            b.store,
            b.state,
            b.failures,
            b.consecutive_failures,
            b.retries,
            b.last_error.map(|e| format!(", last: {e}")).unwrap_or_default()
        )?;
    }
    // Scripts can tell a healthy repository by the exit status.
    Ok(u8::from(!failing.is_empty()))
}
