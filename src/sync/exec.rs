//! Executing one queued sync step. A step first checks that both sides still look as planned (else it
//! is dropped and the next pass plans again), then acts, then records the new synced state and leaves
//! the queue in one transaction. Running a step twice is harmless; a step that fails stays queued.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::plan::{Action, Base};
use super::scan::{inside, local_side, TEMP_PREFIX};
use super::{mkdir_p, Queued, Session, Syncs};
use crate::error::IoContext;
use crate::jobs::JobContext;
use crate::place::TempSibling;
use crate::queue::Item;
use crate::transfer::FileInfo;
use crate::tree::{self, Kind, Tree};
use crate::{Error, Result};

/// Bytes read from the tree per request while downloading or comparing.
const CHUNK: u64 = 1 << 20;

/// Runs queued sync step `item`.
pub async fn execute(cx: &JobContext, item: &Item) -> Result<()> {
    let q: Queued = super::decode("queue_items", &item.payload)?;
    let syncs = Syncs::open(cx.repo.state())?;
    let s = match syncs.get(q.session) {
        Ok(s) => s,
        Err(_) => return cx.queue.complete(item.seq), // the session was removed
    };
    if s.paused {
        cx.queue.push(&item.kind, &item.key, &item.payload, 60_000)?;
        return Ok(());
    }
    let step = &q.step;
    let ctx = Ctx {
        cx,
        tree: &cx.tree,
        s: &s,
        local: inside(&s.local, &step.rel)?,
        tree_path: format!("{}/{}", s.tree.trim_end_matches('/'), step.rel),
    };
    let (cur_local, cur_tree) = (ctx.local_sig(), ctx.tree_side()?);
    let cur_tree_sig = cur_tree.as_ref().map(|t| t.1.clone()).unwrap_or_default();
    if cur_local != step.local || cur_tree_sig != step.tree {
        tracing::debug!(rel = %step.rel, "changed since planned; the next pass plans again");
        return cx.queue.complete(item.seq);
    }
    let base = match step.action {
        Action::Upload => Some(ctx.upload().await?),
        Action::Download => Some(ctx.download().await?),
        Action::MkdirTree => {
            mkdir_p(ctx.tree, &ctx.tree_path)?;
            Some(Base {
                local: step.local.clone(),
                tree: "dir".into(),
            })
        }
        Action::MkdirLocal => {
            std::fs::create_dir_all(&ctx.local).at(&ctx.local)?;
            if let Some((ino, _)) = cur_tree {
                let mode = ctx.tree.getattr(ino)?.mode;
                std::fs::set_permissions(&ctx.local, std::fs::Permissions::from_mode(mode)).at(&ctx.local)?;
            }
            Some(Base {
                local: "d".into(),
                tree: step.tree.clone(),
            })
        }
        Action::DeleteTree => match ctx.delete_tree() {
            Ok(()) => None,
            Err(e) if e.errno() == libc::ENOTEMPTY => return cx.queue.complete(item.seq),
            Err(e) => return Err(e),
        },
        Action::DeleteLocal => match ctx.delete_local() {
            Ok(()) => None,
            Err(e) if e.errno() == libc::ENOTEMPTY => return cx.queue.complete(item.seq),
            Err(e) => return Err(e),
        },
        Action::Record => Some(Base {
            local: step.local.clone(),
            tree: step.tree.clone(),
        }),
        Action::Forget => None,
        Action::Compare => {
            if ctx.same_content(cur_tree.map(|t| t.0)).await? {
                Some(Base {
                    local: step.local.clone(),
                    tree: step.tree.clone(),
                })
            } else {
                ctx.conflict()?;
                None
            }
        }
        Action::Conflict => {
            ctx.conflict()?;
            None
        }
    };
    syncs.settle(&cx.queue, s.id, &step.rel, base.as_ref(), item.seq)?;
    tracing::info!(session = s.id, rel = %step.rel, action = ?step.action, "synced");
    Ok(())
}

struct Ctx<'a> {
    cx: &'a JobContext,
    tree: &'a Tree,
    s: &'a Session,
    local: PathBuf,
    tree_path: String,
}

impl Ctx<'_> {
    fn local_sig(&self) -> String {
        local_side(&self.local).map(|s| s.sig).unwrap_or_default()
    }

    /// The tree entry's inode and signature, if it exists.
    fn tree_side(&self) -> Result<Option<(u64, String)>> {
        match self.tree.resolve(&self.tree_path) {
            Ok(ino) => Ok(Some((ino, tree::signature(&self.tree.inode(ino)?)))),
            Err(e) if matches!(e.errno(), libc::ENOENT | libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The tree folder that holds the entry (created as needed) and the entry's name.
    fn tree_parent(&self) -> Result<(u64, String)> {
        let (dir, name) = self.tree_path.rsplit_once('/').unwrap_or(("", &self.tree_path));
        Ok((mkdir_p(self.tree, dir)?, name.to_string()))
    }

    async fn upload(&self) -> Result<Base> {
        let before = std::fs::symlink_metadata(&self.local).at(&self.local)?;
        let (parent, name) = self.tree_parent()?;
        let expect = self.expected_tree();
        if before.file_type().is_symlink() {
            let target = std::fs::read_link(&self.local).at(&self.local)?;
            let target = target.to_string_lossy().into_owned();
            if self.tree.lookup(parent, &name).is_ok() {
                self.tree.unlink(parent, &name)?;
            }
            let dir = self.tree.getattr(parent)?;
            self.tree.symlink(parent, &name, &target, dir.uid, dir.gid)?;
            return Ok(Base {
                local: format!("l:{target}"),
                tree: format!("symlink:{target}"),
            });
        }
        let file = std::fs::File::open(&self.local).at(&self.local)?;
        let info = FileInfo {
            name: name.clone(),
            mtime: before.mtime(),
            mode: before.mode() & 0o7777,
            media_type: crate::media::by_name(&self.local),
        };
        let session = &self.cx.sealer;
        let hold = self.cx.repo.hold().await;
        let (link, size) = session.put_reader(&hold, file, info).await?;
        session.commit().await?;
        let after = local_side(&self.local).map(|s| s.sig).unwrap_or_default();
        if after != self.sig_of(&before) || size != before.len() {
            return Err(Error::posix(
                libc::EAGAIN,
                format!(
                    "{} changed while it was stored; it is stored again on the next pass",
                    self.local.display()
                ),
            ));
        }
        let link = link.to_string();
        let mtime = before.mtime() * 1_000_000_000 + before.mtime_nsec();
        match self
            .tree
            .put_link(parent, &name, &link, size, mtime, before.mode(), Some(&expect))
        {
            Ok(_) => {}
            Err(e) if e.errno() == libc::EAGAIN => {
                return Err(Error::posix(
                    libc::EAGAIN,
                    format!("{}: the tree changed meanwhile", self.tree_path),
                ))
            }
            Err(e) => return Err(e),
        }
        Ok(Base {
            local: after,
            tree: link,
        })
    }

    fn expected_tree(&self) -> String {
        self.tree_side().ok().flatten().map(|t| t.1).unwrap_or_default()
    }

    fn sig_of(&self, m: &std::fs::Metadata) -> String {
        format!("f:{}:{}", m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec())
    }

    async fn download(&self) -> Result<Base> {
        let (ino, sig) = self
            .tree_side()?
            .ok_or_else(|| Error::posix(libc::ENOENT, format!("tree path {}", self.tree_path)))?;
        let attr = self.tree.getattr(ino)?;
        let parent = self.local.parent().unwrap_or(&self.s.local).to_path_buf();
        std::fs::create_dir_all(&parent).at(&parent)?;
        let temp = TempSibling::new(&self.local, TEMP_PREFIX);
        let tmp = temp.path();
        match attr.kind {
            Kind::Symlink => {
                let target = self.tree.readlink(ino)?;
                std::os::unix::fs::symlink(&target, tmp).at(tmp)?;
            }
            _ => {
                self.write_file(ino, tmp).await?;
                let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(attr.mtime.max(0) as u64);
                let f = std::fs::File::options().write(true).open(tmp).at(tmp)?;
                f.set_modified(mtime).at(tmp)?;
                std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(attr.mode)).at(tmp)?;
            }
        }
        temp.place()?;
        Ok(Base {
            local: self.local_sig(),
            tree: sig,
        })
    }

    async fn write_file(&self, ino: u64, tmp: &Path) -> Result<()> {
        let out = std::fs::File::create(tmp).at(tmp)?;
        let sync = out.try_clone().at(tmp)?;
        self.tree.copy_to(ino, Box::new(out), tmp.to_path_buf()).await?;
        sync.sync_all().at(tmp)
    }

    fn delete_tree(&self) -> Result<()> {
        let (dir, name) = self.tree_path.rsplit_once('/').unwrap_or(("", &self.tree_path));
        let parent = self.tree.resolve(dir)?;
        match self.tree.lookup(parent, name)?.kind {
            Kind::Dir => self.tree.rmdir(parent, name),
            _ => self.tree.unlink(parent, name),
        }
    }

    fn delete_local(&self) -> Result<()> {
        let m = std::fs::symlink_metadata(&self.local).at(&self.local)?;
        if m.is_dir() {
            std::fs::remove_dir(&self.local).map_err(|e| {
                let code = match e.raw_os_error() {
                    Some(libc::EEXIST) | Some(libc::ENOTEMPTY) => libc::ENOTEMPTY,
                    _ => libc::EIO,
                };
                Error::posix(code, format!("{}: {e}", self.local.display()))
            })
        } else {
            std::fs::remove_file(&self.local).at(&self.local)
        }
    }

    /// Whether the local file and the tree file hold the same bytes.
    async fn same_content(&self, ino: Option<u64>) -> Result<bool> {
        let Some(ino) = ino else { return Ok(false) };
        let attr = self.tree.getattr(ino)?;
        let m = std::fs::symlink_metadata(&self.local).at(&self.local)?;
        if attr.kind != Kind::File || !m.is_file() || attr.size != m.len() {
            return Ok(false);
        }
        let file = std::fs::File::open(&self.local).at(&self.local)?;
        let mut off = 0;
        while off < attr.size {
            let chunk = self.tree.read(ino, off, CHUNK).await?;
            if chunk.is_empty() {
                return Ok(false);
            }
            let mut mine = vec![0u8; chunk.len()];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut mine, off).at(&self.local)?;
            if mine != chunk {
                return Ok(false);
            }
            off += chunk.len() as u64;
        }
        Ok(true)
    }

    /// Moves the local entry to a conflict name beside it; the tree's version comes down next pass and
    /// the local one goes up under the new name.
    fn conflict(&self) -> Result<()> {
        let name = self
            .local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.local.parent().unwrap_or(&self.s.local);
        let (host, now) = (host(), crate::clock::now_secs());
        let mut target = dir.join(conflict_name(&name, &host, now));
        for n in 2.. {
            if std::fs::symlink_metadata(&target).is_err() {
                break;
            }
            target = dir.join(conflict_name(&name, &format!("{host} {n}"), now));
        }
        std::fs::rename(&self.local, &target).at(&self.local)?;
        tracing::warn!(path = %self.local.display(), kept = %target.display(), "sync conflict: both versions kept");
        let syncs = Syncs::open(self.cx.repo.state())?;
        syncs.update(self.s.id, |s| s.conflicts += 1)?;
        Ok(())
    }
}

/// `report (conflict host 2026-11-24 101500).txt` for `report.txt`.
pub fn conflict_name(name: &str, host: &str, secs: i64) -> String {
    let stamp = crate::fmt::format_time(secs).replace(':', "");
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let suffix = format!(" (conflict {host} {stamp})");
    // Keep the name within NAME_MAX by shortening the stem.
    let room = tree::NAME_MAX.saturating_sub(suffix.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}{ext}", &stem[..cut])
}

fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "local".into())
}
