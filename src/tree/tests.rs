//! POSIX semantics of the tree, checked without a kernel.

use super::*;
use crate::transfer::{no_progress, Sealer};

use crate::repo::test_repo as repo;

fn errno<T: std::fmt::Debug>(r: Result<T>) -> i32 {
    r.unwrap_err().errno()
}

#[test]
fn namespace_operations_follow_posix() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(repo(dir.path())).unwrap();
    let root = t.getattr(ROOT).unwrap();
    assert_eq!((root.kind, root.nlink), (Kind::Dir, 2));

    let a = t.mkdir(ROOT, "a", 0o755, 1, 2).unwrap();
    assert_eq!((a.kind, a.mode, a.uid, a.gid), (Kind::Dir, 0o755, 1, 2));
    assert_eq!(t.getattr(ROOT).unwrap().nlink, 3);
    let f = t.create(a.ino, "f", 0o644, 1, 2).unwrap();
    assert_eq!((f.size, f.nlink), (0, 1));
    assert_eq!(t.lookup(a.ino, "f").unwrap().ino, f.ino);
    assert_eq!(errno(t.lookup(a.ino, "nope")), libc::ENOENT);
    assert_eq!(errno(t.lookup(f.ino, "x")), libc::ENOTDIR);
    assert_eq!(errno(t.create(a.ino, "f", 0o644, 0, 0)), libc::EEXIST);
    assert_eq!(errno(t.mkdir(a.ino, "a/b", 0o755, 0, 0)), libc::EINVAL);
    assert_eq!(
        errno(t.mkdir(a.ino, &"n".repeat(300), 0o755, 0, 0)),
        libc::ENAMETOOLONG
    );
    assert_eq!(errno(t.create(f.ino, "g", 0o644, 0, 0)), libc::ENOTDIR);
    assert_eq!(errno(t.getattr(999)), libc::ENOENT);

    // Paths both ways.
    assert_eq!(t.resolve("/a/f").unwrap(), f.ino);
    assert_eq!(t.resolve("a//f/").unwrap(), f.ino);
    assert_eq!(t.resolve("/").unwrap(), ROOT);
    assert_eq!(errno(t.resolve("/a/f/x")), libc::ENOTDIR);
    assert_eq!(t.path_of(f.ino).unwrap(), "/a/f");
    assert_eq!(t.path_of(ROOT).unwrap(), "/");
    assert_eq!(t.resolve_parent("/a/f").unwrap(), (a.ino, "f"));
    assert_eq!(errno(t.resolve_parent("/")), libc::EINVAL);

    // Symlinks.
    let l = t.symlink(ROOT, "l", "a/f", 0, 0).unwrap();
    assert_eq!((l.kind, l.size), (Kind::Symlink, 3));
    assert_eq!(t.readlink(l.ino).unwrap(), "a/f");
    assert_eq!(errno(t.readlink(f.ino)), libc::EINVAL);
    assert_eq!(errno(t.symlink(ROOT, "bad", "", 0, 0)), libc::EINVAL);

    // Hard links count names; a folder cannot be hard-linked.
    let h = t.link(f.ino, ROOT, "hard").unwrap();
    assert_eq!((h.ino, h.nlink), (f.ino, 2));
    assert_eq!(errno(t.link(a.ino, ROOT, "dirlink")), libc::EPERM);
    assert_eq!(errno(t.link(f.ino, ROOT, "hard")), libc::EEXIST);
    t.unlink(a.ino, "f").unwrap();
    assert_eq!(t.getattr(f.ino).unwrap().nlink, 1);
    assert_eq!(t.path_of(f.ino).unwrap(), "/hard");

    // rmdir / unlink mismatches and non-empty folders.
    let b = t.mkdir(a.ino, "b", 0o700, 0, 0).unwrap();
    t.create(b.ino, "x", 0o600, 0, 0).unwrap();
    assert_eq!(errno(t.rmdir(a.ino, "b")), libc::ENOTEMPTY);
    assert_eq!(errno(t.unlink(a.ino, "b")), libc::EISDIR);
    assert_eq!(errno(t.rmdir(ROOT, "hard")), libc::ENOTDIR);
    assert_eq!(errno(t.unlink(ROOT, "none")), libc::ENOENT);
    t.unlink(b.ino, "x").unwrap();
    t.rmdir(a.ino, "b").unwrap();
    assert_eq!(t.getattr(a.ino).unwrap().nlink, 2);
    assert_eq!(errno(t.getattr(b.ino)), libc::ENOENT);

    let names: Vec<String> = t.readdir(ROOT).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["a", "hard", "l"]);
    assert_eq!(errno(t.readdir(l.ino)), libc::ENOTDIR);
}

#[test]
fn rename_covers_replace_noreplace_exchange_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(repo(dir.path())).unwrap();
    let d1 = t.mkdir(ROOT, "d1", 0o755, 0, 0).unwrap().ino;
    let d2 = t.mkdir(ROOT, "d2", 0o755, 0, 0).unwrap().ino;
    let f = t.create(d1, "f", 0o644, 0, 0).unwrap().ino;
    let g = t.create(d2, "g", 0o644, 0, 0).unwrap().ino;

    // Across folders, then over an existing file (which goes away).
    t.rename(d1, "f", d2, "f2", RenameMode::Replace).unwrap();
    assert_eq!(t.lookup(d2, "f2").unwrap().ino, f);
    assert_eq!(errno(t.lookup(d1, "f")), libc::ENOENT);
    assert_eq!(
        errno(t.rename(d2, "f2", d2, "g", RenameMode::NoReplace)),
        libc::EEXIST
    );
    t.rename(d2, "f2", d2, "g", RenameMode::Replace).unwrap();
    assert_eq!(t.lookup(d2, "g").unwrap().ino, f);
    assert_eq!(errno(t.getattr(g)), libc::ENOENT);
    // Renaming onto itself changes nothing.
    t.rename(d2, "g", d2, "g", RenameMode::Replace).unwrap();

    // Exchange swaps two entries, even a file and a folder.
    let sub = t.mkdir(d1, "sub", 0o755, 0, 0).unwrap().ino;
    t.rename(d1, "sub", d2, "g", RenameMode::Exchange).unwrap();
    assert_eq!(t.lookup(d2, "g").unwrap().ino, sub);
    assert_eq!(t.lookup(d1, "sub").unwrap().ino, f);
    assert_eq!(t.path_of(sub).unwrap(), "/d2/g");
    assert_eq!(t.getattr(d2).unwrap().nlink, 3);
    assert_eq!(t.getattr(d1).unwrap().nlink, 2);
    assert_eq!(
        errno(t.rename(d1, "sub", d2, "none", RenameMode::Exchange)),
        libc::ENOENT
    );

    // Folder rules: not into itself, not over a file, over an empty folder only.
    assert_eq!(
        errno(t.rename(ROOT, "d2", sub, "x", RenameMode::Replace)),
        libc::EINVAL
    );
    assert_eq!(
        errno(t.rename(ROOT, "d2", d2, "x", RenameMode::Replace)),
        libc::EINVAL
    );
    assert_eq!(
        errno(t.rename(d2, "g", d1, "sub", RenameMode::Replace)),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(t.rename(d1, "sub", ROOT, "d2", RenameMode::Replace)),
        libc::EISDIR
    );
    t.create(sub, "inner", 0o644, 0, 0).unwrap();
    let empty = t.mkdir(ROOT, "empty", 0o755, 0, 0).unwrap().ino;
    assert_eq!(
        errno(t.rename(ROOT, "empty", d2, "g", RenameMode::Replace)),
        libc::ENOTEMPTY
    );
    t.rename(d2, "g", ROOT, "empty", RenameMode::Replace).unwrap();
    assert_eq!(errno(t.getattr(empty)), libc::ENOENT);
    assert!(t.resolve("/empty/inner").is_ok());
    assert_eq!(t.getattr(ROOT).unwrap().nlink, 5);
    assert_eq!(
        errno(t.rename(ROOT, "none", ROOT, "x", RenameMode::Replace)),
        libc::ENOENT
    );
    assert_eq!(
        errno(t.rename(ROOT, "d1", ROOT, "a/b", RenameMode::Replace)),
        libc::EINVAL
    );
    let walked: Vec<String> = t.walk(ROOT).unwrap().into_iter().map(|w| w.0).collect();
    assert_eq!(walked, ["d1", "d2", "empty", "empty/inner", "d1/sub"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_writes_reads_truncates_and_seals() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let t = Tree::new(repo.clone()).unwrap();
    let f = t.create(ROOT, "f.txt", 0o644, 0, 0).unwrap().ino;
    assert!(t.read(f, 0, 10).await.unwrap().is_empty());
    assert_eq!(errno(t.write(f, 0, b"x").await), libc::EBADF);

    // Sparse write past the end reads back zeros in the hole.
    t.open(f, true, false).await.unwrap();
    assert_eq!(t.write(f, 10_000, b"tail").await.unwrap(), 4);
    t.write(f, 0, b"head").await.unwrap();
    let attr = t.getattr(f).unwrap();
    assert_eq!((attr.size, attr.dirty), (10_004, true));
    let all = t.read(f, 0, 1 << 20).await.unwrap();
    assert_eq!(&all[..4], b"head");
    assert!(all[4..10_000].iter().all(|b| *b == 0));
    assert_eq!(&all[10_000..], b"tail");
    assert_eq!(t.read(f, 10_002, 100).await.unwrap(), b"il");
    assert!(t.read(f, 20_000, 100).await.unwrap().is_empty());

    // A file open for writing is not sealed.
    let session = Sealer::new(repo.clone(), no_progress());
    assert_eq!(
        t.seal(&repo.hold().await, f, &session).await.unwrap(),
        Sealed::Busy
    );
    t.fsync(f).unwrap();
    t.release(f, true).unwrap();
    assert_eq!(t.queue().len().unwrap(), 1);
    let Sealed::Done(link) = t.seal(&repo.hold().await, f, &session).await.unwrap() else {
        panic!("not sealed")
    };
    let attr = t.getattr(f).unwrap();
    assert_eq!((attr.size, attr.dirty), (10_004, false));
    assert_eq!(t.getxattr(f, LINK_XATTR).unwrap(), link.as_bytes());
    assert!(!repo.root().join("staging").join(f.to_string()).exists());
    assert_eq!(t.read(f, 0, 1 << 20).await.unwrap(), all);
    assert_eq!(t.read(f, 9_999, 3).await.unwrap(), b"\0ta");
    assert_eq!(
        t.seal(&repo.hold().await, f, &session).await.unwrap(),
        Sealed::Clean
    );
    assert_eq!(t.links().unwrap(), vec![link.clone()]);

    // Writing a clean file brings its content back into staging first.
    t.open(f, true, false).await.unwrap();
    t.write(f, 2, b"AD").await.unwrap();
    assert_eq!(&t.read(f, 0, 6).await.unwrap(), b"heAD\0\0");
    assert_eq!(errno(t.getxattr(f, LINK_XATTR)), libc::ENODATA);
    // Truncate down, then up (zeros), then O_TRUNC.
    t.setattr(
        f,
        SetAttr {
            size: Some(3),
            ..SetAttr::default()
        },
    )
    .await
    .unwrap();
    t.setattr(
        f,
        SetAttr {
            size: Some(6),
            ..SetAttr::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(t.read(f, 0, 100).await.unwrap(), b"heA\0\0\0");
    t.release(f, true).unwrap();
    t.open(f, true, true).await.unwrap();
    assert_eq!(t.getattr(f).unwrap().size, 0);
    t.write(f, 0, b"new").await.unwrap();
    // Written while sealing: the seal reports busy and leaves the bytes staged.
    assert_eq!(
        t.seal(&repo.hold().await, f, &session).await.unwrap(),
        Sealed::Busy
    );
    t.release(f, true).unwrap();
    // Small: kept inline in the record, nothing sealed.
    assert_eq!(
        t.seal(&repo.hold().await, f, &session).await.unwrap(),
        Sealed::Inline(3)
    );
    assert_eq!(t.read(f, 0, 100).await.unwrap(), b"new");
    assert_eq!(t.getxattr(f, STATE_XATTR).unwrap(), b"inline");
    assert!(!repo.root().join("staging").join(f.to_string()).exists());

    // Attributes.
    let set = SetAttr {
        mode: Some(0o600),
        uid: Some(7),
        gid: Some(8),
        mtime: Some(1_000_000_000_000_000_000),
        atime: Some(5),
        ..SetAttr::default()
    };
    let a = t.setattr(f, set).await.unwrap();
    assert_eq!(
        (a.mode, a.uid, a.gid, a.mtime, a.atime),
        (0o600, 7, 8, 1_000_000_000_000_000_000, 5)
    );
    let d = t.mkdir(ROOT, "d", 0o755, 0, 0).unwrap().ino;
    assert_eq!(
        errno(
            t.setattr(
                d,
                SetAttr {
                    size: Some(0),
                    ..SetAttr::default()
                }
            )
            .await
        ),
        libc::EISDIR
    );
    assert_eq!(errno(t.open(d, true, false).await), libc::EISDIR);
    assert_eq!(errno(t.read(d, 0, 1).await), libc::EISDIR);
    // An explicit mtime on a dirty file sticks to its staging file.
    t.open(f, true, false).await.unwrap();
    t.write(f, 3, b"!").await.unwrap();
    let a = t
        .setattr(
            f,
            SetAttr {
                mtime: Some(2_000_000_000_000_000_000),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.mtime, 2_000_000_000_000_000_000);
    t.release(f, true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinked_open_files_xattrs_statfs_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let t = Tree::new(repo.clone()).unwrap();
    let f = t.create(ROOT, "f", 0o644, 0, 0).unwrap().ino;
    t.open(f, true, false).await.unwrap();
    t.write(f, 0, b"still here").await.unwrap();
    // Deleted while open: readable through the handle, gone at the last release.
    t.unlink(ROOT, "f").unwrap();
    assert_eq!(t.read(f, 0, 100).await.unwrap(), b"still here");
    t.release(f, true).unwrap();
    assert_eq!(errno(t.getattr(f)), libc::ENOENT);

    let g = t.create(ROOT, "g", 0o644, 0, 0).unwrap().ino;
    t.setxattr(g, "user.tags", b"a,b").unwrap();
    assert_eq!(t.getxattr(g, "user.tags").unwrap(), b"a,b");
    assert_eq!(t.listxattr(g).unwrap(), ["user.tags", STATE_XATTR]);
    assert_eq!(t.getxattr(g, STATE_XATTR).unwrap(), b"empty");
    assert_eq!(errno(t.setxattr(g, STATE_XATTR, b"")), libc::EPERM);
    assert_eq!(errno(t.setxattr(g, "trusted.x", b"")), libc::ENOTSUP);
    assert_eq!(errno(t.setxattr(g, LINK_XATTR, b"")), libc::EPERM);
    t.removexattr(g, "user.tags").unwrap();
    assert_eq!(errno(t.removexattr(g, "user.tags")), libc::ENODATA);
    assert_eq!(errno(t.getxattr(g, "user.tags")), libc::ENODATA);
    let st = t.statfs().unwrap();
    assert_eq!((st.block_size, st.files, st.name_max), (4096, 2, 255));
    assert!(st.blocks >= st.blocks_free && st.blocks > 0);

    // A dirty file (large enough to be sealed, not kept inline) and an open-unlinked file at "crash"
    // time.
    let dirty = b"dirty at exit".repeat(50);
    t.open(g, true, false).await.unwrap();
    t.write(g, 0, &dirty).await.unwrap();
    t.fsync(g).unwrap();
    let h = t.create(ROOT, "h", 0o644, 0, 0).unwrap().ino;
    t.open(h, false, false).await.unwrap();
    t.unlink(ROOT, "h").unwrap();
    std::fs::write(repo.root().join("staging/999"), b"stray").unwrap();
    drop(t);
    let t = Tree::new(repo.clone()).unwrap();
    assert_eq!(errno(t.getattr(h)), libc::ENOENT);
    assert!(!repo.root().join("staging/999").exists());
    assert_eq!(t.read(g, 0, 1000).await.unwrap(), dirty);
    let queued = t.queue().list().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].payload.as_slice(), g.to_le_bytes());

    // put_link creates or replaces, guarded by the expected signature.
    let session = Sealer::new(repo.clone(), no_progress());
    let Sealed::Done(link) = t.seal(&repo.hold().await, g, &session).await.unwrap() else {
        panic!("not sealed")
    };
    let sig = signature(&t.inode(g).unwrap());
    assert_eq!(sig, link);
    let n = t.put_link(ROOT, "copy", &link, 650, 5, 0o640, None).unwrap();
    assert_eq!(t.read(n, 0, 1000).await.unwrap(), dirty);
    assert_eq!(
        errno(t.put_link(ROOT, "copy", &link, 650, 5, 0o640, Some("other"))),
        libc::EAGAIN
    );
    assert_eq!(
        errno(t.put_link(ROOT, "gone", &link, 650, 5, 0o640, Some("x"))),
        libc::EAGAIN
    );
    t.put_link(ROOT, "copy", &link, 650, 6, 0o600, Some(&link))
        .unwrap();
    assert_eq!(t.getattr(n).unwrap().mode, 0o600);
    t.mkdir(ROOT, "dir", 0o755, 0, 0).unwrap();
    assert_eq!(
        errno(t.put_link(ROOT, "dir", &link, 650, 5, 0o640, None)),
        libc::EISDIR
    );
    assert_eq!(signature(&t.inode(t.resolve("/dir").unwrap()).unwrap()), "dir");
}

/// Staged bytes stay until the change that replaces them is durable. A crash just before an unlink or a
/// replacement commits (injected here) must leave the file with its staged bytes; before the fix the
/// staging file was removed first, and the reopened tree fell back to older content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_an_unlink_or_replace_commits_keeps_the_staged_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let t = Tree::new(repo.clone()).unwrap();
    let session = Sealer::new(repo.clone(), no_progress());
    // A sealed link to replace content with.
    let s = t.create(ROOT, "sealed", 0o644, 0, 0).unwrap().ino;
    t.open(s, true, false).await.unwrap();
    t.write(s, 0, &[7u8; 1000]).await.unwrap();
    t.release(s, true).unwrap();
    let Sealed::Done(link) = t.seal(&repo.hold().await, s, &session).await.unwrap() else {
        panic!("not sealed")
    };
    let staged = |name: &'static str, body: &'static [u8]| {
        let t = &t;
        async move {
            let f = t.create(ROOT, name, 0o644, 0, 0).unwrap().ino;
            t.open(f, true, false).await.unwrap();
            t.write(f, 0, body).await.unwrap();
            t.fsync(f).unwrap();
            t.release(f, true).unwrap();
            f
        }
    };
    let a = staged("a", b"fsynced bytes of a").await;
    let b = staged("b", b"fsynced bytes of b").await;
    let c = staged("c", b"fsynced bytes of c").await;
    let keep = staged("keep", b"kept").await;
    let crash = |t: &Tree| {
        t.crash_before_commit
            .store(true, std::sync::atomic::Ordering::SeqCst)
    };
    crash(&t);
    assert!(t.unlink(ROOT, "a").is_err());
    crash(&t);
    assert!(t.put_link(ROOT, "b", &link, 1000, 0, 0o644, None).is_err());
    crash(&t);
    assert!(t.rename(ROOT, "keep", ROOT, "c", RenameMode::Replace).is_err());
    drop(t);
    let t = Tree::new(repo.clone()).unwrap();
    for (ino, body) in [
        (a, &b"fsynced bytes of a"[..]),
        (b, b"fsynced bytes of b"),
        (c, b"fsynced bytes of c"),
        (keep, b"kept"),
    ] {
        assert_eq!(t.read(ino, 0, 100).await.unwrap(), body, "inode {ino}");
        assert!(t.getattr(ino).unwrap().dirty);
    }

    // Committed but not yet synced: the bytes are set aside, and come back if the change is lost
    // (a power loss before the sync); after the sync they are gone.
    t.unlink(ROOT, "a").unwrap();
    t.put_link(ROOT, "b", &link, 1000, 0, 0o644, None).unwrap();
    t.rename(ROOT, "keep", ROOT, "c", RenameMode::Replace).unwrap();
    let staging = repo.root().join("staging");
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&staging)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let retired: Vec<String> = names().into_iter().filter(|n| n.contains(".retired.")).collect();
    assert_eq!(retired.len(), 3, "{:?}", names());
    assert!(staging.join(keep.to_string()).exists());
    t.sync().unwrap();
    assert!(names().iter().all(|n| !n.contains(".retired.")), "{:?}", names());
    assert_eq!(
        t.read(t.resolve("/b").unwrap(), 0, 1000).await.unwrap(),
        [7u8; 1000]
    );
    assert_eq!(t.read(t.resolve("/c").unwrap(), 0, 100).await.unwrap(), b"kept");
    assert_eq!(errno(t.resolve("/a")), libc::ENOENT);
}

/// A retired staging file comes back when the change that retired it was lost, newest first.
#[test]
fn retired_staging_files_are_restored_or_purged() {
    let dir = tempfile::tempdir().unwrap();
    let st = Staging::open(dir.path().join("staging")).unwrap();
    std::fs::write(st.path(5), b"old").unwrap();
    st.retire(5);
    std::fs::write(st.path(5), b"new").unwrap();
    st.retire(5);
    st.retire(6); // nothing staged: nothing to retire
    assert!(!st.path(5).exists());
    assert!(st.inodes().unwrap().is_empty());
    assert!(st.restore(5).unwrap());
    assert_eq!(std::fs::read(st.path(5)).unwrap(), b"new");
    assert!(!st.restore(6).unwrap());
    st.purge_retired().unwrap();
    assert!(!st.restore(5).unwrap());
    assert_eq!(st.inodes().unwrap(), vec![5]);
}

/// Sequential readers get read-ahead started past their position; a jump elsewhere does not start it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_reads_start_read_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let t = Arc::new(Tree::new(repo.clone()).unwrap());
    let sealer = Sealer::new(repo.clone(), no_progress());
    let f = t.create(ROOT, "f", 0o644, 0, 0).unwrap().ino;
    let body: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
    t.open(f, true, false).await.unwrap();
    t.write(f, 0, &body).await.unwrap();
    t.release(f, true).unwrap();
    assert!(matches!(
        t.seal(&repo.hold().await, f, &sealer).await.unwrap(),
        Sealed::Done(_)
    ));
    let far = Cursor::default();
    assert_eq!(
        t.read_sequential(f, &far, 2_400_000, 10).await.unwrap(),
        &body[2_400_000..2_400_010]
    );
    assert_eq!(
        Tree::read_ahead_mark(&far),
        0,
        "a read far from the start is not sequential"
    );
    let c = Cursor::default();
    assert_eq!(t.read_sequential(f, &c, 0, 4096).await.unwrap(), &body[..4096]);
    assert_eq!(Tree::read_ahead_mark(&c), 4096 + READ_AHEAD);
    assert_eq!(
        t.read_sequential(f, &c, 4096, 4096).await.unwrap(),
        &body[4096..8192]
    );
    assert_eq!(Tree::read_ahead_mark(&c), 4096 + READ_AHEAD, "still well ahead");
    // Reading what read-ahead fetched still returns the content.
    let rest = t.read_sequential(f, &c, 8192, 1 << 20).await.unwrap();
    assert!(
        rest == body[8192..8192 + (1 << 20)],
        "read-ahead changed what was read"
    );
}

/// The scratch folder is in no folder of the tree, keeps what it holds for gc while the tree is open,
/// and is emptied when the tree is opened again (as after a crash of the owner that filled it).
#[test]
fn the_scratch_folder_is_unreachable_and_emptied_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let t = Tree::new(repo.clone()).unwrap();
    let files = t.statfs().unwrap().files;
    assert_eq!(files, 1, "the root only");
    let (ino, name) = t.mkdir_scratch("link", 0o755, 0, 0).unwrap();
    assert!(name.starts_with("link-"));
    let sub = t.mkdir(ino, "sub", 0o755, 0, 0).unwrap();
    let link = "noisefs://example#key";
    t.put_link(sub.ino, "f", link, 3, 0, 0o644, None).unwrap();
    // No path reaches it, and nothing in the tree's own folders changed.
    assert!(t.readdir(ROOT).unwrap().is_empty());
    assert_eq!(errno(t.path_of(sub.ino)), libc::ENOENT);
    assert!(t.walk(ROOT).unwrap().is_empty());
    // A folder moves out of it and back (a receive is renamed into place).
    t.rename(SCRATCH, &name, ROOT, "placed", RenameMode::NoReplace)
        .unwrap();
    assert_eq!(t.path_of(sub.ino).unwrap(), "/placed/sub");
    t.rename(ROOT, "placed", SCRATCH, &name, RenameMode::NoReplace)
        .unwrap();
    assert_eq!(t.getattr(ROOT).unwrap().nlink, 2);
    // gc keeps what it holds while it is there.
    assert_eq!(t.links().unwrap(), vec![link.to_string()]);
    assert_eq!(t.statfs().unwrap().files, files + 3);
    drop(t);

    let t = Tree::new(repo).unwrap();
    assert!(t.readdir(SCRATCH).unwrap().is_empty());
    assert!(t.links().unwrap().is_empty());
    assert_eq!(t.statfs().unwrap().files, files);
}

#[tokio::test]
async fn special_files_setgid_folders_and_long_names() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo(dir.path());
    let t = Tree::new(r.clone()).unwrap();
    let dev = libc::makedev(8, 1);
    for (name, mode, kind) in [
        ("p", libc::S_IFIFO | 0o640, Kind::Fifo),
        ("s", libc::S_IFSOCK | 0o755, Kind::Socket),
        ("c", libc::S_IFCHR | 0o666, Kind::CharDevice),
        ("b", libc::S_IFBLK | 0o600, Kind::BlockDevice),
        ("f", libc::S_IFREG | 0o644, Kind::File),
    ] {
        assert_eq!(Kind::from_mode(mode), Some(kind));
        let a = t.mknod(ROOT, name, kind, mode, dev, 7, 8).unwrap();
        assert_eq!((a.kind, a.mode, a.uid), (kind, mode & 0o7777, 7), "{name}");
        // Only device nodes keep a device number.
        let want = if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            dev
        } else {
            0
        };
        assert_eq!(a.rdev, want, "{name}");
        if kind.is_special() {
            assert_eq!(errno(t.open(a.ino, false, false).await), libc::ENXIO, "{name}");
            assert_eq!(errno(t.read(a.ino, 0, 1).await), libc::EINVAL, "{name}");
            assert!(signature(&t.inode(a.ino).unwrap()).starts_with(kind.name()));
        }
    }
    assert_eq!(Kind::from_mode(libc::S_IFDIR), None);
    assert_eq!(errno(t.mknod(ROOT, "d", Kind::Dir, 0o755, 0, 0, 0)), libc::EINVAL);
    // They survive a reopen of the tree (the record round-trips) and take links and renames.
    drop(t);
    let t = Tree::new(r).unwrap();
    let b = t.lookup(ROOT, "b").unwrap();
    assert_eq!((b.kind, b.rdev), (Kind::BlockDevice, dev));
    t.link(b.ino, ROOT, "b2").unwrap();
    t.rename(ROOT, "b", ROOT, "b3", RenameMode::NoReplace).unwrap();
    assert_eq!(t.getattr(b.ino).unwrap().nlink, 2);
    t.unlink(ROOT, "b3").unwrap();
    t.unlink(ROOT, "b2").unwrap();
    assert_eq!(errno(t.getattr(b.ino)), libc::ENOENT);

    // A setgid folder passes its group on, and its setgid bit to subfolders.
    let team = t.mkdir(ROOT, "team", 0o2775, 0, 100).unwrap();
    let f = t.create(team.ino, "f", 0o644, 5, 5).unwrap();
    let sub = t.mkdir(team.ino, "sub", 0o755, 5, 5).unwrap();
    assert_eq!((f.gid, f.mode, sub.gid, sub.mode), (100, 0o644, 100, 0o2755));
    let plain = t.mkdir(ROOT, "plain", 0o755, 0, 100).unwrap();
    assert_eq!(t.create(plain.ino, "g", 0o644, 5, 5).unwrap().gid, 5);

    // A name longer than any folder holds is too long, not missing.
    let long = "n".repeat(NAME_MAX + 1);
    assert_eq!(errno(t.lookup(ROOT, &long)), libc::ENAMETOOLONG);
    assert_eq!(errno(t.unlink(ROOT, &long)), libc::ENAMETOOLONG);
    assert_eq!(
        errno(t.rename(ROOT, &long, ROOT, "x", RenameMode::Replace)),
        libc::ENAMETOOLONG
    );
    assert_eq!(errno(t.lookup(ROOT, &"n".repeat(NAME_MAX))), libc::ENOENT);
}

/// Small files live in their records: written, sealed as inline bytes (no blocks, no link), read,
/// rewritten, grown past the limit (then sealed) and shrunk back (inline again), across a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_kept_inline_in_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let t = Tree::new(repo.clone()).unwrap();
    let session = Sealer::new(repo.clone(), no_progress());
    let max = t.inline_max();
    assert_eq!(max, 512);
    let blocks = || repo.state().totals().unwrap().blocks;
    let before = blocks();

    let f = t.create(ROOT, "small", 0o644, 0, 0).unwrap().ino;
    assert_eq!(t.getxattr(f, STATE_XATTR).unwrap(), b"empty");
    t.open(f, true, false).await.unwrap();
    t.write(f, 0, &vec![b'a'; max as usize]).await.unwrap();
    assert_eq!(t.getxattr(f, STATE_XATTR).unwrap(), b"staged");
    t.release(f, true).unwrap();
    assert_eq!(
        t.seal(&repo.hold().await, f, &session).await.unwrap(),
        Sealed::Inline(max)
    );
    assert_eq!(blocks(), before, "nothing is sealed for a small file");
    assert_eq!(t.getxattr(f, STATE_XATTR).unwrap(), b"inline");
    let e = t.getxattr(f, LINK_XATTR).unwrap_err();
    assert_eq!(e.errno(), libc::ENODATA);
    assert!(e.to_string().contains("noisefs share"), "{e}");
    assert!(t.links().unwrap().is_empty());
    assert_eq!(t.read(f, max - 2, 10).await.unwrap(), b"aa");
    assert!(t.read(f, max + 5, 10).await.unwrap().is_empty());
    let out = dir.path().join("out");
    let n = t
        .copy_to(f, Box::new(std::fs::File::create(&out).unwrap()), out.clone())
        .await
        .unwrap();
    assert_eq!((n, std::fs::read(&out).unwrap()), (max, vec![b'a'; max as usize]));
    let held = t.holdings().unwrap();
    assert_eq!(
        (held.inline_files, held.inline_bytes, held.sealed.len()),
        (1, max, 0)
    );

    // Edited in place: the bytes come back into staging, and settle inline again.
    t.open(f, true, false).await.unwrap();
    t.write(f, 0, b"BB").await.unwrap();
    t.release(f, true).unwrap();
    assert_eq!(
        t.seal(&repo.hold().await, f, &session).await.unwrap(),
        Sealed::Inline(max)
    );
    assert_eq!(&t.read(f, 0, 3).await.unwrap(), b"BBa");

    // One byte past the limit: sealed into blocks with a link.
    t.open(f, true, false).await.unwrap();
    t.write(f, max, b"c").await.unwrap();
    t.release(f, true).unwrap();
    let Sealed::Done(link) = t.seal(&repo.hold().await, f, &session).await.unwrap() else {
        panic!("not sealed")
    };
    assert!(t.inode(f).unwrap().data.is_none());
    assert_eq!(t.getxattr(f, STATE_XATTR).unwrap(), b"sealed");
    assert_eq!(t.links().unwrap(), [link]);
    // Truncated back under it: inline again, the link dropped.
    t.setattr(
        f,
        SetAttr {
            size: Some(4),
            ..SetAttr::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        t.seal(&repo.hold().await, f, &session).await.unwrap(),
        Sealed::Inline(4)
    );
    assert!(t.links().unwrap().is_empty());

    // put_content refuses inline bytes over the limit; its size is the bytes' length.
    let big = Content::Data(vec![0; max as usize + 1]);
    assert_eq!(
        errno(t.put_content(ROOT, "big", &big, 0, 0, 0o644, None)),
        libc::EFBIG
    );
    let g = t
        .put_content(ROOT, "g", &Content::Data(b"xyz".to_vec()), 99, 5, 0o600, None)
        .unwrap();
    assert_eq!((t.getattr(g).unwrap().size, t.getattr(g).unwrap().mtime), (3, 5));
    // Replaced only when the caller's expectation holds (the signature of inline bytes).
    let sig = signature(&t.inode(g).unwrap());
    assert!(sig.starts_with("data:"), "{sig}");
    let other = Content::Data(b"new".to_vec());
    assert_eq!(
        errno(t.put_content(ROOT, "g", &other, 0, 0, 0o600, Some("data:nope"))),
        libc::EAGAIN
    );
    t.put_content(ROOT, "g", &other, 0, 0, 0o600, Some(&sig)).unwrap();

    // Everything survives a reopen.
    drop(t);
    let t = Tree::new(repo.clone()).unwrap();
    assert_eq!(t.read(f, 0, 100).await.unwrap(), b"BBaa");
    assert_eq!(t.read(g, 0, 100).await.unwrap(), b"new");
    assert_eq!(t.holdings().unwrap().inline_bytes, 7);
}

/// `tree import` keeps small files inline and seals larger ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keeps_small_files_inline() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let t = Tree::new(repo.clone()).unwrap();
    let session = Sealer::new(repo.clone(), no_progress());
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("edge"), vec![1u8; 512]).unwrap();
    std::fs::write(src.join("big"), vec![2u8; 513]).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    let r = copy::import(&t, &repo.hold().await, &session, &src, "/")
        .await
        .unwrap();
    assert_eq!(r.files, 4);
    let state = |name: &str| {
        t.getxattr(t.resolve(&format!("/src/{name}")).unwrap(), STATE_XATTR)
            .unwrap()
    };
    assert_eq!(state("a.txt"), b"inline");
    assert_eq!(state("edge"), b"inline");
    assert_eq!(state("big"), b"sealed");
    assert_eq!(state("empty"), b"empty");
    let a = t.resolve("/src/a.txt").unwrap();
    assert_eq!(t.read(a, 0, 100).await.unwrap(), b"alpha");
    assert_eq!(t.links().unwrap().len(), 1);
}
