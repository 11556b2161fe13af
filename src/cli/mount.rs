//! `noisefs mount` and `noisefs unmount`: the FUSE driver is its own program (`mount-noisefs`, from the
//! `noisefs-mount` crate, also installed as `mount.noisefs`); these commands start and stop it.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{bail, Context};

use super::args::{Cli, Command};
use crate::repo::Repo;

/// The environment variable a link to mount reaches the helper in.
const MOUNT_LINK_ENV: &str = "NOISEFS_MOUNT_LINK";

/// Runs `mount` or `unmount`.
pub fn run(cli: &Cli) -> anyhow::Result<u8> {
    let root = match &cli.repo {
        Some(p) => p.clone(),
        None => Repo::default_path()?,
    };
    match &cli.command {
        Command::Mount {
            dir,
            read_only,
            root: show,
            foreground,
            options,
        } => {
            let helper = helper()?;
            let mut opts = vec![if *read_only {
                "ro".to_string()
            } else {
                "rw".to_string()
            }];
            for o in options
                .iter()
                .flat_map(|o| o.split(','))
                .filter(|o| !o.is_empty())
            {
                if o.starts_with("root=") || o == "ro" || o == "rw" {
                    bail!("-o {o}: use --root and --read-only");
                }
                opts.push(o.to_string());
            }
            if let Some(r) = show {
                if r.contains(',') {
                    bail!("--root {r:?}: a tree path for mounting cannot contain a comma");
                }
                if r.starts_with("noisefs://") {
                    // The key goes to the helper in its environment (readable by this user only),
                    // never in its arguments.
                    opts.push(format!("root=env:{MOUNT_LINK_ENV}"));
                } else {
                    opts.push(format!("root={r}"));
                }
            }
            let mut p = Process::new(&helper);
            if let Some(r) = show.as_ref().filter(|r| r.starts_with("noisefs://")) {
                p.env(MOUNT_LINK_ENV, r);
            }
            p.arg(&root).arg(dir).arg("-o").arg(opts.join(","));
            if *foreground {
                p.arg("-f");
            }
            let status = p
                .status()
                .with_context(|| format!("cannot run {}", helper.display()))?;
            if status.success() && !*foreground {
                // The mount is up; its node serves commands a moment later (once its network is
                // started): return when it does, so the next command goes through it.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while crate::daemon::connect(&root).is_none() {
                    if std::time::Instant::now() > deadline {
                        eprintln!(
                            "warning: {} is mounted, but its control socket does not answer after a minute (see mount.log)",
                            dir.display()
                        );
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            if status.success() && !*foreground && !cli.quiet {
                eprintln!(
                    "mounted {} on {}; `noisefs unmount {}` ends it",
                    root.display(),
                    dir.display(),
                    dir.display()
                );
            }
            Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
        }
        Command::Unmount { dir } => {
            unmount(dir)?;
            super::owner::wait_for_owner(&root)?;
            Ok(0)
        }
        _ => unreachable!("only mount and unmount come here"),
    }
}

/// The FUSE helper: beside this binary, else on PATH.
fn helper() -> anyhow::Result<PathBuf> {
    let names = ["mount-noisefs", "mount.noisefs"];
    if let Ok(me) = std::env::current_exe() {
        if let Some(dir) = me.parent() {
            for n in names {
                if dir.join(n).exists() {
                    return Ok(dir.join(n));
                }
            }
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            if dir.join(n).exists() {
                return Ok(dir.join(n));
            }
        }
    }
    bail!("the FUSE driver (mount-noisefs) was not found beside noisefs or on PATH; build it with `cargo build --release --workspace`")
}

/// Asks the kernel to unmount `dir` (fusermount3 for users, umount for root as a fallback).
fn unmount(dir: &Path) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for (prog, args) in [
        ("fusermount3", vec!["-u"]),
        ("fusermount", vec!["-u"]),
        ("umount", vec![]),
    ] {
        match Process::new(prog).args(&args).arg(dir).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => errors.push(format!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => errors.push(format!("{prog}: {e}")),
        }
    }
    bail!("cannot unmount {}: {}", dir.display(), errors.join("; "))
}
