//! Repository maintenance: `gc` (remove blocks nothing keeps), pins (pin, unpin, list), `verify`
//! (re-hash every block on disk) and `stats` (where the bytes go). The CLI only formats what these
//! return.
//!
//! **gc's rule.** A block is kept when a pin, a tree record or a version sync keeps restorable reaches it, or while an operation that may
//! reference it is running. The second part is the [`crate::hold`] gate: every writer (put, seal,
//! share, receive, pin, sync upload, tree import) holds a [`Hold`] until its reference is committed, and
//! gc takes the gate exclusively from before it reads the roots until its sweep and pool reset are done.
//! So gc never removes a block that a running write stored, chose as a randomizer or refers to.

use std::collections::HashSet;

use serde::Serialize;

use crate::block::BlockId;
use crate::descriptor::{Link, Meta};
use crate::hold::Hold;
use crate::repo::Repo;
use crate::state::{BlockKind, PinRecord};
use crate::store::LocalStore;
use crate::transfer::{self, Marks, Opened};
use crate::tree::Tree;
use crate::{Error, Result};

/// What `gc` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub pins: usize,
    pub kept_blocks: usize,
    /// Fetched blocks nothing reaches, kept for `[network] keep_fetched_days`.
    pub kept_fetched_blocks: usize,
    pub removed_blocks: u64,
    pub freed_bytes: u64,
}

/// Removes every block that no pin and no tree record reaches, waiting first for running writes
/// (`waiting` is told how many, once, when there are any). Nothing is removed when a root cannot be
/// walked.
pub async fn gc(tree: &Tree, dry_run: bool, waiting: &(dyn Fn(usize) + Sync)) -> Result<GcReport> {
    let repo = tree.repo();
    let _exclusive = repo.gate().exclusive(waiting).await;
    let mut marks = Marks::default();
    let pins = repo.state().pins()?;
    // Everything the tree holds is kept too (files staged from a link keep that link until sealed).
    // And so is every version sync keeps restorable.
    let kept = crate::sync::versions::Versions::open(repo.state())?.links()?;
    let tree_links = tree.links()?.into_iter().map(|l| ("tree content", l));
    for (what, l) in tree_links.chain(kept.into_iter().map(|l| ("kept sync version", l))) {
        let link: Link = l.parse()?;
        marks.keep(link.root);
        transfer::mark(repo.store(), &link, &mut marks)
            .await
            .map_err(|e| walk_failed(format!("{what} {}", link.root), e))?;
    }
    for (root, pin) in &pins {
        let link: Link = pin.link.parse().map_err(|e: Error| Error::Config {
            path: repo.root().join("state"),
            reason: format!("pin {root} holds an unreadable link ({e}); unpin it"),
        })?;
        marks.keep(*root);
        transfer::mark(repo.store(), &link, &mut marks)
            .await
            .map_err(|e| walk_failed(format!("pinned {root} ({})", pin.name), e))?;
    }
    // Blocks fetched from peers that nothing reaches stay for `keep_fetched_days` after they arrived.
    repo.record_fetched()?;
    let keep_secs = i64::from(repo.config().network.keep_fetched_days) * 86_400;
    let now = crate::clock::now_secs();
    let records = repo.state().blocks()?;
    let retained: HashSet<BlockId> = records
        .iter()
        .filter(|(_, r)| r.kind == BlockKind::Fetched && keep_secs > 0 && now - r.since < keep_secs)
        .map(|(id, _)| *id)
        .collect();
    let needed = |id: &BlockId| marks.refs.contains_key(id) || retained.contains(id);
    let on_disk = repo.stack().list().await?;
    let on_disk_set: HashSet<BlockId> = on_disk.iter().copied().collect();
    let mut removed: Vec<BlockId> = on_disk.into_iter().filter(|id| !needed(id)).collect();
    let mut stale_records = 0u64;
    for (id, _) in &records {
        if !on_disk_set.contains(id) && !marks.refs.contains_key(id) {
            removed.push(*id);
            stale_records += 1;
        }
    }
    let removed_blocks = removed.len() as u64 - stale_records;
    let kept_fetched = retained.iter().filter(|id| !marks.refs.contains_key(id)).count();
    if !dry_run {
        for id in &removed {
            repo.stack().delete(id).await?;
        }
        repo.state().reconcile(&removed, &marks.refs)?;
        repo.state().sync()?;
        repo.reset_pool();
    }
    tracing::info!(
        dry_run,
        removed = removed_blocks,
        kept = marks.refs.len(),
        kept_fetched,
        "gc done"
    );
    Ok(GcReport {
        dry_run,
        pins: pins.len(),
        kept_blocks: marks.refs.len(),
        kept_fetched_blocks: kept_fetched,
        removed_blocks,
        freed_bytes: removed_blocks * repo.block_size() as u64,
    })
}

fn walk_failed(what: String, e: Error) -> Error {
    Error::Task(format!("cannot walk {what}: {e}; nothing was removed"))
}

/// Pins `opened` (reached through a link whose root is `pin_root`: a password link is pinned under its
/// wrapper's root, with the inner link, so gc keeps the wrapper too). Every block it needs must be in
/// the repository. Returns how many blocks the pin keeps.
pub async fn pin(repo: &Repo, _hold: &Hold, pin_root: BlockId, opened: &Opened) -> Result<usize> {
    let inner = Link::new(opened.root, opened.key.clone());
    let mut marks = Marks::default();
    transfer::mark(repo.store(), &inner, &mut marks).await?;
    let (size, dir) = match &opened.meta {
        Meta::File { size, .. } => (*size, false),
        _ => (0, true),
    };
    repo.state().pin(
        &pin_root,
        &PinRecord {
            link: inner.to_string(),
            name: opened.name().to_string(),
            size,
            dir,
            created: crate::clock::now_secs(),
        },
    )?;
    Ok(marks.refs.len())
}

/// Removes the pin of `root`; [`Error::NotPinned`] when there is none.
pub fn unpin(repo: &Repo, root: &BlockId) -> Result<()> {
    if repo.state().unpin(root)? {
        Ok(())
    } else {
        Err(Error::NotPinned { root: *root })
    }
}

/// One pin, for `pin ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinInfo {
    pub root: String,
    pub name: String,
    pub size: u64,
    /// "file" or "dir" (the vocabulary of every `--json` output).
    pub kind: &'static str,
    pub dir: bool,
    /// Seconds since the epoch.
    pub created: i64,
}

/// Every pin, oldest first.
pub fn pins(repo: &Repo) -> Result<Vec<PinInfo>> {
    let mut out: Vec<PinInfo> = repo
        .state()
        .pins()?
        .into_iter()
        .map(|(root, p)| PinInfo {
            root: root.to_string(),
            name: p.name,
            size: p.size,
            kind: if p.dir { "dir" } else { "file" },
            dir: p.dir,
            created: p.created,
        })
        .collect();
    out.sort_by(|a, b| (a.created, &a.root).cmp(&(b.created, &b.root)));
    Ok(out)
}

/// A block `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadBlock {
    pub id: String,
    pub path: std::path::PathBuf,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub corrupt: Vec<BadBlock>,
    /// Recorded in the state but not on disk.
    pub missing: Vec<String>,
}

impl VerifyReport {
    /// Whether every block is sound.
    pub fn clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

/// Re-reads and re-hashes every block on disk (four at a time, `progress` told each one) and checks
/// that every block the state records is there.
pub async fn verify(repo: &Repo, progress: &(dyn Fn() + Sync)) -> Result<VerifyReport> {
    use futures::StreamExt;
    let local = repo.local();
    let ids = local.list().await?;
    let mut results = futures::stream::iter(ids.iter().copied())
        .map(|id| async move { (id, local.get(&id).await) })
        .buffer_unordered(4);
    let mut report = VerifyReport::default();
    while let Some((id, res)) = results.next().await {
        progress();
        report.checked += 1;
        let reason = match res {
            Ok(_) => continue,
            Err(Error::CorruptBlock { actual, .. }) => format!("hashes to {actual}"),
            Err(e) => e.to_string(),
        };
        report.corrupt.push(BadBlock {
            id: id.to_string(),
            path: local.location(&id).unwrap_or_default(),
            reason,
        });
    }
    drop(results);
    let on_disk: HashSet<BlockId> = ids.into_iter().collect();
    report.missing = repo
        .state()
        .blocks()?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !on_disk.contains(id))
        .map(|id| id.to_string())
        .collect();
    Ok(report)
}

/// Where the repository's bytes go, for `repo stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub path: std::path::PathBuf,
    pub block_size: usize,
    pub blocks: u64,
    pub data_blocks: u64,
    pub random_blocks: u64,
    pub descriptor_blocks: u64,
    pub fetched_blocks: u64,
    /// Bytes of the blocks of each kind (blocks are all one size).
    pub data_bytes: u64,
    pub random_bytes: u64,
    pub descriptor_bytes: u64,
    pub fetched_bytes: u64,
    /// Bytes the block store holds on disk.
    pub stored_bytes: u64,
    /// Bytes the state database (tree records with the small files kept in them, block index,
    /// queues, sync state) takes on disk, and the small files' bytes among them.
    pub state_bytes: u64,
    pub tree_inline_files: u64,
    pub tree_inline_bytes: u64,
    pub pins: usize,
    pub pinned_content_bytes: u64,
    /// Content the repository keeps, counted once: pinned links, the tree's sealed files not pinned
    /// too, and the tree's small files.
    pub kept_content_bytes: u64,
    /// What holding the kept content costs over its size: stored block bytes plus the small files'
    /// inline bytes, over kept content, minus one (the state database is reported apart, in
    /// `state_bytes`: it also holds names, attributes and indexes).
    pub overhead: f64,
    /// Tuples per content block (a block serves its own tuple and others as randomizer).
    pub reuse: f64,
    pub randomizer_uses: u64,
}

/// The repository's totals, with what `tree` holds counted as kept content.
pub async fn stats(tree: &Tree) -> Result<Stats> {
    let repo = tree.repo();
    let totals = repo.state().totals()?;
    let store = repo.stack().stats().await?;
    let pins = repo.state().pins()?;
    let content: u64 = pins.iter().map(|(_, p)| p.size).sum();
    let held = tree.holdings()?;
    let pinned: HashSet<BlockId> = pins.iter().map(|(root, _)| *root).collect();
    let mut counted = HashSet::new();
    let mut sealed = 0;
    for (link, size) in &held.sealed {
        let Ok(link) = link.parse::<Link>() else { continue };
        if !pinned.contains(&link.root) && counted.insert(link.root) {
            sealed += size;
        }
    }
    let kept = content + sealed + held.inline_bytes;
    let state_bytes = repo.state().env().real_disk_size()?;
    let overhead = if kept > 0 {
        (store.bytes + held.inline_bytes) as f64 / kept as f64 - 1.0
    } else {
        0.0
    };
    let content_blocks = totals.data_blocks + totals.random_blocks;
    let reuse = if content_blocks > 0 {
        (totals.randomizer_uses + totals.data_blocks) as f64 / content_blocks as f64
    } else {
        0.0
    };
    let bs = repo.block_size() as u64;
    Ok(Stats {
        path: repo.root().to_path_buf(),
        block_size: repo.block_size(),
        blocks: totals.blocks,
        data_blocks: totals.data_blocks,
        random_blocks: totals.random_blocks,
        descriptor_blocks: totals.descriptor_blocks,
        fetched_blocks: totals.fetched_blocks,
        data_bytes: totals.data_blocks * bs,
        random_bytes: totals.random_blocks * bs,
        descriptor_bytes: totals.descriptor_blocks * bs,
        fetched_bytes: totals.fetched_blocks * bs,
        stored_bytes: store.bytes,
        state_bytes,
        tree_inline_files: held.inline_files,
        tree_inline_bytes: held.inline_bytes,
        pins: pins.len(),
        pinned_content_bytes: content,
        kept_content_bytes: kept,
        overhead,
        reuse,
        randomizer_uses: totals.randomizer_uses,
    })
}

#[cfg(test)]
mod tests;
