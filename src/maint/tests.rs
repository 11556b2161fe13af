use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::repo::test_repo;
use crate::transfer::{no_progress, read_range, FileInfo, Sealer};

/// A reader that yields `first` bytes, then waits until `go` is sent before yielding `rest` more.
struct Paused {
    first: usize,
    rest: usize,
    sent: usize,
    go: Option<std::sync::mpsc::Receiver<()>>,
    reached: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::io::Read for Paused {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent == self.first {
            if let Some(tx) = self.reached.take() {
                let _ = tx.send(());
            }
            if let Some(rx) = self.go.take() {
                let _ = rx.recv();
            }
        }
        let limit = if self.sent < self.first {
            self.first
        } else {
            self.first + self.rest
        };
        let n = buf.len().min(limit - self.sent);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.sent + i) % 251) as u8;
        }
        self.sent += n;
        Ok(n)
    }
}

fn expected(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// gc while a put is half way: the put's blocks (stored, and chosen as randomizers, and not yet
/// pinned) must survive. Before gc honoured running writes, it removed them and the pinned file was
/// unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_what_a_running_put_stored_and_chose() {
    let dir = tempfile::tempdir().unwrap();
    let repo = test_repo(dir.path());
    let engine = crate::node::engine(repo.clone()).unwrap();
    // Garbage a put may pick as randomizers: an unpinned file's blocks.
    let session = Sealer::new(repo.clone(), no_progress());
    let hold = repo.hold().await;
    let info = |name: &str| FileInfo {
        name: name.into(),
        mtime: 0,
        mtime_ns: 0,
        mode: 0o644,
        media_type: "application/octet-stream".into(),
    };
    let (junk, _) = session
        .put_reader(&hold, std::io::Cursor::new(vec![1u8; 40_000]), info("junk"))
        .await
        .unwrap();
    session.commit().await.unwrap();
    drop(hold);
    assert!(repo.state().pins().unwrap().is_empty());
    let _ = junk;

    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (first, rest) = (200_000, 100_000);
    let reader = Paused {
        first,
        rest,
        sent: 0,
        go: Some(go_rx),
        reached: Some(reached_tx),
    };
    let writer = {
        let repo = repo.clone();
        tokio::spawn(async move {
            let session = Sealer::new(repo.clone(), no_progress());
            let hold = repo.hold().await;
            let (link, size) = session.put_reader(&hold, reader, info("big")).await?;
            session.finish(&link, "big", size, false).await?;
            Ok::<_, Error>(link)
        })
    };
    reached_rx.await.unwrap();
    // The put has stored its first blocks and waits for the rest of its input. Start gc; resume the
    // put once gc has either finished or said it waits for the running write.
    let waited = Arc::new(AtomicBool::new(false));
    let (wait_tx, wait_rx) = tokio::sync::oneshot::channel();
    let wait_tx = std::sync::Mutex::new(Some(wait_tx));
    let gc_task = {
        let tree = engine.tree().clone();
        let waited = waited.clone();
        tokio::spawn(async move {
            gc(&tree, false, &move |n| {
                assert_eq!(n, 1);
                waited.store(true, Ordering::SeqCst);
                if let Some(tx) = wait_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            })
            .await
        })
    };
    let mut gc_task = gc_task;
    let report = tokio::select! {
        r = &mut gc_task => Some(r.unwrap().unwrap()),
        _ = wait_rx => None,
    };
    go_tx.send(()).unwrap();
    let link = writer.await.unwrap().expect("the put finishes");
    let report = match report {
        Some(r) => r,
        None => gc_task.await.unwrap().unwrap(),
    };

    // The pinned file reads back whole, and every recorded block is on disk.
    let v = verify(&repo, &|| {}).await.unwrap();
    assert!(v.clean(), "{v:?}");
    let opened = transfer::open(repo.store(), &link, None).await.unwrap();
    let all = read_range(repo.store(), &opened, 0, (first + rest) as u64)
        .await
        .unwrap();
    assert_eq!(all, expected(first + rest));
    assert!(
        waited.load(Ordering::SeqCst),
        "gc did not wait for the running put"
    );
    assert_eq!(report.pins, 1, "gc ran after the put was pinned: {report:?}");
    // A second gc finds nothing more to remove.
    let again = gc(engine.tree(), false, &|_| panic!("nothing runs"))
        .await
        .unwrap();
    assert_eq!(again.removed_blocks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_unpin_verify_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let repo = test_repo(dir.path());
    let engine = crate::node::engine(repo.clone()).unwrap();
    let src = dir.path().join("f.bin");
    std::fs::write(&src, expected(50_000)).unwrap();
    let session = Sealer::new(repo.clone(), no_progress());
    let res = session.put_path(&repo.hold().await, &src).await.unwrap();
    let link: Link = res.link.parse().unwrap();
    // Fresh random blocks made while the pool was tiny and left unused are the only garbage.
    let first = gc(engine.tree(), false, &|_| {}).await.unwrap();
    assert!(first.removed_blocks <= 8, "{first:?}");
    let listed = pins(&repo).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].size, listed[0].dir),
        ("f.bin", 50_000, false)
    );
    assert_eq!(listed[0].root, link.root.to_string());

    let s = stats(engine.tree()).await.unwrap();
    assert_eq!(
        (s.kept_content_bytes, s.data_bytes),
        (50_000, s.data_blocks * 4096)
    );
    assert_eq!((s.pins, s.pinned_content_bytes, s.block_size), (1, 50_000, 4096));
    assert!(s.blocks > 0 && s.stored_bytes == s.blocks * 4096, "{s:?}");
    assert!(s.data_blocks >= 13 && s.reuse > 0.0);

    // Nothing is garbage while pinned; unpinned, everything goes.
    let dry = gc(engine.tree(), true, &|_| {}).await.unwrap();
    assert_eq!((dry.removed_blocks, dry.dry_run), (0, true));
    unpin(&repo, &link.root).unwrap();
    assert!(matches!(unpin(&repo, &link.root), Err(Error::NotPinned { .. })));
    let dry = gc(engine.tree(), true, &|_| {}).await.unwrap();
    assert_eq!(dry.removed_blocks, s.blocks);
    assert_eq!(dry.freed_bytes, s.blocks * 4096);
    // Pin again through `pin` (the blocks are still there), then a real gc keeps them.
    let opened = transfer::open(repo.store(), &link, None).await.unwrap();
    let kept = pin(&repo, &repo.hold().await, link.root, &opened).await.unwrap();
    assert!(kept > 13);
    assert_eq!(gc(engine.tree(), false, &|_| {}).await.unwrap().removed_blocks, 0);

    // verify names a corrupt block with its path, and a block recorded but gone.
    let v = verify(&repo, &|| {}).await.unwrap();
    assert!(v.clean() && v.checked == s.blocks);
    let ids: Vec<BlockId> = repo
        .local()
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|id| *id != link.root)
        .collect();
    let path = repo.local().location(&ids[0]).unwrap();
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    std::fs::remove_file(repo.local().location(&ids[1]).unwrap()).unwrap();
    let v = verify(&repo, &|| {}).await.unwrap();
    assert!(!v.clean());
    assert_eq!(v.corrupt.len(), 1);
    assert_eq!(v.corrupt[0].path, path);
    assert!(v.corrupt[0].reason.starts_with("hashes to"), "{v:?}");
    assert_eq!(v.missing, vec![ids[1].to_string()]);
    // A pin whose descriptor is gone stops gc from removing anything.
    repo.stack().delete(&link.root).await.unwrap();
    let err = gc(engine.tree(), false, &|_| {}).await.unwrap_err();
    assert!(err.to_string().contains("nothing was removed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_tree_content_as_kept_and_each_content_once() {
    use crate::tree::{Content, ROOT};
    let dir = tempfile::tempdir().unwrap();
    let repo = test_repo(dir.path());
    let engine = crate::node::engine(repo.clone()).unwrap();
    let src = dir.path().join("f.bin");
    std::fs::write(&src, expected(50_000)).unwrap();
    let session = Sealer::new(repo.clone(), no_progress());
    let res = session.put_path(&repo.hold().await, &src).await.unwrap();
    let t = engine.tree();
    let small = Content::Data(b"hello".to_vec());
    t.put_content(ROOT, "small.txt", &small, 0, 0, 0o644, None)
        .unwrap();
    // The pinned link again in the tree, twice: its content counts once.
    t.put_link(ROOT, "a.bin", &res.link, 50_000, 0, 0o644, None)
        .unwrap();
    t.put_link(ROOT, "b.bin", &res.link, 50_000, 0, 0o644, None)
        .unwrap();
    let s = stats(t).await.unwrap();
    assert_eq!((s.tree_inline_files, s.tree_inline_bytes), (1, 5));
    assert_eq!(s.kept_content_bytes, 50_005);
    assert!(s.state_bytes > 0);
    let want = (s.stored_bytes + 5) as f64 / 50_005.0 - 1.0;
    assert!((s.overhead - want).abs() < 1e-9, "{s:?}");
    // Unpinned, the tree's sealed file is still kept content (once).
    maint_unpin_all(&repo);
    let s = stats(t).await.unwrap();
    assert_eq!((s.pins, s.kept_content_bytes), (0, 50_005));
}

fn maint_unpin_all(repo: &Repo) {
    for (root, _) in repo.state().pins().unwrap() {
        unpin(repo, &root).unwrap();
    }
}
