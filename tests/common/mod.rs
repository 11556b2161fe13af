//! Helpers for end-to-end tests: a temporary repository and the real `noisefs` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch folder holding a repository (`repo/`) and test files.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A fresh environment with a repository (of `block_size` if given).
    pub fn new(block_size: Option<&str>) -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        match block_size {
            Some(bs) => env.ok(&["init", "--block-size", bs]),
            None => env.ok(&["init"]),
        };
        env
    }

    /// A fresh environment without a repository (`NOISEFS_HOME` names a folder that does not exist).
    pub fn without_repo() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_noisefs"));
        c.args(args)
            .env("NOISEFS_HOME", self.repo())
            .env_remove("NOISEFS_PASSWORD")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run noisefs")
    }

    /// Runs with `NOISEFS_PASSWORD` set to `password`.
    pub fn with_password(&self, args: &[&str], password: &str) -> Output {
        self.cmd(args)
            .env("NOISEFS_PASSWORD", password)
            .output()
            .expect("run noisefs")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "noisefs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "noisefs {args:?} should have failed");
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// Stores one path and returns its link.
    pub fn put(&self, path: &Path) -> String {
        let out = self.ok(&["put", path.to_str().expect("utf-8 path")]);
        out.trim().to_string()
    }

    /// Every block file in the repository.
    pub fn block_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(self.repo().join("blocks")).expect("blocks dir") {
            for f in std::fs::read_dir(shard.expect("shard").path()).expect("shard dir") {
                let p = f.expect("entry").path();
                if !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(".")
                    .starts_with('.')
                {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Pearson's chi-square statistic of byte frequencies against uniform (255 degrees of freedom).
pub fn chi_square(data: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let expected = data.len() as f64 / 256.0;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Far in the tail for 255 degrees of freedom (mean 255, sd 22.6): about 7 sd.
pub const CHI_SQUARE_LIMIT: f64 = 420.0;

/// Waits until `cond` holds, checking every 20 ms; panics naming `what` after a minute. Tests decide by
/// the condition, never by how long it took.
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

/// A `noisefs daemon` child process on an environment's repository.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Env {
    /// Starts the daemon and waits until its socket answers.
    pub fn daemon(&self) -> Daemon {
        let log = self.path(&format!("daemon-{}.log", rand_suffix()));
        let child = self
            .cmd(&["daemon", "-v"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start daemon");
        let sock = self.repo().join("daemon.sock");
        let mut d = Daemon { child, log };
        wait_until("the daemon socket", || {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("daemon exited with {status}: {}", d.log_text());
            }
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        d
    }
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill with a valid pid and signal number has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait daemon");
        assert!(
            status.success(),
            "daemon exited with {status}: {}",
            self.log_text()
        );
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().expect("kill daemon");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Turns the network on for `env`: listening on a free loopback port, a DHT server, knowing `peers`
/// (full addresses).
pub fn net_on_loopback(env: &Env, peers: &[&str]) {
    let mut args = vec!["net", "on", "--listen", "/ip4/127.0.0.1/tcp/0", "--dht", "server"];
    for p in peers {
        args.extend(["--peer", p]);
    }
    env.ok(&args);
}

/// The first full address `noisefs id` prints for `env`'s node.
pub fn node_address(env: &Env) -> String {
    let out = env.ok(&["id"]);
    let addr = out.lines().nth(1).expect("an address line").to_string();
    assert!(
        addr.starts_with("/ip4/127.0.0.1/tcp/") && addr.contains("/p2p/"),
        "{out}"
    );
    addr
}
