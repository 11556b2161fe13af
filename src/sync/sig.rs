//! Signatures of both sides of a synced path, and the re-check of a local file right before sync
//! replaces it. A signature changes whenever the entry's content, type or permission bits do:
//!
//! - local file `f:<size>:<mtime ns>:<inode>:<ctime ns>:<mode>`: inode and ctime catch a file replaced
//!   by one of the same size and mtime (`mv` over it, `cp -p`, `tar x`, `rsync -t`); local folder
//!   `d:<mode>`; local symlink `l:<target>`;
//! - tree file `<link> <mode>` (`empty <mode>` for a file never written, [`BUSY`] while being written);
//!   tree folder `dir <mode>`; tree symlink `symlink:<target>`.
//!
//! Modes are the permission bits only (`0o777`): sync never carries setuid, setgid or sticky.
//! Signatures recorded by earlier versions (`f:<size>:<mtime ns>`, `d`, `dir`, a bare link) still
//! compare equal to today's form of the same state ([`same`]), so an upgrade does not resync everything.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::plan::{PathKind, Side, BUSY};
use crate::error::IoContext;
use crate::tree::{self, Inode, Kind};
use crate::Result;

/// Permission bits sync carries (not setuid, setgid or sticky).
pub const PERM: u32 = 0o777;

/// A file modified this recently (ns) may be modified again without its times changing (timestamps
/// are coarse): its content is hashed so that a re-check can tell.
const RACY_NS: i64 = 2_000_000_000;

/// The local signature of an entry's metadata (`None` for special files).
pub fn local(path: &Path, m: &std::fs::Metadata) -> Option<Side> {
    let ft = m.file_type();
    if ft.is_dir() {
        Some(Side {
            kind: PathKind::Dir,
            sig: format!("d:{:o}", m.mode() & PERM),
        })
    } else if ft.is_file() {
        Some(Side {
            kind: PathKind::File,
            sig: format!(
                "f:{}:{}:{}:{}:{:o}",
                m.len(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                m.ino(),
                m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                m.mode() & PERM
            ),
        })
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path).ok()?;
        Some(Side {
            kind: PathKind::Symlink,
            sig: format!("l:{}", target.to_string_lossy()),
        })
    } else {
        None
    }
}

/// The local signature of the entry at `path`, if it exists and is not a special file.
pub fn local_at(path: &Path) -> Option<Side> {
    let m = std::fs::symlink_metadata(path).ok()?;
    local(path, &m)
}

/// The tree signature of an inode record.
pub fn tree(rec: &Inode) -> String {
    let base = tree::signature(rec);
    match rec.kind {
        Kind::Symlink => base,
        Kind::File if base == BUSY => base,
        _ => format!("{base} {:o}", rec.mode & PERM),
    }
}

/// Whether `cur` is the same state as `recorded` (a base signature, possibly in an earlier form).
pub fn same(recorded: &str, cur: &str) -> bool {
    if recorded == cur {
        return true;
    }
    let legacy = match recorded {
        "d" | "dir" => true,
        r if r.starts_with("f:") => r.matches(':').count() == 2,
        r if r.starts_with("l:") || r.starts_with("symlink:") || r == BUSY => false,
        r => !r.contains(' '),
    };
    legacy
        && cur.len() > recorded.len()
        && cur.starts_with(recorded)
        && matches!(cur.as_bytes()[recorded.len()], b':' | b' ')
}

/// A local file's state taken before a download replaces it: its signature and, when it was modified
/// so recently that a further write might not show in its times, a hash of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub sig: String,
    pub ino: u64,
    pub hash: Option<[u8; 32]>,
}

impl Check {
    /// The state of `path` now (`None`: absent or a special file).
    pub fn take(path: &Path) -> Result<Option<Check>> {
        let Ok(m) = std::fs::symlink_metadata(path) else {
            return Ok(None);
        };
        let Some(side) = local(path, &m) else {
            return Ok(None);
        };
        let changed = m.ctime() * 1_000_000_000 + m.ctime_nsec();
        let hash = if m.is_file() && crate::clock::now_ns() - changed < RACY_NS {
            Some(hash_file(path)?)
        } else {
            None
        };
        Ok(Some(Check {
            sig: side.sig,
            ino: m.ino(),
            hash,
        }))
    }

    /// Whether `path` still holds what this check saw (same signature and, if hashed, same content).
    pub fn holds(&self, path: &Path) -> Result<bool> {
        if local_at(path).map(|s| s.sig).as_deref() != Some(self.sig.as_str()) {
            return Ok(false);
        }
        match self.hash {
            Some(h) => Ok(hash_file(path)? == h),
            None => Ok(true),
        }
    }

    /// Whether the entry at `path` (this check's entry after it was renamed aside, which changes a
    /// file's ctime) is still what this check saw, unwritten: for a file the same inode, size and mtime.
    pub fn same_entry(&self, path: &Path) -> bool {
        let Ok(m) = std::fs::symlink_metadata(path) else {
            return false;
        };
        if !m.is_file() {
            return local(path, &m).is_some_and(|s| s.sig == self.sig);
        }
        let fields: Vec<&str> = self.sig.split(':').collect();
        fields.len() == 6
            && m.ino() == self.ino
            && fields[1] == m.len().to_string()
            && fields[2] == (m.mtime() * 1_000_000_000 + m.mtime_nsec()).to_string()
    }
}

/// SHA-256 of a file's content.
pub fn hash_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn earlier_signature_forms_compare_equal_to_todays() {
        assert!(same("d", "d:755"));
        assert!(same("dir", "dir 700"));
        assert!(same("f:3:100", "f:3:100:7:9:644"));
        assert!(
            !same("f:3:100", "f:3:1000:7:9:644"),
            "a longer mtime is another mtime"
        );
        assert!(
            !same("f:3:100:7:9:644", "f:3:100:7:9:600"),
            "a mode change is a change"
        );
        assert!(same("noisefs://abc#key", "noisefs://abc#key 644"));
        assert!(same("empty", "empty 644"));
        assert!(!same("l:a", "l:a:b"), "symlink targets are compared whole");
        assert!(!same("symlink:a", "symlink:a b"));
        assert!(!same("dirty", "dirty 644"));
        assert!(!same("noisefs://abc 644", "noisefs://abc 644 1"));
        assert!(!same("", "d:755"));
    }

    #[test]
    fn local_signatures_see_inode_ctime_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"aaaa").unwrap();
        let a = local_at(&p).unwrap().sig;
        // The same size and mtime in a new inode (what `mv` over it or `cp -p` leaves).
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let q = dir.path().join("g");
        std::fs::write(&q, b"bbbb").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&q)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&q, &p).unwrap();
        let b = local_at(&p).unwrap().sig;
        assert_ne!(a, b);
        assert_eq!(a.split(':').nth(1), b.split(':').nth(1), "same size");
        assert_eq!(a.split(':').nth(2), b.split(':').nth(2), "same mtime");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4600)).unwrap();
        assert!(local_at(&p).unwrap().sig.ends_with(":600"), "no setuid bit");
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::set_permissions(dir.path().join("d"), std::fs::Permissions::from_mode(0o1700)).unwrap();
        assert_eq!(local_at(&dir.path().join("d")).unwrap().sig, "d:700");
        assert!(local_at(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn a_check_tells_an_unchanged_file_from_a_changed_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"mine").unwrap();
        let check = Check::take(&p).unwrap().unwrap();
        assert!(check.hash.is_some(), "just written: hashed");
        assert!(check.holds(&p).unwrap());
        // A write the times cannot show (same signature, other bytes) is caught by the hash.
        let mut forged = check.clone();
        forged.hash = Some([0; 32]);
        assert!(!forged.holds(&p).unwrap());
        // An unhashed check trusts the signature.
        forged.hash = None;
        assert!(forged.holds(&p).unwrap());
        // Renamed aside unchanged: the same entry; written after: not.
        let aside = dir.path().join("aside");
        std::fs::rename(&p, &aside).unwrap();
        assert!(check.same_entry(&aside));
        assert!(!check.same_entry(&p), "nothing is left at the name");
        std::fs::write(&aside, b"longer edit").unwrap();
        assert!(!check.same_entry(&aside));
        std::fs::rename(&aside, &p).unwrap();
        assert!(!check.holds(&p).unwrap());
        let link = dir.path().join("ln");
        std::os::unix::fs::symlink("f", &link).unwrap();
        let lcheck = Check::take(&link).unwrap().unwrap();
        assert!(lcheck.hash.is_none() && lcheck.same_entry(&link) && lcheck.holds(&link).unwrap());
        assert!(Check::take(&dir.path().join("missing")).unwrap().is_none());
    }
}
