//! Executing one queued sync step. A step first checks that both sides still look as planned (else it
//! is dropped and the next pass plans again), then acts, then records the new synced state and leaves
//! the queue in one transaction. Running a step twice is harmless; a step that fails stays queued.
//! A download never replaces a local entry that changed while it ran: the entry is re-checked right
//! before the replace, and a change becomes a conflict that keeps both versions.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::plan::{Action, Base};
use super::scan::{self, inside};
use super::sig::{self, Check, PERM};
use super::versions::{self, Version, Versions, Why};
use super::{mkdir_p, Queued, Session, Syncs};
use crate::error::IoContext;
use crate::jobs::JobContext;
use crate::place::{local_mode, TempSibling};
use crate::queue::Item;
use crate::transfer::FileInfo;
use crate::tree::{self, Content, Kind, Tree};
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
    let ctx = Ctx::at(cx, &syncs, &s, &step.rel)?;
    let (cur_local, cur_tree) = (ctx.local_sig(), ctx.tree_side()?);
    let cur_tree_sig = cur_tree.as_ref().map(|t| t.1.clone()).unwrap_or_default();
    if cur_local != step.local || cur_tree_sig != step.tree {
        tracing::debug!(rel = %step.rel, "changed since planned; the next pass plans again");
        return cx.queue.complete(item.seq);
    }
    let base = match step.action {
        Action::Upload => Some(ctx.upload().await?),
        Action::Download => Some(ctx.download().await?),
        Action::MoveTree | Action::MoveLocal => {
            let Some((from, from_sig)) = &step.from else {
                return Err(Error::posix(
                    libc::EINVAL,
                    format!("sync step {}: a move without a source", step.rel),
                ));
            };
            let src = Ctx::at(cx, &syncs, &s, from)?;
            let moved = match step.action {
                Action::MoveTree => ctx.move_tree(&src, from_sig)?,
                _ => ctx.move_local(&src, from_sig, &step.tree)?,
            };
            if let Some(b) = moved {
                syncs.settle_all(&cx.queue, s.id, &[(from, None), (&step.rel, Some(&b))], item.seq)?;
                tracing::debug!(session = s.id, from = %from, rel = %step.rel, "synced a move");
                return Ok(());
            }
            // The source changed meanwhile: copy instead, and let the next pass see to the source.
            Some(match step.action {
                Action::MoveTree => ctx.upload().await?,
                _ => ctx.download().await?,
            })
        }
        Action::MkdirTree => {
            let ino = mkdir_p(ctx.tree, &ctx.tree_path)?;
            let mode = std::fs::symlink_metadata(&ctx.local).at(&ctx.local)?.mode() & PERM;
            let set = tree::SetAttr {
                mode: Some(mode),
                ..Default::default()
            };
            ctx.tree.setattr(ino, set).await?;
            Some(Base {
                local: step.local.clone(),
                tree: sig::tree(&ctx.tree.inode(ino)?),
            })
        }
        Action::MkdirLocal => {
            std::fs::create_dir_all(&ctx.local).at(&ctx.local)?;
            if let Some((ino, _)) = cur_tree {
                let mode = local_mode(ctx.tree.getattr(ino)?.mode);
                std::fs::set_permissions(&ctx.local, std::fs::Permissions::from_mode(mode)).at(&ctx.local)?;
            }
            Some(Base {
                local: ctx.local_sig(),
                tree: step.tree.clone(),
            })
        }
        // A folder that still holds what the other side ignores stays for it, recorded as absent on
        // the other side so that its deletion is not planned again on every pass; a folder that holds
        // anything else is planned again.
        Action::DeleteTree => match ctx
            .keep_tree_version(Why::Deleted)
            .and_then(|()| ctx.delete_tree())
        {
            Ok(()) => None,
            Err(e)
                if e.errno() == libc::ENOTEMPTY && ctx.tree_holds_only_ignored(cur_tree.map(|t| t.0))? =>
            {
                Some(Base {
                    local: String::new(),
                    tree: step.tree.clone(),
                })
            }
            Err(e) if e.errno() == libc::ENOTEMPTY => return cx.queue.complete(item.seq),
            Err(e) => return Err(e),
        },
        Action::DeleteLocal => match ctx
            .keep_local_version(Why::Deleted)
            .and_then(|()| ctx.delete_local())
        {
            Ok(()) => None,
            Err(e) if e.errno() == libc::ENOTEMPTY && ctx.local_holds_only_ignored()? => Some(Base {
                local: step.local.clone(),
                tree: String::new(),
            }),
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
    tracing::info!(session = s.id, action = ?step.action, "synced");
    tracing::debug!(session = s.id, rel = %step.rel, "synced path");
    Ok(())
}

struct Ctx<'a> {
    cx: &'a JobContext,
    tree: &'a Tree,
    syncs: &'a Syncs,
    s: &'a Session,
    local: PathBuf,
    rel: String,
    tree_path: String,
}

impl<'a> Ctx<'a> {
    /// The step context of path `rel` of session `s`.
    fn at(cx: &'a JobContext, syncs: &'a Syncs, s: &'a Session, rel: &str) -> Result<Ctx<'a>> {
        Ok(Ctx {
            cx,
            syncs,
            tree: &cx.tree,
            s,
            local: inside(&s.local, rel)?,
            rel: rel.to_string(),
            tree_path: format!("{}/{rel}", s.tree.trim_end_matches('/')),
        })
    }

    /// Moves the tree's file at `src` here, if it is still as planned (`from_sig`) and gone locally;
    /// `None` if not.
    fn move_tree(&self, src: &Ctx, from_sig: &str) -> Result<Option<Base>> {
        let Some((ino, rec)) = src.tree_record()? else {
            return Ok(None);
        };
        if sig::tree(&rec) != from_sig || sig::local_at(&src.local).is_some() {
            return Ok(None);
        }
        let (dir, name) = src.tree_path.rsplit_once('/').unwrap_or(("", &src.tree_path));
        let from_parent = self.tree.resolve(dir)?;
        let (parent, new_name) = self.tree_parent()?;
        self.tree
            .rename(from_parent, name, parent, &new_name, tree::RenameMode::NoReplace)?;
        Ok(Some(Base {
            local: self.local_sig(),
            tree: sig::tree(&self.tree.inode(ino)?),
        }))
    }

    /// Moves the local file at `src` here, if it is still as planned (`from_sig`), gone from the
    /// tree, and nothing appeared here; `None` if not. `tree` is the tree's signature here.
    fn move_local(&self, src: &Ctx, from_sig: &str, tree: &str) -> Result<Option<Base>> {
        if src.local_sig() != from_sig || src.tree_record()?.is_some() {
            return Ok(None);
        }
        let parent = self.local.parent().unwrap_or(&self.s.local).to_path_buf();
        std::fs::create_dir_all(&parent).at(&parent)?;
        match crate::place::rename_noreplace(&src.local, &self.local) {
            Ok(()) => Ok(Some(Base {
                local: self.local_sig(),
                tree: tree.to_string(),
            })),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(None),
            Err(e) => Err(Error::io(&src.local, e)),
        }
    }

    fn local_sig(&self) -> String {
        sig::local_at(&self.local).map(|s| s.sig).unwrap_or_default()
    }

    /// The tree entry's inode and sync signature, if it exists.
    fn tree_side(&self) -> Result<Option<(u64, String)>> {
        Ok(self.tree_record()?.map(|(ino, rec)| (ino, sig::tree(&rec))))
    }

    fn tree_record(&self) -> Result<Option<(u64, tree::Inode)>> {
        match self.tree.resolve(&self.tree_path) {
            Ok(ino) => Ok(Some((ino, self.tree.inode(ino)?))),
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
        let expect = self
            .tree_record()?
            .map(|(_, rec)| tree::signature(&rec))
            .unwrap_or_default();
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
        let mut file = std::fs::File::open(&self.local).at(&self.local)?;
        let (content, size) = if before.len() <= self.tree.inline_max() {
            // Small: its bytes go into the tree record itself, nothing is sealed.
            let mut data = Vec::with_capacity(before.len() as usize);
            std::io::Read::read_to_end(&mut file, &mut data).at(&self.local)?;
            let size = data.len() as u64;
            (Content::Data(data), size)
        } else {
            let info = FileInfo {
                name: name.clone(),
                mtime: before.mtime(),
                mtime_ns: before.mtime_nsec() as u32,
                mode: before.mode() & PERM,
                media_type: crate::media::by_name(&self.local),
            };
            let session = &self.cx.sealer;
            let hold = self.cx.repo.hold().await;
            let (link, size) = session.put_reader(&hold, file, info).await?;
            session.commit().await?;
            (Content::Link(link.to_string()), size)
        };
        let after = self.local_sig();
        let planned = sig::local(&self.local, &before).map(|s| s.sig);
        if Some(&after) != planned.as_ref() || size != before.len() {
            return Err(Error::posix(
                libc::EAGAIN,
                format!(
                    "{} changed while it was stored; it is stored again on the next pass",
                    self.local.display()
                ),
            ));
        }
        let mtime = before.mtime() * 1_000_000_000 + before.mtime_nsec();
        self.keep_tree_version(Why::Replaced)?;
        let ino = match self.tree.put_content(
            parent,
            &name,
            &content,
            size,
            mtime,
            before.mode() & PERM,
            Some(&expect),
        ) {
            Ok(ino) => ino,
            Err(e) if e.errno() == libc::EAGAIN => {
                return Err(Error::posix(
                    libc::EAGAIN,
                    format!("{}: the tree changed meanwhile", self.tree_path),
                ))
            }
            Err(e) => return Err(e),
        };
        Ok(Base {
            local: after,
            tree: sig::tree(&self.tree.inode(ino)?),
        })
    }

    async fn download(&self) -> Result<Base> {
        let (ino, sig) = self
            .tree_side()?
            .ok_or_else(|| Error::posix(libc::ENOENT, format!("tree path {}", self.tree_path)))?;
        // What the download may replace, as it is now (the step's expectation was just confirmed).
        let check = Check::take(&self.local)?;
        let attr = self.tree.getattr(ino)?;
        let parent = self.local.parent().unwrap_or(&self.s.local).to_path_buf();
        std::fs::create_dir_all(&parent).at(&parent)?;
        let temp = TempSibling::named(&self.local, &scan::temp_name());
        let tmp = temp.path();
        match attr.kind {
            Kind::Symlink => {
                let target = self.tree.readlink(ino)?;
                std::os::unix::fs::symlink(&target, tmp).at(tmp)?;
            }
            _ => {
                self.write_file(ino, tmp).await?;
                let mtime = crate::place::system_time(attr.mtime);
                let f = std::fs::File::options().write(true).open(tmp).at(tmp)?;
                f.set_modified(mtime).at(tmp)?;
                std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(local_mode(attr.mode)))
                    .at(tmp)?;
            }
        }
        self.keep_local_version(Why::Replaced)?;
        #[cfg(test)]
        hooks::before_replace(&self.local);
        self.place_checked(temp, check)?;
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

    /// Keeps the tree's file at this path (about to be replaced or deleted) as a version.
    fn keep_tree_version(&self, why: Why) -> Result<()> {
        if self.retention_off() {
            return Ok(());
        }
        let Some((_, rec)) = self.tree_record()? else {
            return Ok(());
        };
        let Some(content) = rec.content() else {
            return Ok(());
        };
        self.keep(why, content, rec.size, rec.mtime, rec.mode)
    }

    /// Keeps the local file at this path (about to be replaced or deleted) as a version: it is
    /// unchanged since the last sync, so its content is the tree's of then (a link, or a small file's
    /// bytes, read back from the local file and checked against the signature).
    fn keep_local_version(&self, why: Why) -> Result<()> {
        if self.retention_off() {
            return Ok(());
        }
        let Ok(m) = std::fs::symlink_metadata(&self.local) else {
            return Ok(());
        };
        let Some(base) = self.syncs.base_of(self.s.id, &self.rel)? else {
            return Ok(());
        };
        let content = match versions::content_of(&base.tree) {
            Some(c) if m.is_file() && sig::same(&base.local, &self.local_sig()) => c,
            _ => return Ok(()),
        };
        let content = if content.starts_with("data:") {
            if m.len() > self.tree.inline_max() {
                return Ok(());
            }
            let data = Content::Data(std::fs::read(&self.local).at(&self.local)?);
            if data.signature() != content {
                return Ok(());
            }
            data
        } else {
            Content::Link(content.to_string())
        };
        let mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
        self.keep(why, content, m.len(), mtime, m.mode() & PERM)
    }

    fn retention_off(&self) -> bool {
        self.cx.repo.config().sync.keep_versions_days == 0
    }

    fn keep(&self, why: Why, content: Content, size: u64, mtime: i64, mode: u32) -> Result<()> {
        Versions::open(self.cx.repo.state())?.keep(&Version {
            path: self.tree_path.clone(),
            time: crate::clock::now_ms(),
            why,
            content,
            size,
            mtime,
            mode: mode & PERM,
        })
    }

    /// Whether everything left in the local folder is ignored by the session's rules.
    fn local_holds_only_ignored(&self) -> Result<bool> {
        let rules = scan::ignore_rules(&self.s.local);
        let mut stack = vec![self.local.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).at(&dir)? {
                let path = entry.at(&dir)?.path();
                let rel = path
                    .strip_prefix(&self.s.local)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                if !scan::ignored(&rules, &rel, is_dir) {
                    if !is_dir {
                        return Ok(false);
                    }
                    stack.push(path);
                }
            }
        }
        Ok(true)
    }

    /// Whether everything left in tree folder `ino` is ignored by the session's local rules.
    fn tree_holds_only_ignored(&self, ino: Option<u64>) -> Result<bool> {
        let Some(ino) = ino else { return Ok(false) };
        let rules = scan::ignore_rules(&self.s.local);
        for (rel, _, rec) in self.tree.walk(ino)? {
            let is_dir = rec.kind == Kind::Dir;
            if !is_dir && !scan::ignored(&rules, &format!("{}/{rel}", self.rel), false) {
                return Ok(false);
            }
        }
        Ok(true)
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

    /// Puts the downloaded `temp` at the local path, unless the local entry is no longer what `check`
    /// saw before the download (absent, for `None`): then the entry is moved to a conflict name first.
    /// The entry is moved aside, confirmed to be the one checked, and the download renamed in without
    /// replacing anything, so an edit saved at any moment (in place, or by an editor's rename over
    /// the file) is kept.
    fn place_checked(&self, mut temp: TempSibling, mut check: Option<Check>) -> Result<()> {
        for _ in 0..4 {
            let Some(c) = check.take() else {
                match temp.place_new() {
                    Ok(()) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.conflict()?; // created while the download ran
                        continue;
                    }
                    Err(e) => return Err(Error::io(&self.local, e)),
                }
            };
            if !c.holds(&self.local)? {
                self.conflict()?; // changed (or removed) while the download ran
                continue;
            }
            let aside = self.local.with_file_name(scan::temp_name());
            match std::fs::rename(&self.local, &aside) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&self.local, e)),
            }
            if !c.same_entry(&aside) {
                self.keep_as_conflict(&aside)?; // written between the check and the move
                continue;
            }
            let placed = temp.place_new();
            if c.same_entry(&aside) {
                crate::place::remove_any(&aside);
            } else {
                self.keep_as_conflict(&aside)?; // written through an open handle meanwhile
            }
            match placed {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => self.conflict()?,
                Err(e) => return Err(Error::io(&self.local, e)),
            }
        }
        Err(Error::posix(
            libc::EAGAIN,
            format!(
                "{} kept changing while sync replaced it; it is tried again on the next pass",
                self.local.display()
            ),
        ))
    }

    /// Moves the local entry to a conflict name beside it; the tree's version comes down next pass and
    /// the local one goes up under the new name.
    fn conflict(&self) -> Result<()> {
        self.keep_as_conflict(&self.local)
    }

    /// Moves `from` (the local entry, or that entry moved aside) to a conflict name for the local entry.
    fn keep_as_conflict(&self, from: &Path) -> Result<()> {
        let name = self
            .local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.local.parent().unwrap_or(&self.s.local);
        let (host, now) = (host(), crate::clock::now_secs());
        let mut target = dir.join(conflict_name(&name, &host, now));
        let mut n = 1;
        loop {
            match crate::place::rename_noreplace(from, &target) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && n < 1000 => {
                    n += 1;
                    target = dir.join(conflict_name(&name, &format!("{host} {n}"), now));
                }
                Err(e) => return Err(Error::io(from, e)),
            }
        }
        tracing::warn!(path = %self.local.display(), kept = %target.display(), "sync conflict: both versions kept");
        let kept = target
            .strip_prefix(&self.s.local)
            .unwrap_or(&target)
            .to_string_lossy()
            .into_owned();
        self.syncs.update(self.s.id, |s| {
            s.conflicts += 1;
            s.conflicted.push((self.rel.clone(), kept));
            let over = s.conflicted.len().saturating_sub(super::MAX_SKIPPED);
            s.conflicted.drain(..over);
        })?;
        Ok(())
    }
}

/// `report (conflict host 2026-11-24 101500).txt` for `report.txt`.
pub fn conflict_name(name: &str, host: &str, secs: i64) -> String {
    let stamp = crate::fmt::format_time(secs).replace(':', "");
    let suffix = format!(" (conflict {host} {stamp})");
    // An extension too long to keep whole is treated as part of the stem (and shortened with it).
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i + suffix.len() < tree::NAME_MAX / 2 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
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

/// Test hooks: run code at a chosen point of a step, to act as a user would at that moment.
#[cfg(test)]
pub(crate) mod hooks {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    type Hook = Box<dyn FnOnce() + Send>;
    static BEFORE_REPLACE: Mutex<Vec<(PathBuf, Hook)>> = Mutex::new(Vec::new());

    /// Runs `f` once, when a download to `path` has written its temporary and is about to replace it.
    pub fn on_replace(path: &Path, f: impl FnOnce() + Send + 'static) {
        BEFORE_REPLACE
            .lock()
            .unwrap()
            .push((path.to_path_buf(), Box::new(f)));
    }

    pub(super) fn before_replace(path: &Path) {
        let hook = {
            let mut hooks = BEFORE_REPLACE.lock().unwrap();
            let i = hooks.iter().position(|(p, _)| p == path);
            i.map(|i| hooks.remove(i).1)
        };
        if let Some(f) = hook {
            f();
        }
    }
}
