//! Helpers for tests that mount a real NoiseFS filesystem through the kernel.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Waits until `cond` holds, checking every 20 ms; panics naming `what` after a minute. The test decides
/// by the condition, never by time.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A scratch folder with a repository (`repo/`) and a mount point (`mnt/`).
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = noisefs::repo::Config {
            block_size: noisefs::block::BlockSize::new(64 * 1024).expect("block size"),
            writeback_delay_ms: 200,
            ..Default::default()
        };
        drop(noisefs::repo::Repo::init(&dir.path().join("repo"), cfg).expect("init"));
        std::fs::create_dir(dir.path().join("mnt")).expect("mnt");
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    pub fn mnt(&self) -> PathBuf {
        self.path("mnt")
    }

    /// Mounts in the foreground (as a child) with extra `-o` options, and waits until it is mounted.
    pub fn mount(&self, opts: &str) -> Mounted {
        self.mount_at(&self.repo().display().to_string(), &self.mnt(), opts)
    }

    pub fn mount_at(&self, source: &str, at: &Path, opts: &str) -> Mounted {
        let log = self.path(&format!("mount-{}.log", std::process::id() as u128 + rand_n()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mount-noisefs"));
        cmd.arg(source).arg(at).arg("-f");
        if !opts.is_empty() {
            cmd.arg("-o").arg(opts);
        }
        let child = cmd
            .env("NOISEFS_HOME", self.repo())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start mount-noisefs");
        let mut m = Mounted {
            child,
            dir: at.to_path_buf(),
            log,
        };
        wait_until("the mount", || {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("mount-noisefs exited with {status}: {}", m.log_text());
            }
            is_mounted(at)
        });
        m
    }

    /// The `noisefs` CLI (built beside the driver by `cargo test --workspace`).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let bin = Path::new(env!("CARGO_BIN_EXE_mount-noisefs")).with_file_name("noisefs");
        assert!(
            bin.exists(),
            "{} is missing: run the tests with `cargo test --workspace`",
            bin.display()
        );
        Command::new(bin)
            .args(args)
            .env("NOISEFS_HOME", self.repo())
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run noisefs")
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "noisefs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

fn rand_n() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::Relaxed))
}

/// Whether `dir` is a mount point of a NoiseFS filesystem (source `noisefs:<repository>`).
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(dir.parent().unwrap_or(dir)) else {
        return false;
    };
    let want = canon.join(dir.file_name().unwrap_or_default());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() > 4 && Path::new(f[4]) == want && l.contains(" - fuse") && l.contains(" noisefs:")
        })
}

/// A running mount.
pub struct Mounted {
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Mounted {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts as a user would, and waits for the driver to exit cleanly.
    /// A mount still busy (a file another test's short-lived child inherited, a process leaving the
    /// folder) is retried until it is free, within `wait_until`'s bound; any other failure fails.
    pub fn unmount(mut self) {
        let mut last = String::new();
        wait_until("an unmount that is not busy", || {
            let out = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.dir)
                .output()
                .expect("fusermount3");
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                out.status.success() || last.contains("busy"),
                "fusermount3 -u: {last}"
            );
            out.status.success()
        });
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "mount-noisefs exited with {status}: {}",
            self.log_text()
        );
    }

    /// SIGKILL, then the lazy unmount a dead FUSE mount needs.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
        let _ = Command::new("fusermount3").arg("-uz").arg(&self.dir).output();
        wait_until("the dead mount to go", || !is_mounted(&self.dir));
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("fusermount3").arg("-uz").arg(&self.dir).output();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The errno of the last failed libc call.
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in path")
}

/// getxattr, as bytes (None with the errno on failure).
pub fn getxattr(p: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let (cp, cn) = (cpath(p), CString::new(name).expect("name"));
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe { libc::getxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(last_errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// setxattr; Err(errno) on failure.
pub fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> Result<(), i32> {
    let (cp, cn) = (cpath(p), CString::new(name).expect("name"));
    // SAFETY: valid C strings and a value buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// Runs a command and asserts success.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A source tree with nested folders, files of several sizes, an empty file, symlinks and modes.
pub fn make_source(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).expect("dirs");
    std::fs::create_dir_all(root.join("empty-dir")).expect("dirs");
    std::fs::write(root.join("small.txt"), b"hello noisefs\n").expect("write");
    std::fs::write(root.join("empty"), b"").expect("write");
    std::fs::write(root.join("a/mid.bin"), pseudo_random(200_000, 1)).expect("write");
    std::fs::write(root.join("a/b/c/big.bin"), pseudo_random(3_000_000, 2)).expect("write");
    std::fs::write(root.join("a/b/unicode-é☃.txt"), "ünïcödé\n").expect("write");
    std::os::unix::fs::symlink("small.txt", root.join("link")).expect("symlink");
    std::os::unix::fs::symlink("../missing", root.join("a/dangling")).expect("symlink");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("a/mid.bin"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(root.join("a/b"), std::fs::Permissions::from_mode(0o750)).expect("chmod");
}

/// `diff -r` of two trees (symlinks compared as links).
pub fn same_tree(a: &Path, b: &Path) {
    sh(Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b));
}
