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
    assert_eq!(names, ["real.txt"]);
    // A special file in the tree (made through the mount) is not synced out either, and is listed.
    let t = f.engine.tree();
    let docs = t.resolve("/shared/docs").unwrap();
    t.mknod(docs, "tpipe", crate::tree::Kind::Fifo, 0o644, 0, 0, 0)
        .unwrap();
    converge(&f.engine, f.sb).await.unwrap();
    assert!(!f.b.join("tpipe").exists());
    let s = syncs.get(f.sb).unwrap();
    assert!(
        s.skipped
            .iter()
            .any(|(p, why)| p == "tpipe" && why.contains("special file (fifo) in the tree")),
        "{:?}",
        s.skipped
    );

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
    // An extension too long to keep is shortened with the stem instead of overflowing the name.
    for name in [format!("a.{}", "x".repeat(250)), format!(".{}", "y".repeat(254))] {
        let c = exec_conflict_name(&name);
        assert!(
            c.len() <= crate::tree::NAME_MAX && c.contains("(conflict host"),
            "{c}"
        );
    }
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

fn set_mtime(path: &Path, t: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
}

/// The contents of the files in `root` whose names start with `stem`.
fn versions(root: &Path, stem: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = listing(root)
        .into_iter()
        .filter(|(n, _)| n.starts_with(stem))
        .map(|(_, c)| c)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_saved_while_a_download_runs_is_kept_as_a_conflict() {
    let f = fixture();
    write(&f.a.join("report.txt"), b"v1 from a");
    write(&f.a.join("notes.txt"), b"notes v1");
    f.round().await;
    // a publishes newer versions of both, and a new file.
    write(&f.a.join("report.txt"), b"v2 from a, longer");
    write(&f.a.join("notes.txt"), b"notes v2 from a");
    write(&f.a.join("new.txt"), b"new from a");
    converge(&f.engine, f.sa).await.unwrap();

    // While b downloads them, b's user saves: report.txt in place with the same size and mtime (only
    // its ctime and bytes differ), notes.txt as an editor does (new file renamed over it), and a new
    // new.txt of its own.
    let report = f.b.join("report.txt");
    let r = report.clone();
    exec::hooks::on_replace(&report, move || {
        let mtime = std::fs::metadata(&r).unwrap().modified().unwrap();
        std::fs::write(&r, b"B's edit!").unwrap();
        set_mtime(&r, mtime);
    });
    let notes = f.b.join("notes.txt");
    let n = notes.clone();
    exec::hooks::on_replace(&notes, move || {
        let tmp = n.with_file_name(".notes.txt.swp");
        std::fs::write(&tmp, b"notes edited in b").unwrap();
        std::fs::rename(&tmp, &n).unwrap();
    });
    let new = f.b.join("new.txt");
    let nw = new.clone();
    exec::hooks::on_replace(&new, move || std::fs::write(&nw, b"b's own new").unwrap());
    converge(&f.engine, f.sb).await.unwrap();
    f.round().await;

    assert_eq!(listing(&f.a), listing(&f.b));
    assert_eq!(std::fs::read(&report).unwrap(), b"v2 from a, longer");
    assert_eq!(
        versions(&f.b, "report"),
        [b"B's edit!".to_vec(), b"v2 from a, longer".to_vec()]
    );
    assert_eq!(
        versions(&f.b, "notes"),
        [b"notes edited in b".to_vec(), b"notes v2 from a".to_vec()]
    );
    assert_eq!(
        versions(&f.b, "new"),
        [b"b's own new".to_vec(), b"new from a".to_vec()]
    );
    let syncs = Syncs::open(f.engine.repo().state()).unwrap();
    assert_eq!(syncs.get(f.sb).unwrap().conflicts, 3);
    assert!(
        !listing(&f.b)
            .iter()
            .any(|(n, _)| scan::is_temp(n.rsplit('/').next().unwrap())),
        "no temporary is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_by_one_of_the_same_size_and_mtime_is_synced() {
    let f = fixture();
    write(&f.a.join("f.txt"), b"aaaa");
    // A user's file whose name starts like sync's temporaries is synced like any other.
    write(&f.a.join(".noisefs-sync-notes"), b"mine");
    f.round().await;
    assert_eq!(std::fs::read(f.b.join(".noisefs-sync-notes")).unwrap(), b"mine");
    // `mv` over it (or `cp -p`, `tar x`, `rsync -t`): same size, same mtime, another inode.
    let mtime = std::fs::metadata(f.a.join("f.txt")).unwrap().modified().unwrap();
    write(&f.a.join("g.tmp"), b"bbbb");
    set_mtime(&f.a.join("g.tmp"), mtime);
    std::fs::rename(f.a.join("g.tmp"), f.a.join("f.txt")).unwrap();
    f.round().await;
    assert_eq!(std::fs::read(f.b.join("f.txt")).unwrap(), b"bbbb");
    assert_eq!(listing(&f.a), listing(&f.b));
    assert!(f.a.join(".noisefs-sync-notes").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_bits_travel_both_ways_and_special_bits_never() {
    let f = fixture();
    std::fs::create_dir(f.a.join("private")).unwrap();
    chmod(&f.a.join("private"), 0o700);
    write(&f.a.join("private/secret.txt"), b"s");
    chmod(&f.a.join("private/secret.txt"), 0o600);
    write(&f.a.join("tool"), b"#!/bin/sh\n");
    chmod(&f.a.join("tool"), 0o4755);
    f.round().await;
    assert_eq!(
        mode(&f.b.join("private")),
        0o700,
        "a private folder stays private"
    );
    assert_eq!(mode(&f.b.join("private/secret.txt")), 0o600);
    assert_eq!(mode(&f.b.join("tool")), 0o755, "no setuid from sync");
    let t = f.engine.tree();
    let ino = t.resolve("/shared/docs/private").unwrap();
    assert_eq!(t.getattr(ino).unwrap().mode & 0o7777, 0o700);

    // A change of mode alone propagates, for files and folders.
    chmod(&f.b.join("private/secret.txt"), 0o640);
    chmod(&f.b.join("private"), 0o750);
    f.round().await;
    assert_eq!(mode(&f.a.join("private/secret.txt")), 0o640);
    assert_eq!(mode(&f.a.join("private")), 0o750);
    assert_eq!(std::fs::read(f.a.join("private/secret.txt")).unwrap(), b"s");
    // And a pass after that finds nothing to do.
    assert_eq!(pass(f.engine.context(), f.sa).unwrap().planned, 0);
    assert_eq!(pass(f.engine.context(), f.sb).unwrap().planned, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_rules_stay_with_their_folder() {
    let f = fixture();
    write(&f.a.join(".noisefsignore"), b"*.tmp\n");
    write(&f.a.join("a.tmp"), b"a's scratch");
    write(&f.b.join(".noisefsignore"), b"*.secret\n");
    write(&f.b.join("keys.secret"), b"b's secret");
    write(&f.b.join("proj/f.c"), b"int main;");
    write(&f.b.join("proj/f.o"), b"\x7fELF");
    write(&f.b.join(".noisefsignore"), b"*.secret\n*.o\n");
    f.round().await;
    let t = f.engine.tree();
    assert!(
        t.resolve("/shared/docs/.noisefsignore").is_err(),
        "the ignore file is not synced"
    );
    assert!(t.resolve("/shared/docs/keys.secret").is_err());
    assert!(t.resolve("/shared/docs/a.tmp").is_err());
    assert_eq!(std::fs::read(f.a.join(".noisefsignore")).unwrap(), b"*.tmp\n");
    // a dropping its rules publishes a's own files, never b's.
    std::fs::remove_file(f.a.join(".noisefsignore")).unwrap();
    f.round().await;
    assert_eq!(std::fs::read(f.b.join("a.tmp")).unwrap(), b"a's scratch");
    assert!(!f.a.join("keys.secret").exists() && !f.a.join("proj/f.o").exists());
    assert_eq!(
        std::fs::read(f.b.join(".noisefsignore")).unwrap(),
        b"*.secret\n*.o\n"
    );

    // A folder deleted on a that holds files b ignores: b keeps the folder for them, and the sessions
    // come to rest instead of planning the deletion on every pass.
    std::fs::remove_dir_all(f.a.join("proj")).unwrap();
    f.round().await;
    assert!(!f.b.join("proj/f.c").exists() && f.b.join("proj/f.o").exists());
    assert_eq!(pass(f.engine.context(), f.sb).unwrap().planned, 0);
    assert_eq!(pass(f.engine.context(), f.sa).unwrap().planned, 0);
    assert!(t.resolve("/shared/docs/proj").is_err());
    // A new file in it later goes up as usual.
    write(&f.b.join("proj/g.c"), b"g");
    f.round().await;
    assert_eq!(std::fs::read(f.a.join("proj/g.c")).unwrap(), b"g");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_over_every_session_brings_them_all_to_rest() {
    let f = fixture();
    write(&f.b.join("from-b.txt"), b"b");
    write(&f.a.join("from-a.txt"), b"a");
    // a's session comes first, so a only sees b's file if the run goes round again.
    let results = converge_all(&f.engine, &[f.sa, f.sb]).await.unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    assert_eq!(listing(&f.a), listing(&f.b));
    assert_eq!(std::fs::read(f.a.join("from-b.txt")).unwrap(), b"b");
    for id in [f.sa, f.sb] {
        assert_eq!(pass(f.engine.context(), id).unwrap().planned, 0);
    }
    assert!(overlap("/shared/docs", "/shared"));
    assert!(overlap("/shared", "/shared/docs/x"));
    assert!(!overlap("/shared/docs", "/shared/docsx"));
    assert!(overlap("/", "/anything"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_folder_or_a_mass_deletion_waits_for_confirmation() {
    let f = fixture();
    let syncs = Syncs::open(f.engine.repo().state()).unwrap();
    for i in 0..10 {
        write(&f.a.join(format!("f{i}.txt")), format!("file {i}").as_bytes());
    }
    f.round().await;
    assert_eq!(listing(&f.b).len(), 10);

    // a's folder is emptied (an unmounted disk looks the same): nothing is deleted anywhere.
    for i in 0..10 {
        std::fs::remove_file(f.a.join(format!("f{i}.txt"))).unwrap();
    }
    let e = converge(&f.engine, f.sa).await.unwrap_err();
    assert!(e.to_string().contains("the local folder is empty"), "{e}");
    converge(&f.engine, f.sb).await.unwrap();
    assert_eq!(listing(&f.b).len(), 10, "b keeps everything");
    assert!(f.engine.tree().resolve("/shared/docs/f0.txt").is_ok());
    let s = syncs.get(f.sa).unwrap();
    assert!(s.held.as_deref().unwrap().contains("resume --confirm"), "{s:?}");

    // The files come back (the disk is mounted again): the hold clears by itself.
    for i in 0..10 {
        std::fs::copy(f.b.join(format!("f{i}.txt")), f.a.join(format!("f{i}.txt"))).unwrap();
    }
    f.round().await;
    assert!(syncs.get(f.sa).unwrap().held.is_none());
    assert_eq!(listing(&f.a), listing(&f.b));

    // Deleting 6 of 10 on b is more than half: held; confirmed, it goes through.
    for i in 0..6 {
        std::fs::remove_file(f.b.join(format!("f{i}.txt"))).unwrap();
    }
    let e = converge(&f.engine, f.sb).await.unwrap_err();
    assert!(e.to_string().contains("6 of 10 synced files"), "{e}");
    assert_eq!(listing(&f.a).len(), 10);
    syncs.update(f.sb, |s| s.confirmed = true).unwrap();
    f.round().await;
    assert_eq!(listing(&f.a).len(), 4);
    assert_eq!(listing(&f.a), listing(&f.b));
    let s = syncs.get(f.sb).unwrap();
    assert!(
        !s.confirmed && s.held.is_none() && s.last_error.is_none(),
        "{s:?}"
    );
    // One deletion never waits.
    std::fs::remove_file(f.b.join("f9.txt")).unwrap();
    f.round().await;
    assert!(!f.a.join("f9.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_sync_replaces_or_deletes_stays_restorable_and_gc_keeps_it() {
    let f = fixture();
    let path = "/shared/docs/f.txt";
    let vs = versions::Versions::open(f.engine.repo().state()).unwrap();
    write(&f.a.join("f.txt"), b"v1");
    f.round().await;
    write(&f.a.join("f.txt"), b"v2, longer");
    f.round().await;
    // Replaced in the tree by a's upload, and in b by the download: one version, kept once.
    let list = vs.list(path).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0].why, list[0].size), (versions::Why::Replaced, 2));
    // Small files travel inline: the tree file has no link, the version holds the bytes themselves.
    assert_eq!(list[0].content, tree::Content::Data(b"v1".to_vec()));
    let ino = f.engine.tree().resolve(path).unwrap();
    let rec = f.engine.tree().inode(ino).unwrap();
    assert_eq!(
        (rec.link, rec.data.map(|d| d.into_vec())),
        (None, Some(b"v2, longer".to_vec()))
    );
    std::fs::remove_file(f.b.join("f.txt")).unwrap();
    f.round().await;
    assert!(!f.a.join("f.txt").exists());
    let list = vs.list(path).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].why, list[0].size), (versions::Why::Deleted, 10));

    // gc keeps what the versions hold; restoring the newest brings it back everywhere.
    crate::maint::gc(f.engine.tree(), false, &|_| {}).await.unwrap();
    let v = restore(f.engine.tree(), path, None).unwrap();
    assert_eq!(v.size, 10);
    f.round().await;
    assert_eq!(std::fs::read(f.a.join("f.txt")).unwrap(), b"v2, longer");
    assert_eq!(std::fs::read(f.b.join("f.txt")).unwrap(), b"v2, longer");
    // An older one by time; what was there is kept in turn (here: already kept).
    restore(f.engine.tree(), path, Some(list[1].time)).unwrap();
    f.round().await;
    assert_eq!(std::fs::read(f.b.join("f.txt")).unwrap(), b"v1");
    assert_eq!(mode(&f.b.join("f.txt")) & 0o777, mode(&f.a.join("f.txt")) & 0o777);
    assert!(restore(f.engine.tree(), path, Some(0)).is_err());
    assert!(restore(f.engine.tree(), "/shared/docs/never", None)
        .unwrap_err()
        .to_string()
        .contains("no kept version"));
    let syncs = Syncs::open(f.engine.repo().state()).unwrap();
    assert_eq!(syncs.tree_path_of(&f.b.join("f.txt")).unwrap(), path);
    assert_eq!(
        syncs.tree_path_of(&f.b.join("gone/x")).unwrap(),
        "/shared/docs/gone/x"
    );
    assert!(syncs.tree_path_of(Path::new("/nowhere/x")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_on_either_side_is_synced_as_a_move() {
    use std::os::unix::fs::MetadataExt;
    let f = fixture();
    let t = f.engine.tree();
    write(&f.a.join("deep/x.bin"), &vec![7u8; 20_000]);
    write(&f.a.join("notes.txt"), b"notes");
    f.round().await;
    let link_of = |p: &str| t.inode(t.resolve(p).unwrap()).unwrap().link;
    let sealed = link_of("/shared/docs/deep/x.bin");
    let b_ino = std::fs::metadata(f.b.join("deep/x.bin")).unwrap().ino();

    // mv into another folder on a: the tree moves the sealed file (no new seal), b moves its file.
    std::fs::create_dir(f.a.join("moved")).unwrap();
    std::fs::rename(f.a.join("deep/x.bin"), f.a.join("moved/y.bin")).unwrap();
    f.round().await;
    assert_eq!(
        link_of("/shared/docs/moved/y.bin"),
        sealed,
        "moved, not sealed again"
    );
    assert!(t.resolve("/shared/docs/deep/x.bin").is_err());
    assert_eq!(
        std::fs::metadata(f.b.join("moved/y.bin")).unwrap().ino(),
        b_ino,
        "moved, not downloaded"
    );
    assert_eq!(listing(&f.a), listing(&f.b));

    // A move in the tree (the mount, `tree mv`) reaches both folders as a move.
    let a_ino = std::fs::metadata(f.a.join("notes.txt")).unwrap().ino();
    let docs = t.resolve("/shared/docs").unwrap();
    let moved = t.resolve("/shared/docs/moved").unwrap();
    t.rename(
        docs,
        "notes.txt",
        moved,
        "notes.md",
        crate::tree::RenameMode::NoReplace,
    )
    .unwrap();
    f.round().await;
    assert_eq!(
        std::fs::metadata(f.a.join("moved/notes.md")).unwrap().ino(),
        a_ino
    );
    assert!(!f.a.join("notes.txt").exists() && !f.b.join("notes.txt").exists());
    assert_eq!(std::fs::read(f.b.join("moved/notes.md")).unwrap(), b"notes");
    assert_eq!(listing(&f.a), listing(&f.b));

    // A move of a file the other side edited meanwhile loses nothing: both end up present.
    std::fs::rename(f.a.join("moved/notes.md"), f.a.join("renamed.md")).unwrap();
    write(&f.b.join("moved/notes.md"), b"notes edited in b");
    converge(&f.engine, f.sa).await.unwrap();
    f.round().await;
    assert_eq!(std::fs::read(f.a.join("renamed.md")).unwrap(), b"notes");
    assert_eq!(
        std::fs::read(f.a.join("moved/notes.md")).unwrap(),
        b"notes edited in b"
    );
    assert_eq!(listing(&f.a), listing(&f.b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_failed_step_is_dropped_not_reported() {
    let f = fixture();
    write(&f.a.join("x.txt"), b"x");
    f.round().await;
    // A step that failed earlier and waits for its retry, for a path that has since come to agree.
    let step = Step {
        rel: "x.txt".into(),
        action: Action::Upload,
        local: "f:1:2:3:4:644".into(),
        tree: String::new(),
        from: None,
    };
    let payload = crate::descriptor::node::encode(&Queued { session: f.sa, step });
    let q = f.engine.queue();
    let seq = q
        .push(SYNC, &format!("{SYNC}/{}/x.txt", f.sa), &payload, 0)
        .unwrap();
    q.fail(seq, "x.txt changed while it was stored", 3_600_000)
        .unwrap();
    converge(&f.engine, f.sa).await.unwrap();
    let s = Syncs::open(f.engine.repo().state()).unwrap().get(f.sa).unwrap();
    assert_eq!(s.last_error, None);
    assert!(q.is_empty().unwrap());
}
