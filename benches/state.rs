//! State-store benchmark: tree changes and queue operations per second at 1k, 10k and 100k entries,
//! against a baseline measured in the same run that rewrites a serialized state file (CBOR, written to a
//! temporary name, fsynced, renamed) on every change, which is what incremental LMDB persistence
//! replaces, and against the same tree with an `fsync` after every change (what the store did before it
//! grouped commits). Tree and queue changes are grouped: durable at the durability points (fsync,
//! fsyncdir, unmount, a sealed commit, once a second in the daemon), not one `fsync` each.
//!
//! Run: `cargo bench --bench state` (`-- --quick` for 20k entries). The folder is `$NOISEFS_BENCH_DIR`,
//! else the system temporary folder.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use noisefs::block::BlockSize;
use noisefs::queue::Queue;
use noisefs::repo::{Config, Repo};
use noisefs::tree::{Inode, Kind, Tree, ROOT};

/// Changes measured per window (the rate at a size is over the window ending there).
const WINDOW: usize = 1000;
/// Changes measured with an `fsync` after each one (the per-change baseline).
const SYNCED: usize = 200;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let total: usize = if quick { 20_000 } else { 100_000 };
    let checkpoints: Vec<usize> = [1_000, 10_000, 100_000]
        .into_iter()
        .filter(|c| *c <= total)
        .collect();
    let base = std::env::var_os("NOISEFS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("bench folder");
    let cfg = Config {
        block_size: BlockSize::new(4096).expect("block size"),
        ..Config::default()
    };
    let repo = Arc::new(Repo::init(&dir.path().join("repo"), cfg).expect("repository"));
    let tree = Tree::new(repo.clone()).expect("tree");

    // Tree: create files, a thousand per folder.
    let mut tree_rates = BTreeMap::new();
    let mut synced_rates = BTreeMap::new();
    let mut folder = ROOT;
    let mut start = Instant::now();
    for i in 0..total {
        if i % 1000 == 0 {
            folder = tree
                .mkdir(ROOT, &format!("d{:04}", i / 1000), 0o755, 0, 0)
                .expect("mkdir")
                .ino;
        }
        tree.create(folder, &format!("file-{i:06}.txt"), 0o644, 0, 0)
            .expect("create");
        let n = i + 1;
        if n % WINDOW == 0 {
            if checkpoints.contains(&n) {
                tree_rates.insert(n, WINDOW as f64 / start.elapsed().as_secs_f64());
                // Same-run baseline at this size: the next changes each made durable on their own.
                let synced = Instant::now();
                for j in 0..SYNCED {
                    tree.create(folder, &format!("synced-{n:06}-{j:03}.txt"), 0o644, 0, 0)
                        .expect("create");
                    repo.state().sync().expect("sync");
                }
                synced_rates.insert(n, SYNCED as f64 / synced.elapsed().as_secs_f64());
            }
            start = Instant::now();
        }
    }

    // Queue: push, then complete, the same number of operations.
    let queue = Queue::open(repo.state()).expect("queue");
    let mut push_rates = BTreeMap::new();
    let mut seqs = Vec::with_capacity(total);
    start = Instant::now();
    for i in 0..total {
        seqs.push(
            queue
                .push("seal", &format!("seal/{i}"), &(i as u64).to_le_bytes(), 0)
                .expect("push"),
        );
        let n = i + 1;
        if n % WINDOW == 0 {
            if checkpoints.contains(&n) {
                push_rates.insert(n, WINDOW as f64 / start.elapsed().as_secs_f64());
            }
            start = Instant::now();
        }
    }
    let mut complete_rates = BTreeMap::new();
    start = Instant::now();
    for (i, seq) in seqs.iter().enumerate() {
        queue.complete(*seq).expect("complete");
        let left = total - i - 1;
        if (i + 1) % WINDOW == 0 {
            if checkpoints.contains(&(left + WINDOW)) {
                complete_rates.insert(left + WINDOW, WINDOW as f64 / start.elapsed().as_secs_f64());
            }
            start = Instant::now();
        }
    }

    // Baseline: the whole state serialized and rewritten on each change.
    let mut baseline = BTreeMap::new();
    let state_file = dir.path().join("state.cbor");
    for &size in &checkpoints {
        let mut map: BTreeMap<u64, Inode> = BTreeMap::new();
        for i in 0..size as u64 {
            map.insert(i, Inode::new(Kind::File, 0o644, 0, 0, ROOT));
        }
        // Fewer changes at larger sizes: each one rewrites everything.
        let changes = (200_000 / size).clamp(5, 200);
        let start = Instant::now();
        for c in 0..changes {
            map.insert(size as u64 + c as u64, Inode::new(Kind::File, 0o644, 0, 0, ROOT));
            rewrite(&state_file, &map);
        }
        baseline.insert(size, changes as f64 / start.elapsed().as_secs_f64());
    }

    println!(
        "state store, {} (changes/s over {WINDOW} changes ending at each size; grouped commits)",
        base.display()
    );
    println!(
        "{:>8} {:>14} {:>20} {:>14} {:>16} {:>22}",
        "entries",
        "tree changes",
        "tree, fsync each",
        "queue pushes",
        "queue completes",
        "baseline (rewrite file)"
    );
    for &size in &checkpoints {
        println!(
            "{size:>8} {:>14.0} {:>20.0} {:>14.0} {:>16.0} {:>22.1}",
            tree_rates[&size], synced_rates[&size], push_rates[&size], complete_rates[&size], baseline[&size]
        );
    }
    let json = serde_json::json!({
        "dir": base, "entries": checkpoints, "tree_changes_per_s": tree_rates, "tree_fsync_each_per_s": synced_rates,
        "queue_pushes_per_s": push_rates,
        "queue_completes_per_s": complete_rates, "baseline_rewrite_per_s": baseline,
    });
    println!("{json}");
}

fn rewrite(path: &std::path::Path, map: &BTreeMap<u64, Inode>) {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).expect("state file");
    let mut buf = Vec::new();
    ciborium::into_writer(map, &mut buf).expect("serialize");
    f.write_all(&buf).expect("write");
    f.sync_all().expect("fsync");
    std::fs::rename(&tmp, path).expect("rename");
}
