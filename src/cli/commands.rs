//! What each `noisefs` command does, on top of the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::CommandFactory;
use serde_json::json;

use super::args::{Cli, Command, PinCommand, RepoCommand};
use super::io::Io;
use super::progress::{bytes_bar, count_bar, size_of_path, PeerTicker};
use super::{announce, namespace, net, search};
use crate::descriptor::{EntryKind, Link, Meta};
use crate::engine::Engine;
use crate::fmt::{format_time, human_bytes, json_mode, mode_string};
use crate::maint;
use crate::repo::{Config, Repo};
use crate::store::LocalStore;
use crate::transfer::{self, no_progress, Opened, Sealer};
use crate::tree::Tree;

/// Runs one parsed command in this process, opening the repository (no daemon runs).
pub async fn run(cli: Cli, io: &Io) -> anyhow::Result<u8> {
    let quiet = cli.quiet;
    let root = match &cli.repo {
        Some(p) => io.path(p),
        None => Repo::default_path()?,
    };
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "noisefs", &mut io.out.clone());
            Ok(0)
        }
        Command::Man { dir } => {
            man(io, dir.map(|d| io.path(&d)))?;
            Ok(0)
        }
        Command::Init { block_size } => {
            let config = Config {
                block_size,
                ..Config::default()
            };
            Repo::init(&root, config)?;
            writeln!(
                io.out.clone(),
                "initialized NoiseFS repository at {} (block size {block_size})",
                root.display()
            )?;
            Ok(0)
        }
        command => {
            let repo = Arc::new(Repo::open(&root)?);
            let engine = Arc::new(crate::node::engine(repo)?);
            let mutates = matches!(
                command,
                Command::Tree(_) | Command::Receive { .. } | Command::Share { .. } | Command::Sync(_)
            );
            let code = dispatch(&engine, command, io, quiet).await;
            // A node this command started (a miss fetched from peers, `id`, `peers`) ends with it.
            if let Some(n) = engine.network() {
                n.shutdown().await;
            }
            // Blocks fetched from peers are recorded before the command ends (`gc`'s retention); the
            // command's own error, if any, is the one reported.
            let recorded = engine.repo().record_fetched();
            let code = code?;
            recorded?;
            if mutates {
                // No daemon will do it later: seal and sync what the command queued before exiting.
                engine.drain().await?;
                engine.tree().sync()?;
            }
            Ok(code)
        }
    }
}

/// Runs one command against an open repository (in this process or in the daemon). Returns the exit
/// status.
pub async fn dispatch(engine: &Arc<Engine>, command: Command, io: &Io, quiet: bool) -> anyhow::Result<u8> {
    let repo = engine.repo().clone();
    match command {
        Command::Put {
            paths,
            name,
            password,
            no_pin,
            out,
        } => {
            let paths: Vec<PathBuf> = paths.iter().map(|p| io.path(p)).collect();
            return put(repo, io, &paths, &name, password, no_pin, out.json, quiet).await;
        }
        Command::Get {
            link,
            output,
            force,
            password,
        } => {
            let opened = open_link(&repo, io, &link, password.password).await?;
            if output.as_deref() == Some(Path::new("-")) {
                // `-o -` streams the file to standard output, as `cat` does.
                if !matches!(opened.meta, Meta::File { .. }) {
                    anyhow::bail!("{link} is a folder: standard output takes one file (give `-o FOLDER`)");
                }
                let out = Box::new(io.out.clone());
                transfer::read_to(repo.store(), &opened, out, "<stdout>".into(), &no_progress()).await?;
                return Ok(0);
            }
            let target = match output {
                // An existing folder means "into this folder".
                Some(p) => match io.path(&p) {
                    dir if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) => {
                        dir.join(default_target(&opened)?)
                    }
                    p => p,
                },
                None => io.path(&default_target(&opened)?),
            };
            let total = match &opened.meta {
                Meta::File { size, .. } => *size,
                _ => 0,
            };
            let (bar, progress) = bytes_bar(total, quiet || !io.bars, "getting");
            let ticker = PeerTicker::start(&bar, engine.network(), "getting");
            let began = std::time::Instant::now();
            let n = transfer::get_to(repo.store(), &opened, &target, force, &progress).await;
            drop(ticker);
            bar.finish_and_clear();
            let n = n?;
            log_transfer(&repo, "retrieved", opened.root, n, began);
            if !quiet {
                writeln!(io.err.clone(), "wrote {} ({})", target.display(), human_bytes(n))?;
            }
        }
        Command::Cat {
            link,
            offset,
            length,
            password,
        } => {
            let opened = open_link(&repo, io, &link, password.password).await?;
            let began = std::time::Instant::now();
            if offset.is_none() && length.is_none() {
                let out = Box::new(io.out.clone());
                let n =
                    transfer::read_to(repo.store(), &opened, out, "<stdout>".into(), &no_progress()).await?;
                log_transfer(&repo, "read", opened.root, n, began);
            } else {
                // A megabyte at a time, so a long range streams with bounded memory.
                let (mut pos, mut left) = (offset.unwrap_or(0), length.unwrap_or(u64::MAX));
                let mut stdout = io.out.clone();
                while left > 0 {
                    let chunk = transfer::read_range(repo.store(), &opened, pos, left.min(1 << 20)).await?;
                    if chunk.is_empty() {
                        break;
                    }
                    stdout
                        .write_all(&chunk)
                        .context("cannot write to standard output")?;
                    pos += chunk.len() as u64;
                    left -= chunk.len() as u64;
                }
            }
        }
        Command::Ls { link, password, out } => {
            let opened = open_link(&repo, io, &link, password.password).await?;
            ls(io, &opened, out.json).await?;
        }
        Command::Stat { link, password, out } => {
            let opened = open_link(&repo, io, &link, password.password).await?;
            stat(io, &opened, out.json)?;
        }
        Command::Pin {
            list: Some(PinCommand::Ls { out }),
            ..
        } => pin_ls(&repo, io, out.json)?,
        Command::Pin { link, password, .. } => {
            let link = link.context("give the link to pin, or `pin ls` to list the pins")?;
            // A password link is pinned under its wrapper's root, so gc keeps the wrapper too.
            let pin_root = link.parse::<Link>()?.root;
            let opened = open_link(&repo, io, &link, password.password).await?;
            let hold = repo.hold().await;
            let blocks = maint::pin(&repo, &hold, pin_root, &opened)
                .await
                .context("cannot pin: not every block of this link is in the repository")?;
            drop(hold);
            if !quiet {
                writeln!(io.err.clone(), "pinned {} ({blocks} blocks)", opened.root)?;
            }
        }
        Command::Unpin { link } => {
            let link: Link = link.parse()?;
            maint::unpin(&repo, &link.root)?;
            if !quiet {
                writeln!(
                    io.err.clone(),
                    "unpinned {}; run `noisefs gc` to free its blocks",
                    link.root
                )?;
            }
        }
        Command::Gc { dry_run, out } => gc(engine, io, dry_run, out.json, quiet).await?,
        Command::Repo(RepoCommand::Stats { out }) => repo_stats(engine.tree(), io, out.json).await?,
        Command::Repo(RepoCommand::Verify { out }) => return repo_verify(&repo, io, out.json, quiet).await,
        Command::Tree(cmd) => return namespace::tree(engine, io, cmd).await,
        Command::Sync(cmd) => return namespace::sync(engine, io, cmd, quiet).await,
        Command::Share { path, password, out } => {
            return namespace::share(engine, io, &path, password, out.json).await
        }
        Command::Receive {
            link,
            path,
            now,
            max_size,
            password,
            out,
        } => {
            let opened = open_link(&repo, io, &link, password.password).await?;
            let args = namespace::ReceiveArgs {
                path,
                now,
                max_size,
                json: out.json,
                quiet: quiet || !io.bars,
            };
            return namespace::receive(engine, io, opened, args).await;
        }
        Command::Status { out } => return namespace::status(engine, io, out.json).await,
        Command::Net(cmd) => return net::net(engine, io, cmd).await,
        Command::Id { out } => return net::id(engine, io, out.json).await,
        Command::Peers { out } => return net::peers(engine, io, out.json).await,
        Command::Swarm(cmd) => return net::swarm(engine, io, cmd).await,
        Command::Discover { peers: true, out, .. } => return net::discover(engine, io, out.json).await,
        Command::Discover {
            words,
            topic,
            tags,
            category,
            since,
            publisher,
            min_size,
            max_size,
            limit,
            out,
            ..
        } => {
            let args = announce::DiscoverArgs {
                words,
                topic,
                tags,
                category,
                since,
                publisher,
                min_size,
                max_size,
                limit,
                json: out.json,
            };
            return announce::discover(engine, io, args);
        }
        Command::Announce {
            target,
            topic,
            tags,
            title,
            ttl,
            private,
            publisher,
            category,
            wait,
            out,
        } => {
            let args = announce::AnnounceArgs {
                target,
                topic,
                tags,
                title,
                ttl,
                private,
                publisher,
                category,
                wait,
                json: out.json,
            };
            return announce::announce(engine, io, args).await;
        }
        Command::Subscribe {
            pattern,
            list,
            follow,
            out,
        } => return announce::subscribe(engine, io, pattern, list, follow, out.json).await,
        Command::Unsubscribe { pattern } => return announce::unsubscribe(engine, io, &pattern),
        Command::Publishers { trust, block, out } => {
            return announce::publishers(engine, io, trust, block, out.json)
        }
        Command::Providers { link, timeout, out } => {
            return net::providers(engine, io, &link, timeout, out.json).await
        }
        Command::Search {
            query,
            name,
            path,
            kind,
            ext,
            tag,
            min_size,
            max_size,
            modified_after,
            modified_before,
            sort,
            limit,
            offset,
            reindex,
            out,
        } => {
            let req = crate::search::SearchRequest {
                query: query.join(" "),
                filters: crate::search::Filters {
                    name,
                    path,
                    kind,
                    ext,
                    tags: tag,
                    min_size,
                    max_size,
                    after: modified_after,
                    before: modified_before,
                },
                sort,
                limit,
                offset,
            };
            return search::search(engine, io, &req, reindex, out.json, quiet).await;
        }
        Command::Tag(cmd) => return search::tag(engine, io, cmd).await,
        Command::Daemon {
            action: Some(super::args::DaemonCommand::Stop),
            ..
        } => {
            let said = super::owner::stop_here(io.daemon.as_ref())?;
            writeln!(io.err.clone(), "{said}")?;
        }
        Command::Daemon { .. } => bail!(
            "a daemon already owns this repository{}",
            io.daemon
                .as_ref()
                .map(|d| format!(" (pid {})", d.pid))
                .unwrap_or_default()
        ),
        Command::Init { .. } => bail!("the repository already exists"),
        Command::Mount { .. } | Command::Unmount { .. } => {
            bail!("the repository is already owned by a running process; unmount or stop it first")
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "noisefs", &mut io.out.clone());
        }
        Command::Man { dir } => man(io, dir.map(|d| io.path(&d)))?,
    }
    Ok(0)
}

/// `noisefs man`: the manual pages clap's definitions make, to standard output or into `dir`.
fn man(io: &Io, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut io.out.clone())
            .context("cannot write the manual page")?,
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write manual pages into {}", dir.display()))?;
            writeln!(io.err.clone(), "wrote manual pages into {}", dir.display())?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn put(
    repo: Arc<Repo>,
    io: &Io,
    paths: &[PathBuf],
    stdin_name: &str,
    password: bool,
    no_pin: bool,
    json: bool,
    quiet: bool,
) -> anyhow::Result<u8> {
    let password = if password { Some(new_password(io)?) } else { None };
    let total: u64 = paths.iter().map(|p| size_of_path(p)).sum();
    let (bar, progress) = bytes_bar(total, quiet || !io.bars, "storing");
    let session = Sealer::new(repo.clone(), progress);
    let hold = repo.hold().await;
    // One item per argument, in order: what it was stored as, or why it was not. Every argument is
    // tried; one that fails does not stop the others.
    let mut items = Vec::new();
    let mut failed: Vec<anyhow::Error> = Vec::new();
    let mut skipped = 0;
    for path in paths {
        let began = std::time::Instant::now();
        let stored = async {
            let mut res = if path.as_os_str() == "-" {
                put_stdin(&session, &hold, io, stdin_name)
                    .await
                    .context("cannot store standard input")?
            } else {
                session
                    .put_path(&hold, path)
                    .await
                    .with_context(|| format!("cannot store {}", path.display()))?
            };
            if no_pin {
                let link: Link = res.link.parse()?;
                repo.state().unpin(&link.root)?;
            }
            if let Some(pw) = &password {
                let inner: Link = res.link.parse()?;
                res.link = session.protect(&hold, &inner, pw).await?.to_string();
            }
            anyhow::Ok(res)
        }
        .await;
        match stored {
            Ok(res) => {
                if let Ok(link) = res.link.parse::<Link>() {
                    log_transfer(&repo, "stored", link.root, res.size, began);
                }
                bar.suspend(|| -> anyhow::Result<()> {
                    if !json {
                        writeln!(io.out.clone(), "{}", res.link)?;
                    }
                    for s in &res.skipped {
                        let path = crate::fmt::printable(&s.path);
                        writeln!(io.err.clone(), "warning: not stored: {path}: {}", s.reason)?;
                    }
                    Ok(())
                })?;
                skipped += res.skipped.len();
                items.push(PutItem {
                    path: path.display().to_string(),
                    result: Ok(res),
                });
            }
            Err(e) => {
                bar.suspend(|| writeln!(io.err.clone(), "error: {e:#}"))?;
                items.push(PutItem {
                    path: path.display().to_string(),
                    result: Err(format!("{e:#}")),
                });
                failed.push(e);
            }
        }
    }
    bar.finish_and_clear();
    if json {
        writeln!(io.out.clone(), "{}", serde_json::to_string_pretty(&items)?)?;
    }
    let stored = paths.len() - failed.len();
    Ok(match failed.first() {
        // Nothing stored: the class of the (first) failure, as for any failed command.
        Some(e) if stored == 0 => super::exit::code(e),
        Some(_) => {
            if !quiet {
                writeln!(
                    io.err.clone(),
                    "stored {stored} of {} arguments; {} failed (see above)",
                    paths.len(),
                    failed.len()
                )?;
            }
            super::exit::PARTIAL
        }
        None if skipped > 0 => {
            if !quiet {
                writeln!(
                    io.err.clone(),
                    "stored, but {skipped} files or folders inside could not be read and were left out (see above)"
                )?;
            }
            super::exit::PARTIAL
        }
        None => super::exit::OK,
    })
}

/// One argument of `put --json`: the stored result's fields, or `error` saying why it was not stored.
#[derive(serde::Serialize)]
struct PutItem {
    path: String,
    #[serde(flatten, with = "put_outcome")]
    result: std::result::Result<transfer::PutResult, String>,
}

mod put_outcome {
    use serde::Serialize as _;

    pub fn serialize<S: serde::Serializer>(
        r: &Result<crate::transfer::PutResult, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Failed<'a> {
            error: &'a str,
        }
        match r {
            Ok(res) => res.serialize(s),
            Err(e) => Failed { error: e }.serialize(s),
        }
    }
}

async fn put_stdin(
    session: &Sealer,
    hold: &crate::hold::Hold,
    io: &Io,
    name: &str,
) -> anyhow::Result<transfer::PutResult> {
    crate::descriptor::node::check_name(name).context("--name must be a plain file name")?;
    let info = transfer::FileInfo {
        name: name.to_string(),
        mtime: crate::clock::now_secs(),
        mtime_ns: 0,
        mode: 0o644,
        media_type: crate::media::by_name(std::path::Path::new(name)),
    };
    let input = io.take_input().context("standard input was already read")?;
    let (link, size) = session.put_reader(hold, input, info).await?;
    session.finish(&link, name, size, false).await?;
    Ok(transfer::PutResult {
        link: link.to_string(),
        name: name.to_string(),
        size,
        dir: false,
        files: 1,
        skipped: Vec::new(),
    })
}

async fn open_link(repo: &Repo, io: &Io, link: &str, password: bool) -> anyhow::Result<Opened> {
    let link: Link = link.parse()?;
    let pw = if password || link.key().is_none() {
        Some(read_password(io, false)?)
    } else {
        None
    };
    let began = std::time::Instant::now();
    let opened = transfer::open(repo.store(), &link, pw.as_deref()).await?;
    tracing::info!(
        root = %opened.root,
        kind = if matches!(opened.meta, Meta::Dir { .. }) { "folder" } else { "file" },
        password = pw.is_some(),
        ms = began.elapsed().as_millis() as u64,
        "opened the descriptor"
    );
    Ok(opened)
}

/// What `-v` says about a transfer: its root block, bytes, the blocks it touched (each content
/// block is a tuple of stored blocks), time and rate.
fn log_transfer(repo: &Repo, what: &str, root: crate::block::BlockId, bytes: u64, began: std::time::Instant) {
    let secs = began.elapsed().as_secs_f64();
    let content_blocks = bytes.div_ceil(repo.block_size() as u64);
    tracing::info!(
        %root,
        bytes,
        content_blocks,
        stored_blocks = content_blocks * u64::from(repo.config().tuple_size),
        ms = (secs * 1000.0) as u64,
        mib_per_s = format!("{:.1}", bytes as f64 / f64::from(1 << 20) / secs.max(1e-6)),
        "{what}"
    );
}

/// The password for a command: given by the daemon's client, else NOISEFS_PASSWORD, else asked for.
pub fn read_password(io: &Io, confirm: bool) -> anyhow::Result<String> {
    if let Some(pw) = &io.password {
        return Ok(pw.clone());
    }
    if io.daemon.is_some() {
        bail!("this command needs a password; set NOISEFS_PASSWORD");
    }
    if let Ok(pw) = std::env::var("NOISEFS_PASSWORD") {
        if pw.is_empty() {
            bail!("NOISEFS_PASSWORD is set but empty");
        }
        return Ok(pw);
    }
    let pw =
        rpassword::prompt_password("Password: ").context("cannot read a password (set NOISEFS_PASSWORD)")?;
    if pw.is_empty() {
        bail!("an empty password protects nothing");
    }
    if confirm && rpassword::prompt_password("Repeat password: ")? != pw {
        bail!("the passwords differ");
    }
    Ok(pw)
}

/// Reads the password a new link is protected with (confirmed at a prompt) and warns on the error
/// stream when it is weak: anyone holding the link can guess it offline.
pub fn new_password(io: &Io) -> anyhow::Result<String> {
    let pw = read_password(io, true)?;
    if let Some(why) = crate::crypto::password_weakness(&pw) {
        writeln!(
            io.err.clone(),
            "warning: weak password ({why}); anyone who gets the link can try passwords offline"
        )?;
    }
    Ok(pw)
}

fn default_target(opened: &Opened) -> anyhow::Result<PathBuf> {
    let name = opened.name();
    if name.is_empty() {
        return Ok(PathBuf::from(opened.root.to_string()));
    }
    crate::descriptor::node::check_name(name).context("the stored name is unsafe; choose one with -o")?;
    Ok(PathBuf::from(name))
}

/// One row of `ls`: a folder entry, or the file itself when the link is a file.
struct LsRow {
    /// A folder entry (its JSON has `link` and `target`; a file link's own row has neither).
    entry: bool,
    name: String,
    kind: EntryKind,
    size: u64,
    mtime: i64,
    mode: u32,
    link: Option<String>,
    target: Option<String>,
}

impl LsRow {
    fn json(&self) -> serde_json::Value {
        let mut v = json!({
            "name": self.name, "kind": self.kind, "size": self.size, "mtime": self.mtime,
            "mode": json_mode(self.mode),
        });
        if self.entry {
            v["link"] = json!(self.link);
            v["target"] = json!(self.target);
        }
        v
    }
}

async fn ls(io: &Io, opened: &Opened, json: bool) -> anyhow::Result<()> {
    let rows: Vec<LsRow> = match &opened.meta {
        Meta::File {
            name,
            size,
            mtime,
            mode,
            ..
        } => vec![LsRow {
            entry: false,
            name: name.clone(),
            kind: EntryKind::File,
            size: *size,
            mtime: *mtime,
            mode: *mode,
            link: None,
            target: None,
        }],
        _ => opened
            .entries()
            .await?
            .into_iter()
            .map(|e| LsRow {
                entry: true,
                link: e.link().map(|l| l.to_string()),
                name: e.name,
                kind: e.kind,
                size: e.size,
                mtime: e.mtime,
                mode: e.mode,
                target: e.target,
            })
            .collect(),
    };
    let mut out = io.out.clone();
    if json {
        let v: Vec<_> = rows.iter().map(LsRow::json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    for r in rows {
        let kind = match r.kind {
            EntryKind::Dir => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::File => '-',
        };
        let name = crate::fmt::printable(&r.name);
        let suffix = match &r.target {
            Some(t) => format!(" -> {}", crate::fmt::printable(t)),
            None if kind == 'd' => "/".into(),
            None => String::new(),
        };
        writeln!(
            out,
            "{kind}{} {:>10} {} {name}{suffix}",
            mode_string(r.mode),
            r.size,
            format_time(r.mtime),
        )?;
    }
    Ok(())
}

fn stat(io: &Io, opened: &Opened, json: bool) -> anyhow::Result<()> {
    let value = match &opened.meta {
        Meta::File {
            name,
            size,
            block_size,
            tuple_size,
            mtime,
            mode,
            media_type,
            ..
        } => json!({
            "kind": "file", "name": name, "size": size, "block_size": block_size,
            "blocks": size.div_ceil(*block_size), "tuple_size": tuple_size, "mtime": mtime,
            "mode": json_mode(*mode), "media_type": media_type, "root": opened.root.to_string(),
        }),
        Meta::Dir {
            name,
            mtime,
            mode,
            entries,
            ..
        } => json!({
            "kind": "dir", "name": name, "entries": entries, "mtime": mtime,
            "mode": json_mode(*mode), "root": opened.root.to_string(),
        }),
        Meta::Wrapped { .. } => unreachable!("open() unwraps password links"),
    };
    if json {
        writeln!(io.out.clone(), "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            let shown = match (k.as_str(), v) {
                ("mtime", v) => format_time(v.as_i64().unwrap_or(0)),
                (_, serde_json::Value::String(s)) => s.clone(),
                (_, v) => v.to_string(),
            };
            writeln!(
                io.out.clone(),
                "{:<11} {shown}",
                format!("{}:", k.replace('_', " "))
            )?;
        }
    }
    Ok(())
}

fn pin_ls(repo: &Repo, io: &Io, json: bool) -> anyhow::Result<()> {
    let pins = maint::pins(repo)?;
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&pins)?)?;
        return Ok(());
    }
    for p in &pins {
        let kind = if p.dir { "dir " } else { "file" };
        writeln!(
            out,
            "{} {kind} {:>10} {} {}",
            p.root,
            human_bytes(p.size),
            format_time(p.created),
            p.name
        )?;
    }
    Ok(())
}

async fn gc(engine: &Engine, io: &Io, dry_run: bool, json: bool, quiet: bool) -> anyhow::Result<()> {
    let err = io.err.clone();
    let waiting = move |n: usize| {
        if !quiet {
            let _ = writeln!(err.clone(), "gc: waiting for {n} running writes to finish");
        }
    };
    let r = maint::gc(engine.tree(), dry_run, &waiting).await?;
    if json {
        writeln!(io.out.clone(), "{}", serde_json::to_string_pretty(&r)?)?;
    } else if !quiet {
        let verb = if dry_run { "would remove" } else { "removed" };
        writeln!(
            io.out.clone(),
            "{verb} {} blocks ({}); kept {} blocks needed by {} pins and the tree",
            r.removed_blocks,
            human_bytes(r.freed_bytes),
            r.kept_blocks,
            r.pins
        )?;
        if r.kept_fetched_blocks > 0 {
            writeln!(
                io.out.clone(),
                "kept {} blocks fetched from peers in the last {} days (`[network] keep_fetched_days`)",
                r.kept_fetched_blocks,
                engine.repo().config().network.keep_fetched_days
            )?;
        }
    }
    Ok(())
}

async fn repo_stats(tree: &Tree, io: &Io, json: bool) -> anyhow::Result<()> {
    let s = maint::stats(tree).await?;
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
        return Ok(());
    }
    writeln!(out, "repository:   {}", s.path.display())?;
    writeln!(out, "block size:   {}", tree.repo().config().block_size)?;
    writeln!(
        out,
        "blocks:       {} ({} data, {} random, {} descriptor, {} fetched)",
        s.blocks, s.data_blocks, s.random_blocks, s.descriptor_blocks, s.fetched_blocks
    )?;
    writeln!(
        out,
        "stored:       {} in blocks: {} data, {} randomizers, {} descriptors, {} fetched from peers",
        human_bytes(s.stored_bytes),
        human_bytes(s.data_bytes),
        human_bytes(s.random_bytes),
        human_bytes(s.descriptor_bytes),
        human_bytes(s.fetched_bytes)
    )?;
    writeln!(
        out,
        "tree:         {} state database, holding {} small files ({} inline)",
        human_bytes(s.state_bytes),
        s.tree_inline_files,
        human_bytes(s.tree_inline_bytes)
    )?;
    writeln!(
        out,
        "pinned:       {} links, {} of content",
        s.pins,
        human_bytes(s.pinned_content_bytes)
    )?;
    writeln!(
        out,
        "kept:         {} of content (pinned links and the tree's files, each counted once)",
        human_bytes(s.kept_content_bytes)
    )?;
    writeln!(
        out,
        "overhead:     {:.1}% ((stored + inline) / kept content - 1)",
        s.overhead * 100.0
    )?;
    writeln!(out, "reuse:        {:.2} tuples per content block (a block serves its own tuple and others as randomizer)", s.reuse)?;
    Ok(())
}

async fn repo_verify(repo: &Repo, io: &Io, json: bool, quiet: bool) -> anyhow::Result<u8> {
    let blocks = repo.stack().stats().await?.blocks;
    let bar = count_bar(blocks, quiet || !io.bars, "verifying blocks");
    let tick = bar.clone();
    let r = maint::verify(repo, &move || tick.inc(1)).await?;
    bar.finish_and_clear();
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        for b in &r.corrupt {
            writeln!(out, "corrupt {} at {}: {}", b.id, b.path.display(), b.reason)?;
        }
        for id in &r.missing {
            writeln!(out, "missing {id}: recorded in the state but not on disk")?;
        }
        if !quiet || !r.clean() {
            writeln!(
                out,
                "checked {} blocks: {} corrupt, {} missing",
                r.checked,
                r.corrupt.len(),
                r.missing.len()
            )?;
        }
    }
    Ok(if r.clean() { 0 } else { 1 })
}
