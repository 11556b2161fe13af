//! End-to-end tests through a real kernel mount: ordinary tools, POSIX errors, a randomized differential
//! test against a plain file, persistence across remounts and a `kill -9`, read-only and link mounts.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::*;

fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Waits until the file's content is sealed (it then has a link).
/// Waits until the engine has settled what was written to `p`: sealed, or kept inline (small files).
fn wait_sealed(p: &Path) {
    wait_until("the file to be sealed", || {
        getxattr(p, "user.noisefs.state").is_ok_and(|s| s != b"staged")
    });
}

#[test]
fn ordinary_tools_work_and_everything_persists() {
    let env = Env::new();
    let src = env.path("src");
    make_source(&src);
    let m = env.mount("");
    let mnt = env.mnt();

    // cp -a in and out, tar, rsync: the trees come back identical.
    sh(Command::new("cp").arg("-a").arg(&src).arg(&mnt));
    same_tree(&src, &mnt.join("src"));
    sh(Command::new("cp")
        .arg("-a")
        .arg(mnt.join("src"))
        .arg(env.path("out")));
    same_tree(&src, &env.path("out"));
    let tar = env.path("src.tar");
    sh(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&mnt)
        .arg("src"));
    std::fs::create_dir(env.path("untar")).unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(env.path("untar")));
    same_tree(&src, &env.path("untar/src"));
    std::fs::create_dir(mnt.join("untarred")).unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(mnt.join("untarred")));
    same_tree(&src, &mnt.join("untarred/src"));
    if which("rsync") {
        sh(Command::new("rsync")
            .arg("-a")
            .arg(format!("{}/", src.display()))
            .arg(mnt.join("rsynced")));
        same_tree(&src, &mnt.join("rsynced"));
    }
    // Modes and times survive.
    let (a, b) = (
        std::fs::metadata(src.join("a/mid.bin")).unwrap(),
        std::fs::metadata(mnt.join("src/a/mid.bin")).unwrap(),
    );
    assert_eq!((a.mode() & 0o7777, a.mtime()), (b.mode() & 0o7777, b.mtime()));

    // git works inside the mount.
    let repo = mnt.join("project");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&repo))
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("main.rs"), "fn main() {}\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "first"]);
    std::fs::write(repo.join("main.rs"), "fn main() { println!(\"2\"); }\n").unwrap();
    git(&["commit", "-qam", "second"]);
    git(&["checkout", "-q", "HEAD~1"]);
    assert_eq!(
        std::fs::read_to_string(repo.join("main.rs")).unwrap(),
        "fn main() {}\n"
    );
    git(&["checkout", "-q", "main"]);
    assert!(git(&["status", "--porcelain"]).is_empty());

    // An editor's atomic save: write a temp file, fsync, rename over; the file is whole at every step.
    let doc = mnt.join("doc.txt");
    std::fs::write(&doc, b"version 1").unwrap();
    for v in 2..6 {
        let tmp = mnt.join(".doc.txt.swp");
        let mut f = File::create(&tmp).unwrap();
        f.write_all(format!("version {v} {}", "x".repeat(v * 1000)).as_bytes())
            .unwrap();
        f.sync_all().unwrap();
        drop(f);
        assert!(std::fs::read(&doc)
            .unwrap()
            .starts_with(format!("version {}", v - 1).as_bytes()));
        std::fs::rename(&tmp, &doc).unwrap();
        assert!(std::fs::read(&doc)
            .unwrap()
            .starts_with(format!("version {v}").as_bytes()));
    }

    // Unmount, mount again: everything is there.
    wait_sealed(&mnt.join("src/a/b/c/big.bin"));
    m.unmount();
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "the mount point is empty once unmounted"
    );
    let m = env.mount("");
    same_tree(&src, &mnt.join("src"));
    assert!(git(&["status", "--porcelain"]).is_empty());
    assert_eq!(git(&["log", "--format=%s"]), "second\nfirst\n");
    assert!(std::fs::read(&doc).unwrap().starts_with(b"version 5"));
    m.unmount();
}

fn which(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn posix_errors_and_semantics() {
    let env = Env::new();
    let m = env.mount("");
    let mnt = env.mnt();
    std::fs::create_dir(mnt.join("d")).unwrap();
    std::fs::write(mnt.join("d/f"), b"x").unwrap();
    std::fs::write(mnt.join("file"), b"content").unwrap();

    assert_eq!(errno_of(File::open(mnt.join("missing"))), libc::ENOENT);
    assert_eq!(errno_of(std::fs::create_dir(mnt.join("d"))), libc::EEXIST);
    assert_eq!(
        errno_of(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(mnt.join("file"))
        ),
        libc::EEXIST
    );
    assert_eq!(errno_of(std::fs::remove_dir(mnt.join("d"))), libc::ENOTEMPTY);
    assert_eq!(
        errno_of(OpenOptions::new().write(true).open(mnt.join("d"))),
        libc::EISDIR
    );
    assert_eq!(errno_of(File::open(mnt.join("file/x"))), libc::ENOTDIR);
    assert_eq!(errno_of(std::fs::remove_file(mnt.join("d"))), libc::EISDIR);
    assert_eq!(
        errno_of(std::fs::write(mnt.join("n".repeat(256)), b"")),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_of(std::fs::rename(mnt.join("d"), mnt.join("d/inside"))),
        libc::EINVAL
    );

    // rename over an existing file, across folders, NOREPLACE and EXCHANGE.
    std::fs::write(mnt.join("other"), b"other").unwrap();
    std::fs::rename(mnt.join("other"), mnt.join("d/f")).unwrap();
    assert_eq!(std::fs::read(mnt.join("d/f")).unwrap(), b"other");
    let renameat2 = |a: &Path, b: &Path, flags: u32| {
        let (ca, cb) = (cpath(a), cpath(b));
        // SAFETY: valid C strings; AT_FDCWD with absolute paths.
        let rc = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), flags) };
        if rc == 0 {
            0
        } else {
            last_errno()
        }
    };
    assert_eq!(
        renameat2(&mnt.join("file"), &mnt.join("d/f"), libc::RENAME_NOREPLACE),
        libc::EEXIST
    );
    assert_eq!(
        renameat2(&mnt.join("file"), &mnt.join("d/f"), libc::RENAME_EXCHANGE),
        0
    );
    assert_eq!(std::fs::read(mnt.join("file")).unwrap(), b"other");
    assert_eq!(std::fs::read(mnt.join("d/f")).unwrap(), b"content");

    // Hard links, symlinks, chmod, truncate up and down, utimens.
    std::fs::hard_link(mnt.join("file"), mnt.join("hard")).unwrap();
    assert_eq!(std::fs::metadata(mnt.join("file")).unwrap().nlink(), 2);
    std::os::unix::fs::symlink("d/f", mnt.join("sym")).unwrap();
    assert_eq!(std::fs::read(mnt.join("sym")).unwrap(), b"content");
    assert_eq!(std::fs::read_link(mnt.join("sym")).unwrap(), Path::new("d/f"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(mnt.join("file"), std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(std::fs::metadata(mnt.join("hard")).unwrap().mode() & 0o777, 0o640);
    let f = OpenOptions::new().write(true).open(mnt.join("file")).unwrap();
    f.set_len(2).unwrap();
    f.set_len(5).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
    drop(f);
    assert_eq!(std::fs::read(mnt.join("file")).unwrap(), b"ot\0\0\0");
    assert_eq!(
        std::fs::metadata(mnt.join("file")).unwrap().mtime(),
        1_000_000_000
    );

    // O_APPEND, sparse writes and reads past a hole, O_TRUNC.
    let mut f = OpenOptions::new().append(true).open(mnt.join("file")).unwrap();
    f.write_all(b"+end").unwrap();
    drop(f);
    assert_eq!(std::fs::read(mnt.join("file")).unwrap(), b"ot\0\0\0+end");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(mnt.join("sparse"))
        .unwrap();
    f.write_all_at(b"far", 5_000_000).unwrap();
    drop(f);
    let data = std::fs::read(mnt.join("sparse")).unwrap();
    assert_eq!(data.len(), 5_000_003);
    assert!(data[..5_000_000].iter().all(|b| *b == 0) && &data[5_000_000..] == b"far");
    let f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(mnt.join("sparse"))
        .unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0);
    drop(f);

    // A file deleted while open stays readable through its handle.
    std::fs::write(mnt.join("gone"), b"still readable").unwrap();
    let mut h = File::open(mnt.join("gone")).unwrap();
    std::fs::remove_file(mnt.join("gone")).unwrap();
    assert_eq!(errno_of(std::fs::metadata(mnt.join("gone"))), libc::ENOENT);
    let mut s = String::new();
    h.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still readable");
    drop(h);

    // Two writers on one file, disjoint ranges.
    let big = mnt.join("shared");
    File::create(&big).unwrap().set_len(2_000_000).unwrap();
    let writers: Vec<_> = (0..2u8)
        .map(|i| {
            let p = big.clone();
            std::thread::spawn(move || {
                let f = OpenOptions::new().write(true).open(&p).unwrap();
                for k in 0..100u64 {
                    f.write_all_at(&[i + 1; 10_000], (u64::from(i) * 1_000_000) + k * 10_000)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let data = std::fs::read(&big).unwrap();
    assert!(data[..1_000_000].iter().all(|b| *b == 1) && data[1_000_000..].iter().all(|b| *b == 2));

    // Extended attributes: user namespace, and the read-only link of a sealed file.
    setxattr(&mnt.join("d/f"), "user.color", b"blue", 0).unwrap();
    assert_eq!(getxattr(&mnt.join("d/f"), "user.color").unwrap(), b"blue");
    assert_eq!(
        setxattr(&mnt.join("d/f"), "user.color", b"red", libc::XATTR_CREATE),
        Err(libc::EEXIST)
    );
    assert_eq!(getxattr(&mnt.join("d/f"), "user.none"), Err(libc::ENODATA));
    // A small file is kept inline in the tree: no link of its own.
    wait_sealed(&mnt.join("d/f"));
    assert_eq!(
        getxattr(&mnt.join("d/f"), "user.noisefs.state").unwrap(),
        b"inline"
    );
    assert_eq!(
        getxattr(&mnt.join("d/f"), "user.noisefs.link"),
        Err(libc::ENODATA)
    );
    let sealed = mnt.join("d/sealed.bin");
    let body = pseudo_random(20_000, 9);
    std::fs::write(&sealed, &body).unwrap();
    wait_sealed(&sealed);
    assert_eq!(getxattr(&sealed, "user.noisefs.state").unwrap(), b"sealed");
    let link = String::from_utf8(getxattr(&sealed, "user.noisefs.link").unwrap()).unwrap();
    assert!(link.starts_with("noisefs://"));
    for name in ["user.noisefs.link", "user.noisefs.state"] {
        assert_eq!(setxattr(&sealed, name, b"x", 0), Err(libc::EPERM), "{name}");
    }
    // The sealed link is an ordinary link for the CLI (which goes through the mount's socket).
    let out = env.cli(&["cat", &link]);
    assert_eq!(out.stdout, body);

    // Reserved virtual folders: present, empty, read-only.
    assert!(std::fs::metadata(mnt.join(".search")).unwrap().is_dir());
    assert_eq!(std::fs::read_dir(mnt.join(".announce")).unwrap().count(), 0);
    assert_eq!(
        errno_of(std::fs::write(mnt.join(".announce/q"), b"")),
        libc::EROFS
    );
    // Every name in .search is a query folder.
    assert_eq!(errno_of(std::fs::write(mnt.join(".search/q"), b"")), libc::EISDIR);
    assert_eq!(errno_of(std::fs::create_dir(mnt.join(".search"))), libc::EEXIST);
    assert_eq!(errno_of(std::fs::remove_dir(mnt.join(".search"))), libc::EROFS);
    let names: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".search")),
        "virtual folders are not listed: {names:?}"
    );

    // statfs has real numbers.
    // SAFETY: statvfs fills the struct for a valid path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(cpath(&mnt).as_ptr(), &mut st) }, 0);
    assert!(st.f_blocks > 0 && st.f_bfree <= st.f_blocks && st.f_namemax == 255 && st.f_files > 0);

    // The CLI works while mounted: the mount process serves it.
    let status = env.ok(&["status"]);
    assert!(
        status.contains(&format!("owns the repository (pid {}", m.child.id())),
        "{status}"
    );
    assert!(env.ok(&["tree", "ls", "/d"]).contains(" f"));
    m.unmount();
}

#[test]
fn random_operations_match_a_reference_file() {
    let env = Env::new();
    let m = env.mount("");
    let path = env.mnt().join("fsx.bin");
    let reference = env.path("reference.bin");
    let open = |p: &Path| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .unwrap()
    };
    let (mut f, r) = (open(&path), open(&reference));
    let mut x: u64 = 0x5eed_1234;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    const MAX: u64 = 3 << 20;
    let ops = 3000;
    for i in 0..ops {
        match next(10) {
            0..=3 => {
                let (off, len) = (next(MAX), 1 + next(200_000));
                let data = pseudo_random(len as usize, i);
                f.write_all_at(&data, off).unwrap();
                r.write_all_at(&data, off).unwrap();
            }
            4..=6 => {
                let size = r.metadata().unwrap().len();
                let (off, len) = (next(size + 10), 1 + next(300_000));
                let (mut a, mut b) = (vec![0u8; len as usize], vec![0u8; len as usize]);
                let (na, nb) = (read_full(&f, &mut a, off), read_full(&r, &mut b, off));
                assert_eq!(na, nb, "op {i}: read length at {off}+{len}");
                assert!(a[..na] == b[..nb], "op {i}: read content at {off}+{len}");
            }
            7 => {
                let size = next(MAX);
                f.set_len(size).unwrap();
                r.set_len(size).unwrap();
            }
            8 => {
                assert_eq!(
                    f.metadata().unwrap().len(),
                    r.metadata().unwrap().len(),
                    "op {i}: size"
                );
            }
            _ => {
                // Close and reopen (the file may be sealed in between), sometimes after an fsync.
                if next(2) == 0 {
                    f.sync_all().unwrap();
                }
                drop(f);
                f = open(&path);
                f.seek(SeekFrom::Start(0)).unwrap();
            }
        }
    }
    drop(f);
    let want = std::fs::read(&reference).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), want, "final content");
    wait_sealed(&path);
    m.unmount();
    let m = env.mount("");
    assert_eq!(std::fs::read(&path).unwrap(), want, "content after a remount");
    m.unmount();
}

fn read_full(f: &File, buf: &mut [u8], off: u64) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

#[test]
fn fsynced_data_survives_kill_9() {
    let env = Env::new();
    let m = env.mount("");
    let mnt = env.mnt();
    std::fs::create_dir(mnt.join("keep")).unwrap();
    let data = pseudo_random(1_500_000, 7);
    let mut f = File::create(mnt.join("keep/synced.bin")).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    let d = File::open(mnt.join("keep")).unwrap();
    d.sync_all().unwrap();
    // Still open and written, but never fsynced: may or may not survive.
    f.write_all(b"tail not synced").unwrap();
    let mut g = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(mnt.join("unsynced"))
        .unwrap();
    g.write_all(b"maybe").unwrap();
    m.kill();
    drop(f);
    drop(g);

    let m = env.mount("");
    let got = std::fs::read(mnt.join("keep/synced.bin")).unwrap();
    assert!(
        got.len() >= data.len() && got[..data.len()] == data[..],
        "fsynced bytes lost"
    );
    // The repository reopened cleanly and the staged file is sealed after the restart.
    wait_sealed(&mnt.join("keep/synced.bin"));
    m.unmount();
    let v = Command::new(Path::new(env!("CARGO_BIN_EXE_mount-noisefs")).with_file_name("noisefs"))
        .args(["repo", "verify"])
        .env("NOISEFS_HOME", env.repo())
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn read_only_link_and_subtree_mounts() {
    let env = Env::new();
    let src = env.path("src");
    make_source(&src);
    let link = env.ok(&["put", src.to_str().unwrap()]).trim().to_string();
    env.ok(&["tree", "import", src.to_str().unwrap(), "/"]);

    // Read-only: reads work, every change is EROFS.
    let m = env.mount("ro");
    let mnt = env.mnt();
    same_tree(&src, &mnt.join("src"));
    assert_eq!(errno_of(std::fs::write(mnt.join("new"), b"x")), libc::EROFS);
    assert_eq!(
        errno_of(std::fs::remove_file(mnt.join("src/small.txt"))),
        libc::EROFS
    );
    assert_eq!(
        errno_of(OpenOptions::new().write(true).open(mnt.join("src/small.txt"))),
        libc::EROFS
    );
    m.unmount();

    // A subtree as the root.
    let m = env.mount("root=/src/a");
    assert_eq!(
        std::fs::read(mnt.join("mid.bin")).unwrap(),
        pseudo_random(200_000, 1)
    );
    std::fs::write(mnt.join("added"), b"in the subtree").unwrap();
    m.unmount();
    assert!(env.ok(&["tree", "ls", "/src/a"]).contains("added"));

    // A link: shown read-only, equal to what was put.
    let m = env.mount_at(&link, &mnt, "");
    same_tree(&src, &mnt);
    assert_eq!(errno_of(std::fs::write(mnt.join("x"), b"x")), libc::EROFS);
    m.unmount();
    // A missing block gives EIO on that read, and the mount stays up.
    for shard in std::fs::read_dir(env.repo().join("blocks")).unwrap() {
        for b in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            std::fs::remove_file(b.unwrap().path()).unwrap();
        }
    }
    let m = env.mount("");
    assert_eq!(errno_of(std::fs::read(mnt.join("src/a/mid.bin"))), libc::EIO);
    assert!(std::fs::metadata(mnt.join("src")).unwrap().is_dir());
    m.unmount();
}

#[test]
fn helper_refuses_bad_mount_points_clearly() {
    let env = Env::new();
    std::fs::write(env.mnt().join("occupied"), b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mount-noisefs"))
        .arg(env.repo())
        .arg(env.mnt())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mount-noisefs"))
        .arg(env.repo())
        .arg(env.path("nowhere"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = Command::new(env!("CARGO_BIN_EXE_mount-noisefs"))
        .arg("only-one")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // `noisefs mount` (backgrounded) and `noisefs unmount`, as a user runs them.
    std::fs::remove_file(env.mnt().join("occupied")).unwrap();
    let mnt = env.mnt();
    env.ok(&["mount", mnt.to_str().unwrap()]);
    assert!(is_mounted(&mnt));
    std::fs::write(mnt.join("hello.txt"), b"hi").unwrap();
    // A second mount of the same repository is refused, naming the owner.
    std::fs::create_dir(env.path("mnt2")).unwrap();
    let out = env.cli(&["mount", env.path("mnt2").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked by process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["unmount", mnt.to_str().unwrap()]);
    assert!(!is_mounted(&mnt));
    assert!(env.ok(&["tree", "ls", "/"]).contains("hello.txt"));

    // A link mounted in the background: its key is in no process's arguments, and the mount's log
    // (world-readable as an earlier version made it) is its owner's only and never holds the key.
    use std::os::unix::fs::PermissionsExt;
    let log = env.repo().join("mount.log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(env.path("shared.txt"), b"shared").unwrap();
    let link = env
        .ok(&["put", env.path("shared.txt").to_str().unwrap()])
        .trim()
        .to_string();
    let key = link.split_once('#').unwrap().1.to_string();
    env.ok(&["mount", "--root", &link, mnt.to_str().unwrap()]);
    assert!(is_mounted(&mnt));
    assert_eq!(std::fs::read(mnt.join("shared.txt")).unwrap(), b"shared");
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !cmdline.contains(&key),
                "a link's key in the arguments of {cmdline}"
            );
        }
    }
    env.ok(&["unmount", mnt.to_str().unwrap()]);
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!std::fs::read_to_string(&log).unwrap().contains(&key));
}

/// `gc` looping in the owner while the mount seals files (some saved by rename-over) and a `put`
/// streams keeps every block they need: after a remount every file reads back, the put's link opens,
/// and the repository verifies (before the hold gate, a file read back as EIO).
#[test]
fn gc_in_a_loop_while_files_are_written_keeps_everything() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let env = Env::new();
    let big = pseudo_random(24 << 20, 99);
    std::fs::write(env.path("big.bin"), &big).unwrap();
    let m = env.mount("");
    let mnt = env.mnt();
    std::fs::create_dir(mnt.join("w")).unwrap();

    let stop = AtomicBool::new(false);
    let runs = AtomicUsize::new(0);
    let (want, put) = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            // Bounded: at most 2,000 collections, and it stops as soon as the writers are done.
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                env.ok(&["gc", "--quiet"]);
                runs.fetch_add(1, Ordering::Relaxed);
            }
        });
        let put = s.spawn(|| env.ok(&["put", "big.bin"]));

        // 40 files from 3 KB to 1.1 MB; every third is saved as an editor does (write a temporary,
        // rename it over the old version).
        let mut want = Vec::new();
        for i in 0..40u64 {
            let size = 3_000 + (i as usize * 28_000) % 1_100_000;
            let body = pseudo_random(size, i + 1);
            let p = mnt.join(format!("w/f{i}.bin"));
            std::fs::write(&p, pseudo_random(size / 2 + 1, i + 100)).unwrap();
            if i % 3 == 0 {
                wait_sealed(&p);
                let tmp = mnt.join(format!("w/.f{i}.swp"));
                std::fs::write(&tmp, &body).unwrap();
                std::fs::rename(&tmp, &p).unwrap();
            } else {
                std::fs::write(&p, &body).unwrap();
            }
            want.push((p, body));
        }
        for (p, _) in &want {
            wait_sealed(p);
        }
        let put = put.join();
        stop.store(true, Ordering::Relaxed);
        gc.join().unwrap();
        (want, put.unwrap())
    });
    let link = put.trim().to_string();
    assert!(runs.load(Ordering::Relaxed) > 0, "no gc ran during the writes");
    env.ok(&["gc", "--quiet"]);
    m.unmount();

    let m = env.mount("");
    for (p, body) in &want {
        let got = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(got == *body, "{} came back different", p.display());
    }
    m.unmount();
    env.ok(&["get", &link, "-o", "big.out"]);
    assert!(
        std::fs::read(env.path("big.out")).unwrap() == big,
        "the put's content differs"
    );
    env.ok(&["repo", "verify"]);
}

/// A mounted link is shown read-only and leaves the user's tree as it was: nothing in `tree ls`, no
/// hits in search, and once it is unmounted (or its mount is killed) gc no longer keeps its blocks.
/// (Before, the link was received into `/.noisefs-links` for good: visible, writable, searchable, kept.)
#[test]
fn a_mounted_link_leaves_the_tree_as_it_was() {
    let env = Env::new();
    let src = env.path("album");
    std::fs::create_dir_all(src.join("disc")).unwrap();
    std::fs::write(src.join("notes.txt"), b"zanzibar liner notes").unwrap();
    let big = pseudo_random(700_000, 5);
    std::fs::write(src.join("disc/track.bin"), &big).unwrap();
    let link = env.ok(&["put", src.to_str().unwrap()]).trim().to_string();
    env.ok(&["unpin", &link]);
    std::fs::create_dir(env.path("own")).unwrap();
    std::fs::write(env.path("own/mine.txt"), b"mine").unwrap();
    env.ok(&["tree", "import", env.path("own").to_str().unwrap(), "/own"]);
    let before = env.ok(&["tree", "ls", "/"]);

    let mnt = env.mnt();
    let m = env.mount(&format!("root={link}"));
    assert_eq!(
        std::fs::read(mnt.join("notes.txt")).unwrap(),
        b"zanzibar liner notes"
    );
    assert_eq!(std::fs::read(mnt.join("disc/track.bin")).unwrap(), big);
    let err = std::fs::write(mnt.join("new.txt"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // Its /.search does not search the user's tree (nor the link: the index covers the tree only).
    let hits = std::fs::read_dir(mnt.join(".search/mine"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(hits, 0);
    // Commands go through the mount's owner meanwhile: the tree and search show only the user's own.
    assert_eq!(env.ok(&["tree", "ls", "/"]), before);
    assert!(env.ok(&["search", "zanzibar"]).trim().is_empty());
    // status names the mount as the owner; `daemon stop` does not end a mount, and says what does.
    let canon = std::fs::canonicalize(&mnt).unwrap();
    assert!(env
        .ok(&["status"])
        .contains(&format!("the mount on {} owns the repository", canon.display())));
    let out = env.cli(&["daemon", "stop"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("noisefs unmount"));
    // gc keeps what the mount shows while it runs.
    env.ok(&["gc"]);
    assert_eq!(std::fs::read(mnt.join("disc/track.bin")).unwrap(), big);
    m.unmount();
    assert_eq!(env.ok(&["tree", "ls", "/"]), before);
    let gc: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert!(gc["freed_bytes"].as_u64().unwrap() >= 700_000, "{gc}");

    // Killed while it shows a link (no unmount of its own), the mount leaves nothing for gc to keep.
    std::fs::write(env.path("single.bin"), pseudo_random(500_000, 6)).unwrap();
    let single = env
        .ok(&["put", env.path("single.bin").to_str().unwrap()])
        .trim()
        .to_string();
    env.ok(&["unpin", &single]);
    let m = env.mount(&format!("root={single}"));
    assert_eq!(
        std::fs::read(mnt.join("single.bin")).unwrap(),
        pseudo_random(500_000, 6)
    );
    m.kill();
    assert_eq!(env.ok(&["tree", "ls", "/"]), before);
    let gc: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert!(gc["freed_bytes"].as_u64().unwrap() >= 500_000, "{gc}");
}

/// Small files written through the mount are kept inline in the tree (no blocks), survive a remount,
/// grow into sealed files and back, and a shared folder of them carries their bytes in its manifest.
#[test]
fn small_files_cost_what_they_weigh() {
    let env = Env::new();
    let m = env.mount("");
    let mnt = env.mnt();
    let dir = mnt.join("src");
    std::fs::create_dir(&dir).unwrap();
    let mut want = Vec::new();
    for i in 0..200u64 {
        let body = pseudo_random(100 + (i as usize * 37) % 8_000, i);
        let p = dir.join(format!("f{i}.txt"));
        std::fs::write(&p, &body).unwrap();
        want.push((p, body));
    }
    for (p, _) in &want {
        wait_sealed(p);
        assert_eq!(
            getxattr(p, "user.noisefs.state").unwrap(),
            b"inline",
            "{}",
            p.display()
        );
    }
    let stats: serde_json::Value = serde_json::from_str(&env.ok(&["repo", "stats", "--json"])).unwrap();
    let bytes: u64 = want.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(stats["tree_inline_files"], 200, "{stats}");
    assert_eq!(stats["tree_inline_bytes"], bytes, "{stats}");
    assert_eq!(stats["data_blocks"], 0, "nothing sealed: {stats}");
    assert!(stats["kept_content_bytes"].as_u64().unwrap() >= bytes, "{stats}");

    // Grown past an eighth of a block it is sealed; cut back, it is inline again.
    let edge = &want[0].0;
    std::fs::write(edge, pseudo_random(9_000, 77)).unwrap();
    wait_sealed(edge);
    assert_eq!(getxattr(edge, "user.noisefs.state").unwrap(), b"sealed");
    let f = OpenOptions::new().write(true).open(edge).unwrap();
    f.set_len(10).unwrap();
    drop(f);
    wait_sealed(edge);
    assert_eq!(getxattr(edge, "user.noisefs.state").unwrap(), b"inline");
    want[0].1 = pseudo_random(9_000, 77)[..10].to_vec();

    // Shared, the folder's manifest holds the files themselves: no entry has a link of its own.
    let link = env.ok(&["share", "/src"]).trim().to_string();
    let ls: serde_json::Value = serde_json::from_str(&env.ok(&["ls", &link, "--json"])).unwrap();
    let entries = ls.as_array().unwrap();
    assert_eq!(entries.len(), 200);
    assert!(entries.iter().all(|e| e["link"].is_null()), "{ls}");
    let got = env.path("got");
    env.ok(&["get", &link, "-o", &got.display().to_string()]);
    m.unmount();

    let m = env.mount("");
    for (p, body) in &want {
        assert_eq!(
            &std::fs::read(p).unwrap(),
            body,
            "{} after a remount",
            p.display()
        );
        let name = p.file_name().unwrap();
        assert_eq!(&std::fs::read(got.join(name)).unwrap(), body, "shared copy");
    }
    m.unmount();
}
