//! Two local folders kept in sync through one tree folder, in process.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::block::BlockSize;
use crate::repo::{Config, Repo};

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    a: std::path::PathBuf,
    b: std::path::PathBuf,
    sa: u64,
    sb: u64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::node::engine(crate::repo::test_repo(dir.path())).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let syncs = Syncs::open(engine.repo().state()).unwrap();
    let sa = syncs.add(engine.tree(), &a, "/shared/docs").unwrap().id;
    let sb = syncs.add(engine.tree(), &b, "shared/docs/").unwrap().id;
    Fixture {
        _dir: dir,
        engine,
        a,
        b,
        sa,
        sb,
    }
}

impl Fixture {
    /// Syncs a, then b, then a again: what a daemon does as changes arrive.
    async fn round(&self) {
        for id in [self.sa, self.sb, self.sa] {
            converge(&self.engine, id).await.unwrap();
        }
    }
}

fn listing(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
                out.push((rel + "/", Vec::new()));
            } else if ft.is_symlink() {
                out.push((
                    rel,
                    std::fs::read_link(e.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                        .into_bytes(),
                ));
            } else {
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_folders_converge_through_edits_deletes_renames_and_conflicts() {
    let f = fixture();
    let syncs = Syncs::open(f.engine.repo().state()).unwrap();
    assert_eq!(syncs.list().unwrap().len(), 2);
    assert!(syncs.add(f.engine.tree(), &f.a, "/shared/docs").is_err());

    // Initial content on a (nested, empty folder, symlink, a multi-block file), b starts empty.
    write(&f.a.join("notes.txt"), b"first");
    write(&f.a.join("deep/er/x.bin"), &vec![5u8; 20_000]);
    std::fs::create_dir_all(f.a.join("empty")).unwrap();
    std::os::unix::fs::symlink("notes.txt", f.a.join("ln")).unwrap();
    f.round().await;
    assert_eq!(listing(&f.a), listing(&f.b));
    assert_eq!(std::fs::read(f.b.join("deep/er/x.bin")).unwrap().len(), 20_000);
    assert!(f.engine.queue().is_empty().unwrap());
    let s = syncs.get(f.sb).unwrap();
    assert!(s.last_sync.is_some() && s.last_error.is_none());
    assert_eq!(s.entries, 6);

    // Edit on b, delete on a, rename on b: all propagate.
    write(&f.b.join("notes.txt"), b"second, longer");
    std::fs::remove_dir(f.a.join("empty")).unwrap();
    std::fs::rename(f.b.join("deep/er/x.bin"), f.b.join("deep/y.bin")).unwrap();
    f.round().await;
    assert_eq!(listing(&f.a), listing(&f.b));
    assert_eq!(std::fs::read(f.a.join("notes.txt")).unwrap(), b"second, longer");
    assert!(!f.a.join("empty").exists() && !f.b.join("empty").exists());
    assert!(f.a.join("deep/y.bin").exists() && !f.a.join("deep/er/x.bin").exists());

    // Conflicting edits of one file: both versions survive on both sides.
    converge(&f.engine, f.sa).await.unwrap();
    write(&f.a.join("notes.txt"), b"edit from a");
    write(&f.b.join("notes.txt"), b"edit from b!");
    converge(&f.engine, f.sa).await.unwrap(); // a's edit reaches the tree first
    f.round().await;
    assert_eq!(listing(&f.a), listing(&f.b));
    let contents: Vec<Vec<u8>> = listing(&f.a)
        .into_iter()
        .filter(|(n, _)| n.starts_with("notes"))
        .map(|(_, c)| c)
        .collect();
    assert_eq!(contents.len(), 2, "{:?}", listing(&f.a));
    assert!(contents.contains(&b"edit from a".to_vec()) && contents.contains(&b"edit from b!".to_vec()));
    assert_eq!(syncs.get(f.sb).unwrap().conflicts, 1);

    // Identical files created on both sides are not a conflict.
    write(&f.a.join("same.txt"), b"same");
    write(&f.b.join("same.txt"), b"same");
    f.round().await;
    assert_eq!(listing(&f.a), listing(&f.b));
    assert_eq!(
        listing(&f.a)
            .iter()
            .filter(|(n, _)| n.starts_with("same"))
            .count(),
        1
    );

    // Delete on one side versus edit on the other: the edit wins.
    write(&f.a.join("keep.txt"), b"v1");
    f.round().await;
    std::fs::remove_file(f.a.join("keep.txt")).unwrap();
    write(&f.b.join("keep.txt"), b"v2 edited");
    converge(&f.engine, f.sa).await.unwrap();
    f.round().await;
    assert_eq!(std::fs::read(f.a.join("keep.txt")).unwrap(), b"v2 edited");
    assert_eq!(listing(&f.a), listing(&f.b));

    // Removing a session leaves both folders as they are.
    syncs.remove(f.sb).unwrap();
    assert!(syncs.get(f.sb).is_err());
    assert!(syncs.base(f.sb).unwrap().is_empty());
    assert!(f.b.join("keep.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_ignored_special_and_escaping_paths() {
    let f = fixture();
    let syncs = Syncs::open(f.engine.repo().state()).unwrap();
    write(&f.a.join(".noisefsignore"), b"*.tmp\ncache/\n");
    write(&f.a.join("a.tmp"), b"x");
    write(&f.a.join("cache/big"), b"x");
    write(&f.a.join("real.txt"), b"x");
    assert!(std::process::Command::new("mkfifo")
        .arg(f.a.join("pipe"))
        .status()
        .unwrap()
        .success());
    syncs.update(f.sb, |s| s.paused = true).unwrap();
    f.round().await;
    assert!(listing(&f.b).is_empty(), "a paused session changes nothing");
    let s = syncs.get(f.sa).unwrap();
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(s.skipped[0].0, "pipe");
    syncs.update(f.sb, |s| s.paused = false).unwrap();
    f.round().await;
    let names: Vec<String> = listing(&f.b).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [".noisefsignore", "real.txt"]);

    // A tree entry below a local symlink that points outside is not written through the symlink.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), f.b.join("evil")).unwrap();
    converge(&f.engine, f.sb).await.unwrap();
    let t = f.engine.tree();
    let evil = t.resolve("/shared/docs/evil").unwrap();
    assert_eq!(t.getattr(evil).unwrap().kind, crate::tree::Kind::Symlink);
    // Replace the tree symlink by a folder with a file: b keeps its symlink (a conflict), and nothing
    // lands in the outside folder.
    let parent = t.resolve("/shared/docs").unwrap();
    t.unlink(parent, "evil").unwrap();
    let d = t.mkdir(parent, "evil", 0o755, 0, 0).unwrap().ino;
    t.create(d, "payload", 0o644, 0, 0).unwrap();
    converge(&f.engine, f.sb).await.unwrap();
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(std::fs::symlink_metadata(f.b.join("evil"))
        .map(|m| m.is_dir())
        .unwrap_or(false));

    // A missing tree folder is reported in the session, not lost.
    let other = Syncs::open(f.engine.repo().state()).unwrap();
    let s = other.add(f.engine.tree(), &f.a, "/gone").unwrap();
    t.rmdir(crate::tree::ROOT, "gone").unwrap();
    assert!(converge(&f.engine, s.id).await.is_err());
    assert!(other.get(s.id).unwrap().last_error.unwrap().contains("gone"));
    assert!(other.add(f.engine.tree(), &f.a.join("real.txt"), "/x").is_err());
    assert!(other.add(f.engine.tree(), &f.a, "/shared/docs/real.txt").is_err());
}

#[test]
fn conflict_names_keep_the_extension_and_fit() {
    assert_eq!(
        exec_conflict_name("report.txt"),
        "report (conflict host 1970-01-01 0000).txt"
    );
    assert_eq!(
        exec_conflict_name("Makefile"),
        "Makefile (conflict host 1970-01-01 0000)"
    );
    assert_eq!(
        exec_conflict_name(".bashrc"),
        ".bashrc (conflict host 1970-01-01 0000)"
    );
    let long = exec_conflict_name(&format!("{}.md", "é".repeat(200)));
    assert!(long.len() <= crate::tree::NAME_MAX && long.ends_with(").md"));
}

fn exec_conflict_name(name: &str) -> String {
    exec::conflict_name(name, "host", 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_keeps_steps_queued_until_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        block_size: BlockSize::new(4096).unwrap(),
        store: crate::store::Resilience {
            retries: 1,
            backoff_ms: 1,
            breaker_failures: 1000,
            ..Default::default()
        },
        ..Config::default()
    };
    let root = dir.path().join("repo");
    drop(Repo::init(&root, cfg).unwrap());
    let faulty = std::sync::Mutex::new(None);
    let repo = Repo::open_with(&root, |disk| {
        let f = Arc::new(crate::store::FaultyStore::new(disk));
        *faulty.lock().unwrap() = Some(f.clone());
        f
    })
    .unwrap();
    let faulty = faulty.into_inner().unwrap().unwrap();
    let engine = crate::node::engine(Arc::new(repo)).unwrap();
    let a = dir.path().join("a");
    write(&a.join("f.txt"), &vec![1u8; 50_000]);
    let syncs = Syncs::open(engine.repo().state()).unwrap();
    let id = syncs.add(engine.tree(), &a, "/t").unwrap().id;

    faulty.set_failing(true); // a full or failing disk
    converge(&engine, id).await.unwrap();
    let s = syncs.get(id).unwrap();
    assert!(
        s.last_error.as_deref().unwrap_or_default().contains("injected"),
        "{s:?}"
    );
    assert!(s.last_sync.is_none());
    let items = engine.queue().list().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].attempts, 1);
    assert!(
        engine.tree().resolve("/t/f.txt").is_err(),
        "nothing is marked done that is not stored"
    );
    assert!(syncs.base(id).unwrap().is_empty());
    assert!(engine.repo().breakers()[0].failures > 0);

    faulty.set_failing(false);
    // The failed step waits for its retry time; a later pass finds the work still to do.
    let item = engine.queue().list().unwrap().remove(0);
    engine.run_item(item).await.unwrap();
    converge(&engine, id).await.unwrap();
    let s = syncs.get(id).unwrap();
    assert!(s.last_error.is_none() && s.last_sync.is_some(), "{s:?}");
    let ino = engine.tree().resolve("/t/f.txt").unwrap();
    assert_eq!(
        engine.tree().read(ino, 0, 1 << 20).await.unwrap(),
        vec![1u8; 50_000]
    );
    assert!(engine.queue().is_empty().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changing_while_stored_is_stored_again_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        block_size: BlockSize::new(4096).unwrap(),
        ..Config::default()
    };
    let root = dir.path().join("repo");
    drop(Repo::init(&root, cfg).unwrap());
    let faulty = std::sync::Mutex::new(None);
    let repo = Repo::open_with(&root, |disk| {
        let f = Arc::new(crate::store::FaultyStore::new(disk));
        *faulty.lock().unwrap() = Some(f.clone());
        f
    })
    .unwrap();
    let faulty = faulty.into_inner().unwrap().unwrap();
    let engine = crate::node::engine(Arc::new(repo)).unwrap();
    let a = dir.path().join("a");
    write(&a.join("f.txt"), &vec![1u8; 30_000]);
    let syncs = Syncs::open(engine.repo().state()).unwrap();
    let id = syncs.add(engine.tree(), &a, "/t").unwrap().id;

    // Every store call waits a little; once the upload is storing, the file is rewritten under it.
    faulty.stall(std::time::Duration::from_millis(30));
    let path = a.join("f.txt");
    let f2 = faulty.clone();
    let writer = std::thread::spawn(move || {
        while f2.calls() == 0 {
            std::thread::yield_now();
        }
        std::fs::write(&path, vec![2u8; 40_000]).unwrap();
    });
    converge(&engine, id).await.unwrap();
    writer.join().unwrap();
    faulty.stall(std::time::Duration::ZERO);
    converge(&engine, id).await.unwrap();
    let ino = engine.tree().resolve("/t/f.txt").unwrap();
    assert_eq!(
        engine.tree().read(ino, 0, 1 << 20).await.unwrap(),
        vec![2u8; 40_000]
    );
    let s = syncs.get(id).unwrap();
    assert!(s.last_error.is_none() && s.conflicts == 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_step_and_its_record_is_harmless() {
    let f = fixture();
    write(&f.a.join("doc.txt"), b"content");
    converge(&f.engine, f.sa).await.unwrap();
    // b's pass queues a download; "crash" after its effect but before it was recorded: the file is
    // already in b, the step is still queued and the base knows nothing.
    let p = pass(f.engine.context(), f.sb).unwrap();
    assert_eq!(p.planned, 1);
    std::fs::write(f.b.join("doc.txt"), b"content").unwrap();
    let syncs = Syncs::open(f.engine.repo().state()).unwrap();
    assert!(syncs.base(f.sb).unwrap().is_empty());
    // On restart the stale step is dropped, and the next pass finds equal content: no conflict.
    f.engine.drain().await.unwrap();
    converge(&f.engine, f.sb).await.unwrap();
    let s = syncs.get(f.sb).unwrap();
    assert_eq!((s.conflicts, s.last_error.clone()), (0, None));
    assert_eq!(syncs.base(f.sb).unwrap().len(), 1);
    assert_eq!(listing(&f.a), listing(&f.b));
}
