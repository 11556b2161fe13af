//! Scanning both sides of a sync session into path -> [`Side`] maps: the local folder (honouring
//! `.noisefsignore`, skipping what the tree cannot hold with a reason) and the tree folder; and the
//! names of sync's own temporary files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::plan::{PathKind, Side};
use super::sig;
use crate::error::IoContext;
use crate::tree::{self, Kind, Tree};
use crate::Result;

/// The ignore file read from a session's local root (gitignore syntax). It belongs to its folder: it
/// is never synced, so each side's rules only ever narrow what that side shares.
pub const IGNORE_FILE: &str = ".noisefsignore";
/// Prefix of the temporary files sync writes beside a target.
const TEMP_PREFIX: &str = ".noisefs-sync-";

/// A fresh name for a temporary file of sync: the prefix, 16 random hex digits and 8 hex digits of a
/// checksum of them, so that a user's file that merely starts with the prefix is never taken for one.
pub fn temp_name() -> String {
    let r = format!("{:016x}", rand::random::<u64>());
    format!("{TEMP_PREFIX}{r}-{}", temp_check(&r))
}

/// Whether `name` is one of sync's temporary files (see [`temp_name`]).
pub fn is_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    match rest.split_once('-') {
        Some((r, c)) => r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit()) && c == temp_check(r),
        None => false,
    }
}

fn temp_check(r: &str) -> String {
    let h = Sha256::digest(format!("noisefs sync temporary {r}"));
    data_encoding::HEXLOWER.encode(&h[..4])
}

/// What a scan found and what it skipped (path, reason).
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: BTreeMap<String, Side>,
    pub skipped: Vec<(String, String)>,
}

/// The ignore rules of the session rooted at `root`.
pub fn ignore_rules(root: &Path) -> Gitignore {
    let mut b = GitignoreBuilder::new(root);
    if root.join(IGNORE_FILE).exists() {
        if let Some(e) = b.add(root.join(IGNORE_FILE)) {
            tracing::warn!(path = %root.join(IGNORE_FILE).display(), error = %e, "bad ignore pattern");
        }
    }
    b.build().unwrap_or_else(|_| Gitignore::empty())
}

/// Whether `rel` (a path under the session root) is ignored by `rules`, is the root's ignore file, or
/// is a sync temp file.
pub fn ignored(rules: &Gitignore, rel: &str, dir: bool) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    rel == IGNORE_FILE || is_temp(name) || rules.matched_path_or_any_parents(rel, dir).is_ignore()
}

/// Scans the local folder `root`.
pub fn scan_local(root: &Path) -> Result<Scan> {
    let rules = ignore_rules(root);
    let mut scan = Scan::default();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else {
                scan.skipped
                    .push((path.display().to_string(), "name is not UTF-8".into()));
                continue;
            };
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if let Err(e) = tree::check_name(&name) {
                scan.skipped.push((rel, e.to_string()));
                continue;
            }
            if is_temp(&name) {
                // Left by a download that was killed (this process holds the repository lock, and it
                // is not downloading while it scans).
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(side) = sig::local_at(&path) else {
                if std::fs::symlink_metadata(&path).is_ok() {
                    scan.skipped
                        .push((rel, "special file (fifo, socket or device)".into()));
                }
                continue;
            };
            let is_dir = side.kind == PathKind::Dir;
            if ignored(&rules, &rel, is_dir) {
                continue;
            }
            if is_dir {
                stack.push((path, rel.clone()));
            }
            scan.entries.insert(rel, side);
        }
    }
    Ok(scan)
}

/// Scans the tree folder `root` (an inode), applying the local side's ignore rules `rules`.
pub fn scan_tree(tree: &Tree, root: u64, rules: &Gitignore) -> Result<Scan> {
    let mut scan = Scan::default();
    let mut ignored_dirs: Vec<String> = Vec::new();
    for (rel, _, rec) in tree.walk(root)? {
        if ignored_dirs.iter().any(|d| rel.starts_with(&format!("{d}/"))) {
            continue;
        }
        let kind = match rec.kind {
            Kind::Dir => PathKind::Dir,
            Kind::File => PathKind::File,
            Kind::Symlink => PathKind::Symlink,
            // Fifos, sockets and devices are not synced (as on the local side).
            k => {
                scan.skipped
                    .push((rel, format!("special file ({}) in the tree", k.name())));
                continue;
            }
        };
        if ignored(rules, &rel, kind == PathKind::Dir) {
            if kind == PathKind::Dir {
                ignored_dirs.push(rel);
            }
            continue;
        }
        scan.entries.insert(
            rel,
            Side {
                kind,
                sig: sig::tree(&rec),
            },
        );
    }
    Ok(scan)
}

/// Checks that writing `rel` under `root` stays inside `root`: no folder on the way is a symlink.
pub fn inside(root: &Path, rel: &str) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        tree::check_name(part)?;
        cur.push(part);
        if i + 1 < parts.len() {
            if let Ok(m) = std::fs::symlink_metadata(&cur) {
                if m.file_type().is_symlink() {
                    return Err(crate::Error::posix(
                        libc::ELOOP,
                        format!(
                            "{} is a symlink: writing through it would leave the sync folder",
                            cur.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_scan_skips_ignored_special_and_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::create_dir_all(r.join("build/x")).unwrap();
        std::fs::write(r.join("a/b/f.txt"), b"1").unwrap();
        std::fs::write(r.join("a/skip.log"), b"1").unwrap();
        let temp = temp_name();
        std::fs::write(r.join(&temp), b"1").unwrap();
        std::fs::write(r.join(".noisefs-sync-notes"), b"a user's file").unwrap();
        std::fs::write(r.join(IGNORE_FILE), b"*.log\nbuild/\n").unwrap();
        std::os::unix::fs::symlink("a/b", r.join("ln")).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(r.join("fifo"))
            .status()
            .unwrap()
            .success());
        let scan = scan_local(r).unwrap();
        let keys: Vec<&str> = scan.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, [".noisefs-sync-notes", "a", "a/b", "a/b/f.txt", "ln"]);
        assert!(
            !r.join(&temp).exists(),
            "a killed download's temp file is cleaned up"
        );
        assert!(r.join(".noisefs-sync-notes").exists(), "a user's file is not");
        assert_eq!(scan.entries["ln"].sig, "l:a/b");
        assert!(scan.entries["a/b/f.txt"].sig.starts_with("f:1:"));
        assert!(is_temp(&temp) && temp.starts_with(TEMP_PREFIX));
        for not in [
            ".noisefs-sync-123",
            ".noisefs-sync-0123456789abcdef-00000000",
            ".noisefs-sync-x-y",
            "x",
        ] {
            assert!(!is_temp(not), "{not}");
        }
        assert_eq!(scan.skipped.len(), 1);
        assert!(scan.skipped[0].1.contains("special file"));

        // Writing through a symlinked folder would escape the root.
        assert!(inside(r, "ln/evil").unwrap_err().to_string().contains("symlink"));
        assert_eq!(inside(r, "a/b/new").unwrap(), r.join("a/b/new"));
        assert!(inside(r, "a/../x").is_err());
        assert!(scan_local(&r.join("missing")).is_err());
    }
}
