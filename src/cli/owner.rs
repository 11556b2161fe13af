//! The repository's owner seen from the CLI: `noisefs daemon` in the foreground or detached,
//! `noisefs daemon stop`, and waiting for an owner (daemon or mount) to let go of the repository.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::args::Cli;
use crate::daemon;
use crate::repo::Repo;

/// How long `daemon --detach` waits for the daemon to serve, and `daemon stop` or `unmount` for the
/// owner to store its state and exit.
const WAIT: Duration = Duration::from_secs(60);

/// The log a detached daemon writes, in the repository (0600: it names commands run).
pub const LOG: &str = "daemon.log";

/// `noisefs daemon`: owns the repository and serves commands until SIGINT/SIGTERM.
pub async fn run(cli: &Cli, root: &Path) -> anyhow::Result<u8> {
    let node = crate::node::Node::open(root)?;
    if !cli.quiet {
        eprintln!(
            "noisefs daemon (pid {}) serving {} on {}",
            std::process::id(),
            root.display(),
            daemon::socket_path(root).display()
        );
    }
    node.run(crate::node::shutdown_signal()?).await?;
    Ok(0)
}

/// `noisefs daemon --detach`: starts `noisefs daemon` in a session of its own with its log in the
/// repository, and returns once it serves commands (or says why it did not start).
pub fn detach(cli: &Cli, root: &Path) -> anyhow::Result<u8> {
    if let Some(pid) = owner_pid(root) {
        bail!(
            "{} is already owned by process {pid} (`noisefs status` tells which)",
            root.display()
        );
    }
    // Opening it makes no repository (only a real one gets a log and a daemon) and keeps its log
    // private.
    drop(Repo::open(root)?);
    let log_path = root.join(LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let me = std::env::current_exe().context("cannot find the noisefs executable")?;
    let mut cmd = Process::new(me);
    cmd.arg("--repo").arg(root).arg("daemon");
    if cli.verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        cmd.arg("-v"); // the log says what ran and when
    }
    for _ in 0..cli.verbose {
        cmd.arg("-v");
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().context("cannot share the daemon's log")?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of this process; the child leaves
    // the terminal's session, so closing the terminal or its Ctrl-C does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the daemon")?;
    let deadline = Instant::now() + WAIT;
    loop {
        if daemon::connect(root).is_some() {
            if !cli.quiet {
                eprintln!(
                    "noisefs daemon (pid {}) serving {}; its log is {}; `noisefs daemon stop` ends it",
                    child.id(),
                    root.display(),
                    log_path.display()
                );
            }
            return Ok(0);
        }
        if let Some(status) = child.try_wait().context("cannot watch the daemon")? {
            bail!("the daemon exited at start ({status}): {}", tail(&log_path));
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon (pid {}) does not serve commands after a minute: {}",
                child.id(),
                tail(&log_path)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `noisefs daemon stop`, on the client's side: asks the daemon (through its socket, so only a
/// daemon this user may talk to) to stop, then waits until it has let go of the repository.
pub fn stop(cli: &Cli, root: &Path) -> anyhow::Result<u8> {
    let Some(stream) = daemon::connect(root) else {
        if !cli.quiet {
            eprintln!("no daemon is running for {}", root.display());
        }
        return Ok(0);
    };
    let code = super::forward(&stream, cli, None)?;
    if code != 0 {
        return Ok(code);
    }
    wait_for_owner(root)?;
    if !cli.quiet {
        eprintln!("the daemon has stopped; {} is free", root.display());
    }
    Ok(0)
}

/// `noisefs daemon stop`, in the owner: a daemon stops as on SIGTERM (finishing what is due); a
/// mount is ended by unmounting it instead.
pub fn stop_here(info: Option<&daemon::Info>) -> anyhow::Result<String> {
    let Some(info) = info else {
        bail!("no daemon is running for this repository");
    };
    if let Some(m) = &info.mountpoint {
        bail!(
            "the repository is owned by the mount on {}: `noisefs unmount {}` ends it",
            m.display(),
            m.display()
        );
    }
    // SAFETY: sends a signal to this process, whose handler (the daemon's shutdown) is installed.
    if unsafe { libc::kill(libc::getpid(), libc::SIGTERM) } != 0 {
        bail!("cannot signal the daemon: {}", std::io::Error::last_os_error());
    }
    Ok(format!("stopping the daemon (pid {})", info.pid))
}

/// Waits (up to a minute) until the owner has finished and released the repository.
pub fn wait_for_owner(root: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while Repo::is_locked(root) {
        if Instant::now() > deadline {
            bail!(
                "process {} still holds {} after a minute (see its log there)",
                owner_pid(root).unwrap_or_else(|| "?".into()),
                root.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The process holding the repository, if one does.
fn owner_pid(root: &Path) -> Option<String> {
    if !Repo::is_locked(root) {
        return None;
    }
    let pid = std::fs::read_to_string(root.join("repo.lock")).ok()?;
    Some(pid.trim().to_string())
}

/// The last lines of a log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}
