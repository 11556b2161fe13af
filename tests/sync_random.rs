//! A seeded random run of two folders synced through one tree folder by the real daemon: creates,
//! in-place and editor-style edits, renames over other files, deletes and mode changes on both sides,
//! paced so that they land while the daemon syncs, with `kill -9` of the daemon twice. At the end both
//! folders agree and no written version is lost: every version a user wrote and did not overwrite or
//! delete on that side is in a file of either folder or among the versions sync kept.
//!
//! `NOISEFS_SYNC_RANDOM_SEED` picks the run (printed on failure) and `NOISEFS_SYNC_RANDOM_OPS` its
//! length (120 by default, for CI; `NOISEFS_SYNC_RANDOM_OPS=3000` for a long run).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{wait_until, Env};

/// The names files take (so that edits, renames over and conflicts happen often) and their folders.
const NAMES: [&str; 10] = [
    "a.txt", "b.txt", "c.md", "d1/e.txt", "d1/f.bin", "d1/g", "d2/h.txt", "d2/i.txt", "d2/j", "k",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Version `n`'s bytes: a header naming it, padded to a length no other version has. Every fourth is
/// over 1 MiB, so that edits also land while one is being stored or downloaded.
fn content(n: usize) -> Vec<u8> {
    let mut v = format!("version {n}\n").into_bytes();
    let big = if n.is_multiple_of(4) { 1 << 20 } else { 0 };
    v.resize(big + 64 + n * 7, b'.');
    v
}

/// The version a file holds, if it holds one whole.
fn version_in(bytes: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(bytes.get(..bytes.iter().position(|&b| b == b'\n')?)?).ok()?;
    let n: usize = text.strip_prefix("version ")?.parse().ok()?;
    (content(n) == bytes).then_some(n)
}

/// Every file below `root` (relative paths), sync's own temporaries left out.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".noisefs-sync-") {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn listing(root: &Path) -> Vec<(String, Vec<u8>)> {
    files(root)
        .into_iter()
        .map(|f| {
            let c = std::fs::read(root.join(&f)).unwrap_or_default();
            (f, c)
        })
        .collect()
}

struct Run {
    rng: Rng,
    next: usize,
    /// Versions a user overwrote or deleted on the side where they did it.
    destroyed: BTreeSet<usize>,
    /// Every path seen on either side.
    seen: BTreeSet<String>,
}

impl Run {
    /// Marks what the user is about to overwrite or delete at `path`.
    fn destroy(&mut self, path: &Path) {
        if let Some(n) = std::fs::read(path).ok().and_then(|b| version_in(&b)) {
            self.destroyed.insert(n);
        }
    }

    fn op(&mut self, root: &Path) {
        let existing = files(root);
        self.seen.extend(existing.iter().cloned());
        let pick = |rng: &mut Rng| existing.get(rng.below(existing.len().max(1))).cloned();
        match self.rng.below(10) {
            // Write a new version, in place or as an editor does (new file renamed over).
            0..=4 => {
                let rel = NAMES[self.rng.below(NAMES.len())];
                let path = root.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                self.destroy(&path);
                let n = self.next;
                self.next += 1;
                if self.rng.below(2) == 0 {
                    let _ = std::fs::write(&path, content(n));
                } else {
                    let tmp = path.with_file_name(format!(".edit-{n}"));
                    std::fs::write(&tmp, content(n)).unwrap();
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
            5 | 6 => {
                if let Some(rel) = pick(&mut self.rng) {
                    self.destroy(&root.join(&rel));
                    let _ = std::fs::remove_file(root.join(&rel));
                }
            }
            7 | 8 => {
                if let Some(rel) = pick(&mut self.rng) {
                    let to = root.join(NAMES[self.rng.below(NAMES.len())]);
                    if to != root.join(&rel) {
                        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                        self.destroy(&to);
                        let _ = std::fs::rename(root.join(&rel), &to);
                    }
                }
            }
            _ => {
                if let Some(rel) = pick(&mut self.rng) {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = [0o600, 0o640, 0o644, 0o755][self.rng.below(4)];
                    let _ = std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode));
                }
            }
        }
    }
}

#[test]
fn a_random_run_with_killed_daemons_loses_no_written_version() {
    let seed: u64 = std::env::var("NOISEFS_SYNC_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let ops: usize = std::env::var("NOISEFS_SYNC_RANDOM_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let env = Env::new(Some("4K"));
    let (a, b): (PathBuf, PathBuf) = (env.path("a"), env.path("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    env.ok(&["sync", "add", "a", "/docs"]);
    env.ok(&["sync", "add", "b", "/docs"]);
    let mut run = Run {
        rng: Rng(seed | 1),
        next: 1,
        destroyed: BTreeSet::new(),
        seen: BTreeSet::new(),
    };
    let mut daemon = Some(env.daemon());
    for i in 0..ops {
        let side = if run.rng.below(2) == 0 { &a } else { &b };
        run.op(side);
        // Pacing, so that changes land while the daemon syncs (no outcome depends on it).
        std::thread::sleep(std::time::Duration::from_millis(run.rng.below(25) as u64));
        if i == ops / 3 || i == 2 * ops / 3 {
            daemon.take().unwrap().kill();
            daemon = Some(env.daemon());
        }
    }
    daemon.take().unwrap().stop();

    // Bring both sides to rest; a deletion the guard holds is confirmed as a user would.
    for _ in 0..3 {
        let out = env.run(&["sync", "run", "--once"]);
        for id in ["1", "2"] {
            if env.ok(&["sync", "status", id]).contains("state:      held") {
                env.ok(&["sync", "resume", "--confirm", id]);
            }
        }
        if out.status.success() && listing(&a) == listing(&b) {
            break;
        }
    }
    wait_until("both folders agree", || listing(&a) == listing(&b));
    let out = env.ok(&["sync", "run", "--once"]);
    assert!(
        out.contains("session 1: in sync (0 steps)") && out.contains("session 2: in sync (0 steps)"),
        "{out}"
    );

    // Every version nobody overwrote or deleted is in a file or kept by sync.
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    for (rel, bytes) in listing(&a) {
        run.seen.insert(rel.clone());
        if let Some(n) = version_in(&bytes) {
            found.insert(n, rel);
        }
    }
    let mut kept_sizes = BTreeSet::new();
    for rel in &run.seen {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["sync", "versions", &format!("/docs/{rel}"), "--json"])).unwrap();
        kept_sizes.extend(v.as_array().unwrap().iter().map(|x| x["size"].as_u64().unwrap()));
    }
    let lost: Vec<usize> = (1..run.next)
        .filter(|n| !run.destroyed.contains(n) && !found.contains_key(n))
        .filter(|&n| !kept_sizes.contains(&(content(n).len() as u64)))
        .collect();
    assert!(
        lost.is_empty(),
        "seed {seed}: versions lost: {lost:?}; in files: {found:?}; destroyed by users: {:?}",
        run.destroyed
    );
    assert!(!found.is_empty(), "seed {seed}: the run left no file to check");
    env.ok(&["repo", "verify"]);
}
