//! Helpers for end-to-end tests: a temporary repository and the real `noisefs` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch folder holding a repository (`repo/`) and test files.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A fresh environment; the repository is created with `block_size` if given.
    pub fn new(block_size: Option<&str>) -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        if let Some(bs) = block_size {
            env.ok(&["init", "--block-size", bs]);
        }
        env
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
