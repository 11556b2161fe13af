//! Copying between the local filesystem and the tree: [`import`] stores a local file or folder into a
//! tree path, [`export`] writes a tree file or folder to a local path (built in a temporary sibling and
//! renamed into place, so a failed export leaves nothing behind).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Content, Kind, Tree};
use crate::error::IoContext;
use crate::hold::Hold;
use crate::place::{local_mode, TempSibling};
use crate::transfer::{FileInfo, Sealer};
use crate::{Error, Result};

/// What a copy covered, and what it skipped (path, reason).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CopyReport {
    /// The tree path (import) or local path (export) written.
    pub target: String,
    pub files: u64,
    pub folders: u64,
    pub bytes: u64,
    pub skipped: Vec<(String, String)>,
}

/// Where a copy to `dest` lands: inside `dest` when it is an existing folder, else at `dest` itself.
fn destination(t: &Tree, dest: &str, name: &str) -> Result<(u64, String)> {
    let dest = super::normalize_path(dest);
    match t.resolve(&dest) {
        Ok(ino) if t.getattr(ino)?.kind == Kind::Dir => {
            if t.lookup(ino, name).is_ok() {
                return Err(Error::posix(
                    libc::EEXIST,
                    format!("tree path {}/{name}", dest.trim_end_matches('/')),
                ));
            }
            Ok((ino, name.to_string()))
        }
        Ok(_) => Err(Error::posix(libc::EEXIST, format!("tree path {dest}"))),
        Err(e) if e.errno() == libc::ENOENT => {
            let (dir, last) = dest.rsplit_once('/').unwrap_or(("", &dest));
            Ok((t.resolve(dir)?, last.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// Stores local `src` (file, folder or symlink) at tree path `dest`.
pub async fn import(t: &Tree, hold: &Hold, session: &Sealer, src: &Path, dest: &str) -> Result<CopyReport> {
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::posix(
                libc::EINVAL,
                format!("{} has no name to import under", src.display()),
            )
        })?;
    let (parent, name) = destination(t, dest, &name)?;
    let mut report = CopyReport {
        target: format!("{}/{name}", t.path_of(parent)?.trim_end_matches('/')),
        ..CopyReport::default()
    };
    let mut stack: Vec<(PathBuf, u64, String)> = vec![(src.to_path_buf(), parent, name)];
    // Folder times are set last, once their entries no longer change them.
    let mut times = Vec::new();
    while let Some((path, dir, name)) = stack.pop() {
        super::check_name(&name)?;
        let meta = std::fs::symlink_metadata(&path).at(&path)?;
        let ft = meta.file_type();
        let owner = t.getattr(dir)?;
        if ft.is_dir() {
            let ino = t.mkdir(dir, &name, meta.mode(), owner.uid, owner.gid)?.ino;
            times.push((ino, mtime_of(&meta)));
            report.folders += 1;
            for entry in std::fs::read_dir(&path).at(&path)? {
                let entry = entry.at(&path)?;
                match entry.file_name().into_string() {
                    Ok(n) => stack.push((entry.path(), ino, n)),
                    Err(raw) => report.skipped.push((
                        entry.path().display().to_string(),
                        format!("name {raw:?} is not UTF-8"),
                    )),
                }
            }
        } else if ft.is_file() {
            let mut file = std::fs::File::open(&path).at(&path)?;
            let max = t.inline_max();
            let mut small = Vec::new();
            if meta.len() <= max {
                // Read one byte past the limit, to see a file that grew meanwhile.
                std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, max + 1), &mut small)
                    .at(&path)?;
            }
            let (content, size) = if meta.len() <= max && small.len() as u64 <= max {
                let size = small.len() as u64;
                (Content::Data(small), size)
            } else {
                let file = std::fs::File::open(&path).at(&path)?;
                let info = FileInfo {
                    name: name.clone(),
                    mtime: meta.mtime(),
                    mtime_ns: meta.mtime_nsec() as u32,
                    mode: meta.mode() & 0o7777,
                    media_type: crate::media::by_name(&path),
                };
                let (link, size) = session.put_reader(hold, file, info).await?;
                session.commit().await?;
                (Content::Link(link.to_string()), size)
            };
            t.put_content(dir, &name, &content, size, mtime_of(&meta), meta.mode(), Some(""))?;
            report.files += 1;
            report.bytes += size;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).at(&path)?;
            times.push((
                t.symlink(dir, &name, &target.to_string_lossy(), owner.uid, owner.gid)?
                    .ino,
                mtime_of(&meta),
            ));
        } else {
            // A fifo, socket or device: kept as metadata (type, mode, device number), no content.
            let kind = Kind::from_mode(meta.mode()).filter(|k| k.is_special());
            match kind {
                Some(kind) => times.push((
                    t.mknod(dir, &name, kind, meta.mode(), meta.rdev(), owner.uid, owner.gid)?
                        .ino,
                    mtime_of(&meta),
                )),
                None => report
                    .skipped
                    .push((path.display().to_string(), "a file of unknown type".into())),
            }
        }
    }
    for (ino, mtime) in times.into_iter().rev() {
        let set = super::SetAttr {
            mtime: Some(mtime),
            ..Default::default()
        };
        t.setattr(ino, set).await?;
    }
    Ok(report)
}

/// Recreates a fifo or a device node at `path` with its mode and time. A device needs privilege
/// (CAP_MKNOD): without it the node is left out, and the reason given.
fn make_special(path: &Path, kind: Kind, attr: &super::Attr) -> std::result::Result<(), String> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    let flag = match kind {
        Kind::Fifo => SFlag::S_IFIFO,
        Kind::CharDevice => SFlag::S_IFCHR,
        _ => SFlag::S_IFBLK,
    };
    let perm = Mode::from_bits_truncate(local_mode(attr.mode) as nix::libc::mode_t);
    match mknod(path, flag, perm, attr.rdev as nix::libc::dev_t) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) => return Err(format!("a {} needs root to be made", kind.name())),
        Err(e) => return Err(format!("cannot make the {}: {e}", kind.name())),
    }
    // mknod applies the umask: set the mode the tree says.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(local_mode(attr.mode)))
        .map_err(|e| e.to_string())?;
    crate::place::set_symlink_mtime(path, attr.mtime).map_err(|e| e.to_string())
}

/// A local entry's modification time in nanoseconds since the epoch.
fn mtime_of(meta: &std::fs::Metadata) -> i64 {
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

/// Writes tree path `src` to local `dest`; an existing `dest` is refused unless `force`.
pub async fn export(t: &Tree, src: &str, dest: &Path, force: bool) -> Result<CopyReport> {
    let ino = t.resolve(src)?;
    // An existing folder means "into this folder" (the tree's root keeps its target as given).
    let name = crate::tree::normalize_path(src)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let into = std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) && !name.is_empty();
    let dest = &if into {
        dest.join(&name)
    } else {
        dest.to_path_buf()
    };
    crate::place::check_target(dest, force)?;
    let tmp = TempSibling::new(dest, ".noisefs-export-");
    let mut report = CopyReport {
        target: dest.display().to_string(),
        ..CopyReport::default()
    };
    write_out(t, ino, tmp.path(), &mut report).await?;
    // What was left out is named where it would have been.
    for (p, _) in &mut report.skipped {
        if let Ok(rel) = Path::new(p.as_str()).strip_prefix(tmp.path()) {
            *p = dest.join(rel).display().to_string();
        }
    }
    tmp.replace()?;
    Ok(report)
}

async fn write_out(t: &Tree, top: u64, at: &Path, report: &mut CopyReport) -> Result<()> {
    let mut stack = vec![(top, at.to_path_buf())];
    let mut dirs = Vec::new();
    while let Some((ino, path)) = stack.pop() {
        let attr = t.getattr(ino)?;
        match attr.kind {
            Kind::Dir => {
                std::fs::create_dir(&path).at(&path)?;
                report.folders += 1;
                for e in t.readdir(ino)? {
                    stack.push((e.ino, path.join(&e.name)));
                }
                dirs.push((path, attr));
            }
            Kind::Symlink => {
                std::os::unix::fs::symlink(t.readlink(ino)?, &path).at(&path)?;
                crate::place::set_symlink_mtime(&path, attr.mtime)?;
            }
            Kind::Socket => report.skipped.push((
                path.display().to_string(),
                "a socket is not exported (it only means something to the program listening on it)".into(),
            )),
            k @ (Kind::Fifo | Kind::CharDevice | Kind::BlockDevice) => {
                if let Err(why) = make_special(&path, k, &attr) {
                    report.skipped.push((path.display().to_string(), why));
                }
            }
            Kind::File => {
                let out = std::fs::File::create(&path).at(&path)?;
                let written = t
                    .copy_to(ino, Box::new(out.try_clone().at(&path)?), path.clone())
                    .await?;
                out.set_permissions(std::fs::Permissions::from_mode(local_mode(attr.mode)))
                    .at(&path)?;
                out.set_modified(crate::place::system_time(attr.mtime))
                    .at(&path)?;
                report.files += 1;
                report.bytes += written;
            }
        }
    }
    // Folder times and modes last, after their content was written.
    for (path, attr) in dirs.into_iter().rev() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(local_mode(attr.mode))).at(&path)?;
        std::fs::File::open(&path)
            .and_then(|d| d.set_modified(crate::place::system_time(attr.mtime)))
            .at(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::block::BlockSize;
    use crate::repo::{Config, Repo};
    use crate::transfer::no_progress;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn import_and_export_folders_files_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            block_size: BlockSize::new(4096).unwrap(),
            ..Config::default()
        };
        let repo = Arc::new(Repo::init(&dir.path().join("repo"), cfg).unwrap());
        let t = Tree::new(repo.clone()).unwrap();
        let session = Sealer::new(repo.clone(), no_progress());
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), b"alpha").unwrap();
        std::fs::write(src.join("sub/b.bin"), vec![7u8; 20_000]).unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("ln")).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(src.join("fifo"))
            .status()
            .unwrap()
            .success());

        // Into an existing folder: the local name is kept; special files are kept as metadata.
        let r = import(&t, &repo.hold().await, &session, &src, "/").await.unwrap();
        assert_eq!(
            (r.files, r.folders, r.bytes, r.target.as_str()),
            (2, 2, 20_005, "/src")
        );
        assert!(r.skipped.is_empty(), "{:?}", r.skipped);
        assert_eq!(
            t.getattr(t.resolve("/src/fifo").unwrap()).unwrap().kind,
            Kind::Fifo
        );
        assert_eq!(t.readlink(t.resolve("/src/ln").unwrap()).unwrap(), "a.txt");
        // To a new name; over an existing entry or under a missing folder it fails.
        let r = import(
            &t,
            &repo.hold().await,
            &session,
            &src.join("a.txt"),
            "/renamed.txt",
        )
        .await
        .unwrap();
        assert_eq!(r.target, "/renamed.txt");
        assert_eq!(
            import(
                &t,
                &repo.hold().await,
                &session,
                &src.join("a.txt"),
                "/renamed.txt"
            )
            .await
            .unwrap_err()
            .errno(),
            libc::EEXIST
        );
        assert_eq!(
            import(&t, &repo.hold().await, &session, &src, "/")
                .await
                .unwrap_err()
                .errno(),
            libc::EEXIST
        );
        assert_eq!(
            import(&t, &repo.hold().await, &session, &src.join("a.txt"), "/no/such/x")
                .await
                .unwrap_err()
                .errno(),
            libc::ENOENT
        );
        assert_eq!(
            import(&t, &repo.hold().await, &session, Path::new("/"), "/x")
                .await
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );

        // Export back: equal content, modes and times; an existing target needs `force`.
        let out = dir.path().join("out");
        let r = export(&t, "/src", &out, false).await.unwrap();
        assert_eq!((r.files, r.folders, r.bytes), (2, 2, 20_005));
        assert_eq!(std::fs::read(out.join("sub/b.bin")).unwrap(), vec![7u8; 20_000]);
        assert_eq!(std::fs::read_link(out.join("ln")).unwrap(), Path::new("a.txt"));
        let (m1, m2) = (
            std::fs::metadata(src.join("a.txt")).unwrap(),
            std::fs::metadata(out.join("a.txt")).unwrap(),
        );
        assert_eq!((m1.mode(), m1.mtime()), (m2.mode(), m2.mtime()));
        // An existing folder means "into it"; --force replaces files there, never a folder.
        export(&t, "/src", &out, false).await.unwrap();
        assert_eq!(std::fs::read(out.join("src/a.txt")).unwrap(), b"alpha");
        assert!(matches!(
            export(&t, "/src", &out, false).await,
            Err(Error::TargetExists { .. })
        ));
        let e = export(&t, "/src", &out, true).await.unwrap_err();
        assert_eq!(e.errno(), libc::EISDIR);
        assert!(out.join("src/sub/b.bin").exists(), "nothing deleted");
        export(&t, "/renamed.txt", &out, false).await.unwrap();
        std::fs::write(out.join("renamed.txt"), b"old").unwrap();
        export(&t, "/renamed.txt", &out, true).await.unwrap();
        assert_eq!(std::fs::read(out.join("renamed.txt")).unwrap(), b"alpha");
        assert!(out.join("a.txt").exists());
        // A failed export leaves nothing behind.
        assert!(export(&t, "/missing", &dir.path().join("none"), false)
            .await
            .is_err());
        let leftovers = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".noisefs-")
        });
        assert_eq!(leftovers.count(), 0);
    }
}
