//! `mount.noisefs`: mounts a NoiseFS repository (or a link) with FUSE, so `mount -t fuse.noisefs` and
//! fstab work. Usage: `mount.noisefs <repository|noisefs|link> <mountpoint> [-o ro,root=/path] [-f]`.
//! Without `-f` it returns once the mount is up and keeps serving in the background.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use noisefs_mount::run::{run, Options};

const USAGE: &str =
    "usage: mount.noisefs <repository folder | noisefs | noisefs://link> <mountpoint> [-o OPTIONS] [-f]
options: ro, rw, root=/tree/path, allow_other, allow_root, uid=N, gid=N, umask=OOO, suid, threads=N
(installed as mount.fuse.noisefs: `mount -t fuse.noisefs noisefs /mnt/noisefs -o allow_other`)";

fn main() -> ExitCode {
    let (opts, foreground) = match parse(std::env::args().skip(1).collect()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mount.noisefs: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if foreground {
        init_logging(None);
        return match run(opts, &mut |_| {}) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mount.noisefs: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    background(opts)
}

/// Forks before any thread exists; the parent waits for the child's word that the mount is up.
fn background(opts: Options) -> ExitCode {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array we own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!(
            "mount.noisefs: cannot create a pipe: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    // SAFETY: the descriptors were just created and are owned here only.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: this process is single-threaded here, so the child may keep running Rust code.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("mount.noisefs: cannot fork: {}", std::io::Error::last_os_error());
            ExitCode::FAILURE
        }
        0 => {
            drop(rd);
            // SAFETY: setsid has no memory effects; it detaches from the shell's session.
            unsafe { libc::setsid() };
            let log = opts.repo.join("mount.log");
            init_logging(Some(log));
            quiet_stdio();
            let mut pipe = Some(std::fs::File::from(wr));
            let mut ready = |r: Result<(), String>| {
                if let Some(mut p) = pipe.take() {
                    let msg = match r {
                        Ok(()) => "ok\n".to_string(),
                        Err(e) => format!("{e}\n"),
                    };
                    let _ = p.write_all(msg.as_bytes());
                }
            };
            match run(opts, &mut ready) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "mount ended with an error");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            drop(wr);
            let mut word = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut word);
            match word.trim() {
                "ok" => ExitCode::SUCCESS,
                "" => {
                    eprintln!("mount.noisefs: the mount process ended before the mount was up (see mount.log in the repository)");
                    ExitCode::FAILURE
                }
                e => {
                    eprintln!("mount.noisefs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Points standard input and output at /dev/null (the shell that started us goes on without us).
fn quiet_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto the standard descriptors with a valid open descriptor.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
}

fn init_logging(file: Option<PathBuf>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // The log names files and errors: readable by its owner only, even if it was created looser.
    let open = |f: PathBuf| {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(f)
            .ok()?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .ok()?;
        Some(file)
    };
    match file.and_then(open) {
        Some(f) => {
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init();
        }
        None => {
            let _ = builder
                .with_ansi(noisefs::fmt::log_colour())
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
}

/// Parses mount(8)-style arguments. Returns the options and whether to stay in the foreground.
fn parse(args: Vec<String>) -> Result<(Options, bool), String> {
    let mut positional = Vec::new();
    let mut foreground = false;
    let mut opts = Options::new(PathBuf::new(), PathBuf::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" | "--foreground" => foreground = true,
            "-o" => {
                let list = it.next().ok_or("-o needs a value")?;
                for o in list.split(',').filter(|o| !o.is_empty()) {
                    opts.apply(o)?;
                }
            }
            "-n" | "-s" | "-v" => {} // mount(8)'s no-mtab, sloppy, verbose
            s if s.starts_with('-') => return Err(format!("unknown argument {s}")),
            _ => positional.push(a),
        }
    }
    let [source, mountpoint] =
        <[String; 2]>::try_from(positional).map_err(|_| "expected a source and a mount point".to_string())?;
    let repo = if source == "noisefs" || source.starts_with("noisefs://") {
        noisefs::repo::Repo::default_path().map_err(|e| e.to_string())?
    } else {
        PathBuf::from(&source)
    };
    if source.starts_with("noisefs://") {
        opts.root = Some(source);
        opts.read_only = true;
    }
    // `root=env:NAME` or `root=file:PATH`: a link that stays out of the process's arguments.
    if let Some(r) = opts
        .root
        .clone()
        .filter(|r| r.starts_with("env:") || r.starts_with("file:"))
    {
        let link = noisefs::cli::link_source(&r, &mut std::io::empty())
            .map_err(|e| format!("{e:#}"))?
            .ok_or_else(|| format!("no link in {r}"))?;
        if let Some(name) = r.strip_prefix("env:") {
            // Read once; the mount process does not keep it in its environment.
            std::env::remove_var(name);
        }
        opts.read_only |= link.starts_with("noisefs://");
        opts.root = Some(link);
    }
    let abs = |p: PathBuf| {
        if p.is_absolute() {
            p
        } else {
            std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
        }
    };
    opts.repo = abs(repo);
    opts.mountpoint = abs(PathBuf::from(mountpoint));
    Ok((opts, foreground))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn mount_style_arguments() {
        let (o, fg) = parse(args("/r /mnt -o defaults,noauto,user,ro,root=/docs -f")).unwrap();
        assert_eq!(
            (o.repo, o.mountpoint, o.read_only, o.root.as_deref(), fg),
            ("/r".into(), "/mnt".into(), true, Some("/docs"), true)
        );
        let (o, fg) = parse(args("/r /mnt -o rw,threads=2")).unwrap();
        assert_eq!((o.read_only, o.threads, fg), (false, 2, false));
        let (o, _) = parse(args("noisefs://bafk#key /mnt")).unwrap();
        assert!(o.read_only && o.root.as_deref() == Some("noisefs://bafk#key"));
        assert!(parse(args("/r")).is_err());
        assert!(parse(args("/r /mnt -o bogus")).unwrap_err().contains("bogus"));
        assert!(parse(args("/r /mnt -x")).is_err());
        assert!(parse(args("/r /mnt -o")).is_err());
        assert!(parse(args("/r /mnt -o threads=x")).is_err());
        assert!(parse(args("/r /mnt -o threads=0")).is_err());
        let (o, _) = parse(args(
            "/r /mnt -o allow_other,uid=1000,gid=100,umask=027,nodev,suid",
        ))
        .unwrap();
        assert_eq!(o.access, noisefs_mount::run::Access::Other);
        assert_eq!(
            (o.show.uid, o.show.gid, o.show.umask, o.suid),
            (Some(1000), Some(100), Some(0o27), true)
        );
        let (o, _) = parse(args("/r /mnt -o allow_root")).unwrap();
        assert_eq!(o.access, noisefs_mount::run::Access::Root);
        for bad in ["uid=me", "gid=-1", "umask=9", "umask=77777", "dev"] {
            let e = parse(args(&format!("/r /mnt -o {bad}"))).unwrap_err();
            assert!(e.contains(bad.split('=').next().unwrap_or(bad)), "{bad}: {e}");
        }
    }
}
