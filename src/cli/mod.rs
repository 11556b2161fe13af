//! The `noisefs` command line: parses arguments, sets up logging and the runtime, and runs one command:
//! through the daemon when one owns the repository, else in this process. Also the daemon's side: the
//! handler that runs a client's command inside the daemon.

mod announce;
mod args;
mod commands;
pub mod exit;
mod io;
mod mount;
mod namespace;
mod net;
mod owner;
mod progress;
mod search;

pub use args::{
    Cli, Command, NetCommand, PinCommand, RepoCommand, SwarmCommand, SyncCommand, TagCommand, TreeCommand,
};
pub use io::{link_source, Io, Out};

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::daemon::{self, proto};
use crate::engine::Engine;
use crate::repo::Repo;

/// Runs the CLI with the process's arguments.
pub fn main() -> ExitCode {
    tune_allocator();
    let mut cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    // A link given as `-`, `file:` or `env:` is read here, by the client, whichever process runs it.
    let given = match link_field(&mut cli.command) {
        Some(arg) => match io::link_source(arg, &mut std::io::stdin()) {
            Ok(Some(link)) => {
                arg.clone_from(&link);
                Some(link)
            }
            Ok(None) => None,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(exit::code(&e));
            }
        },
        None => None,
    };
    if forwarded(&cli.command) {
        let root = cli.repo.clone().map_or_else(Repo::default_path, Ok);
        let deadline = std::time::Instant::now() + cli.retry_lock.unwrap_or_default();
        let mut told = false;
        loop {
            if let Some(stream) = root.as_ref().ok().and_then(|r| daemon::connect(r)) {
                return match forward(&stream, &cli, given) {
                    Ok(code) => ExitCode::from(code),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::FAILURE
                    }
                };
            }
            // Held by a command that serves no one: wait for it (or for an owner), within --retry-lock.
            let Ok(r) = &root else { break };
            if std::time::Instant::now() >= deadline || !Repo::is_locked(r) {
                break;
            }
            if !told && !cli.quiet {
                eprintln!("waiting for another command to release {}", r.display());
                told = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let io = Io::stdio();
    let result = match &cli.command {
        Command::Daemon { .. } => daemon_command(&cli, &runtime),
        Command::Mount { .. } | Command::Unmount { .. } => mount::run(&cli),
        _ => runtime.block_on(commands::run(cli, &io)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code(&e))
        }
    }
}

/// `noisefs daemon [--detach | stop]` when no owner took the command.
fn daemon_command(cli: &Cli, runtime: &tokio::runtime::Runtime) -> anyhow::Result<u8> {
    let root = match &cli.repo {
        Some(p) => p.clone(),
        None => Repo::default_path()?,
    };
    match &cli.command {
        Command::Daemon {
            action: Some(args::DaemonCommand::Stop),
            ..
        } => owner::stop(cli, &root),
        Command::Daemon { detach: true, .. } => owner::detach(cli, &root),
        _ => runtime.block_on(owner::run(cli, &root)),
    }
}

/// The link argument of a command that takes one.
fn link_field(c: &mut Command) -> Option<&mut String> {
    match c {
        Command::Get { link, .. }
        | Command::Cat { link, .. }
        | Command::Ls { link, .. }
        | Command::Stat { link, .. }
        | Command::Unpin { link }
        | Command::Pin { link: Some(link), .. }
        | Command::Receive { link, .. }
        | Command::Providers { link, .. } => Some(link),
        Command::Mount { root: Some(root), .. } => Some(root),
        _ => None,
    }
}

/// Whether a command goes to a running daemon (everything that opens the repository).
fn forwarded(c: &Command) -> bool {
    !matches!(
        c,
        Command::Init { .. }
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::Daemon { .. }
            | Command::Mount { .. }
            | Command::Unmount { .. }
    )
}

/// Whether a command will ask for a password; the client asks before forwarding, since the daemon has
/// no terminal.
fn wants_password(c: &Command) -> bool {
    let locked = |link: &str| link.contains("#argon2id.");
    match c {
        Command::Put { password, .. } | Command::Share { password, .. } => *password,
        Command::Get { link, password, .. }
        | Command::Cat { link, password, .. }
        | Command::Ls { link, password, .. }
        | Command::Stat { link, password, .. }
        | Command::Pin {
            link: Some(link),
            password,
            ..
        }
        | Command::Receive { link, password, .. } => password.password || locked(link),
        _ => false,
    }
}

/// Sends the command line to the daemon with this process's standard streams; returns its exit status.
fn forward(stream: &std::os::unix::net::UnixStream, cli: &Cli, link: Option<String>) -> anyhow::Result<u8> {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
        .map_err(|a| anyhow::anyhow!("argument {a:?} is not UTF-8; the daemon cannot take it"))?;
    let password = if wants_password(&cli.command) {
        let confirm = matches!(cli.command, Command::Put { .. } | Command::Share { .. });
        Some(commands::read_password(&Io::stdio(), confirm)?)
    } else {
        None
    };
    let req = proto::Request {
        v: proto::VERSION,
        op: "run".into(),
        argv,
        cwd: std::env::current_dir()?,
        password,
        link,
    };
    let fds = [
        std::io::stdin().as_raw_fd(),
        std::io::stdout().as_raw_fd(),
        std::io::stderr().as_raw_fd(),
    ];
    // A daemon that refuses the connection answers at once and closes: the request may then fail to
    // send (EPIPE), and the answer already waiting says why.
    let sent = proto::send(stream, &req, &fds);
    let resp = match (sent, proto::read_reply(stream)) {
        (_, Ok(resp)) => resp,
        (Err(e), Err(_)) => return Err(e.into()),
        (Ok(()), Err(e)) => return Err(e.into()),
    };
    if let Some(e) = resp.error {
        anyhow::bail!("the daemon (pid {}) refused the request: {e}", resp.pid);
    }
    Ok(u8::try_from(resp.exit).unwrap_or(1))
}

/// The daemon's handler for clients' commands: runs each on the calling thread, blocking on the current
/// runtime (call it from within one). The FUSE driver uses it too, since the mount process owns the
/// repository.
pub fn command_handler(engine: Arc<Engine>, info: daemon::Info) -> daemon::Handler {
    let handle = tokio::runtime::Handle::current();
    Arc::new(move |req: proto::Request, fds, hangup: daemon::Hangup| {
        let io = Io::passed(fds, req.cwd.clone(), req.password.clone(), info.clone());
        let code = match Cli::try_parse_from(&req.argv) {
            Err(err) => {
                let _ = write!(io.err.clone(), "{}", err.render().ansi());
                err.exit_code()
            }
            Ok(mut cli) => {
                // The link the client read from its standard input, a file or its environment.
                if let (Some(given), Some(field)) = (&req.link, link_field(&mut cli.command)) {
                    field.clone_from(given);
                }
                let sub = req.argv.iter().skip(1).find(|a| !a.starts_with('-'));
                tracing::info!(
                    command = sub.map_or("", |s| s.as_str()),
                    "running a client's command"
                );
                let argv: Vec<String> = req.argv.iter().map(|a| crate::fmt::redact_links(a)).collect();
                tracing::debug!(?argv, "the client's arguments");
                let run = commands::dispatch(&engine, cli.command, &io, cli.quiet);
                // A client that goes away (Ctrl-C) cancels its command: the work is dropped at its
                // next await, with what it stored left unpinned for gc.
                let outcome = handle.block_on(async {
                    tokio::select! {
                        r = run => Some(r),
                        () = hangup => None,
                    }
                });
                match outcome {
                    Some(Ok(code)) => i32::from(code),
                    Some(Err(err)) => {
                        let _ = writeln!(io.err.clone(), "error: {err:#}");
                        i32::from(exit::code(&err))
                    }
                    None => {
                        tracing::info!("the client went away; its command was cancelled");
                        daemon::CANCELLED
                    }
                }
            }
        };
        let _ = io.out.clone().flush();
        engine.wake.notify_one();
        code
    })
}

/// Keeps block-sized buffers (up to 4 MiB) on the heap, where freed ones are reused, instead of a fresh
/// zeroed `mmap` per block; this removes most page faults from the streaming paths.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::fmt::log_colour())
        .with_target(false)
        .try_init();
}
