//! Writing beside a target and renaming into place: a [`TempSibling`] is a hidden path next to the
//! target that is removed (file or whole folder) unless it is placed, so a failed or interrupted write
//! never leaves a partial target and never leaves its temporary behind in the normal error paths.

use std::path::{Path, PathBuf};

use crate::error::IoContext;
use crate::{Error, Result};

/// A temporary path beside `target`, removed when dropped unless [`TempSibling::place`]d.
#[derive(Debug)]
pub struct TempSibling {
    path: PathBuf,
    target: PathBuf,
    parent: PathBuf,
    placed: bool,
}

impl TempSibling {
    /// A fresh name `<prefix><random>` in `target`'s folder (the current folder for a bare name).
    /// Nothing is created: the caller writes a file, folder or symlink at [`TempSibling::path`].
    pub fn new(target: &Path, prefix: &str) -> TempSibling {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        TempSibling {
            path: parent.join(format!("{prefix}{:016x}", rand::random::<u64>())),
            target: target.to_path_buf(),
            parent,
            placed: false,
        }
    }

    /// A temporary named `name` in `target`'s folder.
    pub fn named(target: &Path, name: &str) -> TempSibling {
        let mut t = TempSibling::new(target, "");
        t.path = t.parent.join(name);
        t
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary over the target (atomic for files and symlinks; an existing folder is
    /// refused by the kernel).
    pub fn place(mut self) -> Result<()> {
        std::fs::rename(&self.path, &self.target).at(&self.target)?;
        self.placed = true;
        Ok(())
    }

    /// Renames the temporary to the target only if nothing is there (`EEXIST` otherwise): nothing that
    /// appears at the target meanwhile is ever replaced.
    pub fn place_new(&mut self) -> std::io::Result<()> {
        rename_noreplace(&self.path, &self.target)?;
        self.placed = true;
        Ok(())
    }

    /// Puts the temporary in place of whatever is at the target, a folder included: the old target
    /// is moved aside, the temporary renamed in, then the old one removed; if the rename fails the old
    /// target is put back.
    pub fn replace(mut self) -> Result<()> {
        if std::fs::symlink_metadata(&self.target).is_err() {
            return self.place();
        }
        let old = self
            .parent
            .join(format!(".noisefs-old-{:016x}", rand::random::<u64>()));
        std::fs::rename(&self.target, &old).at(&self.target)?;
        if let Err(e) = std::fs::rename(&self.path, &self.target) {
            let _ = std::fs::rename(&old, &self.target);
            return Err(Error::io(&self.target, e));
        }
        self.placed = true;
        remove_any(&old);
        Ok(())
    }
}

impl Drop for TempSibling {
    fn drop(&mut self) {
        if !self.placed {
            remove_any(&self.path);
        }
    }
}

/// Checks that a write may go to `target`: nothing is there, or `force` and a file or symlink (a
/// folder is never replaced).
pub fn check_target(target: &Path, force: bool) -> Result<()> {
    match std::fs::symlink_metadata(target) {
        Ok(_) if !force => Err(Error::TargetExists {
            path: target.to_path_buf(),
        }),
        Ok(m) if m.is_dir() => Err(Error::posix(
            libc::EISDIR,
            format!(
                "{} is a folder: --force replaces files, never folders (remove it or choose another target)",
                target.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Renames `from` to `to` unless `to` exists (`EEXIST`), atomically (`renameat2` with
/// `RENAME_NOREPLACE`; where the filesystem lacks it, a hard link and an unlink, which fail the same way).
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(std::io::Error::from_raw_os_error(e as i32)),
    }
}

/// The mode a file or folder written from a manifest or the tree gets on local disk: its permission
/// bits only (never setuid, setgid or sticky, whoever made the manifest) less the process umask, as
/// `open(2)` and `mkdir(2)` would apply it.
pub fn local_mode(mode: u32) -> u32 {
    mode & 0o777 & !umask()
}

/// A time in nanoseconds since the epoch as the standard library takes it (times before the epoch are
/// held to it).
pub fn system_time(ns: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64)
}

/// Sets the modification time of the symlink at `path` itself (not of what it points at), to the
/// nanosecond; its access time is left as it is.
pub fn set_symlink_mtime(path: &Path, ns: i64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::posix(libc::EINVAL, format!("{} holds a NUL byte", path.display())))?;
    let ns = ns.max(0);
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: ns / 1_000_000_000,
            tv_nsec: ns % 1_000_000_000,
        },
    ];
    // SAFETY: `c` is a NUL-terminated path and `times` two timespecs, as utimensat(2) reads them.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The process umask, read once: from `/proc/self/status`, or where that lacks it by setting and
/// restoring it at first use.
pub fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        });
        from_proc.unwrap_or_else(|| {
            let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            nix::sys::stat::umask(old);
            old.bits()
        }) & 0o777
    })
}

/// Removes a file, symlink or folder tree, ignoring failures (cleanup only).
pub fn remove_any(path: &Path) {
    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_modes_drop_special_bits_and_the_umask() {
        let mask = super::umask();
        assert_eq!(mask & !0o777, 0);
        assert_eq!(super::local_mode(0o7777), 0o777 & !mask);
        assert_eq!(super::local_mode(0o4755) & 0o7000, 0);
    }

    use super::*;

    #[test]
    fn unplaced_temporaries_are_removed_and_placed_ones_replace_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");

        // Dropped without placing: the temporary folder is gone, the target never appeared.
        let t = TempSibling::new(&target, ".x-");
        std::fs::create_dir(t.path()).unwrap();
        std::fs::write(t.path().join("f"), b"1").unwrap();
        let p = t.path().to_path_buf();
        assert!(p.starts_with(dir.path()) && p.file_name().unwrap().to_string_lossy().starts_with(".x-"));
        drop(t);
        assert!(!p.exists() && !target.exists());

        // Placed: a file appears under the target's name.
        let t = TempSibling::new(&target, ".x-");
        std::fs::write(t.path(), b"new").unwrap();
        t.place().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");

        // A folder replaces a file and then a folder; nothing is left beside it.
        let t = TempSibling::new(&target, ".x-");
        std::fs::create_dir(t.path()).unwrap();
        t.replace().unwrap();
        assert!(target.is_dir());
        let t = TempSibling::new(&target, ".x-");
        std::fs::create_dir(t.path()).unwrap();
        std::fs::write(t.path().join("g"), b"2").unwrap();
        t.replace().unwrap();
        assert_eq!(std::fs::read(target.join("g")).unwrap(), b"2");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out")]);
    }

    #[test]
    fn a_failed_placement_keeps_the_old_target_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        std::fs::write(&target, b"old").unwrap();
        // Nothing was written at the temporary: the rename fails.
        let t = TempSibling::new(&target, ".x-");
        let p = t.path().to_path_buf();
        assert!(t.replace().is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert!(!p.exists());
        // A bare name lives in the current folder.
        assert_eq!(
            TempSibling::new(Path::new("f"), ".y-").path().parent(),
            Some(Path::new("."))
        );
        // A folder cannot be renamed over a non-empty folder with place().
        std::fs::remove_file(&target).unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"k").unwrap();
        let t = TempSibling::new(&target, ".x-");
        std::fs::create_dir(t.path()).unwrap();
        let err = t.place().unwrap_err();
        assert!(err.to_string().contains("out"), "{err}");
        assert!(target.join("keep").exists());
    }

    #[test]
    fn placing_new_never_replaces_what_appeared_at_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut t = TempSibling::named(&target, ".named");
        assert_eq!(t.path(), dir.path().join(".named"));
        std::fs::write(t.path(), b"download").unwrap();
        std::fs::write(&target, b"user's").unwrap();
        let e = t.place_new().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert_eq!(std::fs::read(&target).unwrap(), b"user's");
        std::fs::remove_file(&target).unwrap();
        t.place_new().unwrap();
        drop(t);
        assert_eq!(std::fs::read(&target).unwrap(), b"download");
        assert!(!dir.path().join(".named").exists());
        // Symlinks move too, and a missing source is an error.
        std::os::unix::fs::symlink("out", dir.path().join("ln")).unwrap();
        rename_noreplace(&dir.path().join("ln"), &dir.path().join("ln2")).unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("ln2")).unwrap(),
            Path::new("out")
        );
        assert!(rename_noreplace(&dir.path().join("ln"), &dir.path().join("ln3")).is_err());
    }
}
