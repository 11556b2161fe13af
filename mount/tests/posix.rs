//! End-to-end tests of the mount as a multi-user POSIX drive: `allow_other` with the kernel checking
//! modes, ownership rules acted out as another user (`setpriv`), special files kept as metadata, the
//! `uid=`/`gid=`/`umask=` options, and `mount -t fuse.noisefs` through util-linux with an fstab line.
//! They run as root (as CI does).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;

/// The user the tests act as when they are not root.
const NOBODY: u32 = 65534;

/// Runs `script` with `sh -c` as uid:gid `NOBODY` with no supplementary groups; its exit status.
fn as_nobody(script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("run setpriv")
}

/// Asserts that `script`, run as `NOBODY`, fails with a message containing `want`.
fn nobody_fails(script: &str, want: &str) {
    let out = as_nobody(script);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{script}: succeeded as another user");
    assert!(err.contains(want), "{script}: {err} (wanted {want:?})");
}

fn nobody_ok(script: &str) {
    let out = as_nobody(script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An environment whose folders other users can pass through (the mount point lies inside it).
fn open_env() -> Env {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env
}

fn mknod(p: &Path, mode: u32, dev: u64) -> i32 {
    let c = cpath(p);
    // SAFETY: a valid C string.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } == 0 {
        0
    } else {
        last_errno()
    }
}

#[test]
fn other_users_get_what_the_modes_allow() {
    let env = open_env();
    let m = env.mount("allow_other");
    let mnt = env.mnt();
    let q = |p: &str| mnt.join(p).display().to_string();
    std::fs::write(mnt.join("public"), b"for everyone").unwrap();
    std::fs::write(mnt.join("secret"), b"root only").unwrap();
    std::fs::set_permissions(mnt.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // Without allow_other, nobody else could even list the root; with it, the modes decide.
    nobody_ok(&format!("cat {} && ls {}", q("public"), q("")));
    nobody_fails(&format!("cat {}", q("secret")), "Permission denied");
    nobody_fails(&format!("touch {}", q("mine")), "Permission denied");
    nobody_fails(&format!("chmod 666 {}", q("public")), "Operation not permitted");
    nobody_fails(
        &format!("chown {NOBODY} {}", q("public")),
        "Operation not permitted",
    );

    // A sticky, world-writable folder: everyone creates, only owners remove.
    std::fs::create_dir(mnt.join("tmp")).unwrap();
    std::fs::set_permissions(mnt.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(mnt.join("tmp/roots"), b"r").unwrap();
    nobody_ok(&format!(
        "echo n > {} && mv {} {}",
        q("tmp/n"),
        q("tmp/n"),
        q("tmp/n2")
    ));
    assert_eq!(std::fs::metadata(mnt.join("tmp/n2")).unwrap().uid(), NOBODY);
    nobody_fails(&format!("rm -f {}", q("tmp/roots")), "Operation not permitted");
    nobody_fails(
        &format!("mv {} {}", q("tmp/roots"), q("tmp/x")),
        "Operation not permitted",
    );
    // A group change to a group the owner belongs to is allowed, to another not.
    nobody_ok(&format!("chgrp {NOBODY} {}", q("tmp/n2")));
    nobody_fails(&format!("chgrp 0 {}", q("tmp/n2")), "Operation not permitted");

    // setuid and setgid go when a user other than root writes the file, and on chown.
    std::fs::write(mnt.join("tmp/prog"), b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(mnt.join("tmp/prog"), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(mnt.join("tmp/prog"), std::fs::Permissions::from_mode(0o6775)).unwrap();
    nobody_ok(&format!("echo more >> {}", q("tmp/prog")));
    assert_eq!(
        std::fs::metadata(mnt.join("tmp/prog")).unwrap().mode() & 0o7777,
        0o775
    );
    std::fs::set_permissions(mnt.join("tmp/prog"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::chown(mnt.join("tmp/prog"), Some(0), None).unwrap();
    assert_eq!(
        std::fs::metadata(mnt.join("tmp/prog")).unwrap().mode() & 0o7777,
        0o755
    );

    // utimensat: UTIME_NOW needs write access, a given time needs ownership.
    nobody_ok(&format!("touch {}", q("tmp/n2")));
    nobody_fails(&format!("touch {}", q("public")), "Permission denied");
    std::fs::set_permissions(mnt.join("public"), std::fs::Permissions::from_mode(0o666)).unwrap();
    nobody_ok(&format!("touch {}", q("public")));
    nobody_fails(
        &format!("touch -d 2001-01-01 {}", q("public")),
        "Operation not permitted",
    );

    // A setgid folder gives new entries its group, and new subfolders its setgid bit.
    std::fs::create_dir(mnt.join("team")).unwrap();
    std::os::unix::fs::chown(mnt.join("team"), None, Some(100)).unwrap();
    std::fs::set_permissions(mnt.join("team"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    std::fs::write(mnt.join("team/f"), b"f").unwrap();
    std::fs::create_dir(mnt.join("team/sub")).unwrap();
    let (f, sub) = (
        std::fs::metadata(mnt.join("team/f")).unwrap(),
        std::fs::metadata(mnt.join("team/sub")).unwrap(),
    );
    assert_eq!((f.gid(), sub.gid()), (100, 100));
    assert_eq!(sub.mode() & 0o2000, 0o2000);
    // Folder link counts: 2 plus one per subfolder.
    assert_eq!(std::fs::metadata(mnt.join("team")).unwrap().nlink(), 3);
    m.unmount();
}

#[test]
fn special_files_are_kept_as_metadata() {
    let env = open_env();
    let m = env.mount("");
    let mnt = env.mnt();
    let fifo = cpath(&mnt.join("pipe"));
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0, "mkfifo");
    assert_eq!(
        mknod(&mnt.join("null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3)),
        0
    );
    assert_eq!(
        mknod(&mnt.join("disk"), libc::S_IFBLK | 0o600, libc::makedev(8, 1)),
        0
    );
    let sock = std::os::unix::net::UnixListener::bind(mnt.join("sock")).expect("bind a socket");
    drop(sock);

    let ft = |n: &str| std::fs::symlink_metadata(mnt.join(n)).unwrap();
    assert!(ft("pipe").file_type().is_fifo());
    assert!(ft("sock").file_type().is_socket());
    assert!(ft("null").file_type().is_char_device());
    assert!(ft("disk").file_type().is_block_device());
    assert_eq!(ft("null").rdev(), libc::makedev(1, 3));
    assert_eq!(ft("disk").rdev(), libc::makedev(8, 1));
    assert_eq!(ft("pipe").mode() & 0o7777, 0o640);

    // A fifo works as a pipe (the kernel runs it; nothing passes through NoiseFS).
    let mut p = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(mnt.join("pipe"))
        .unwrap();
    use std::io::{Read, Write};
    p.write_all(b"through the pipe").unwrap();
    let mut got = [0u8; 16];
    p.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"through the pipe");
    drop(p);
    // The mount is nodev: a device node opens nothing.
    assert_eq!(
        std::fs::File::open(mnt.join("null")).unwrap_err().raw_os_error(),
        Some(libc::EACCES)
    );

    // chmod, chown, rename, link, unlink.
    std::fs::set_permissions(mnt.join("pipe"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(mnt.join("pipe"), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::rename(mnt.join("pipe"), mnt.join("pipe2")).unwrap();
    std::fs::hard_link(mnt.join("pipe2"), mnt.join("pipe3")).unwrap();
    let md = ft("pipe3");
    assert_eq!((md.mode() & 0o7777, md.uid(), md.nlink()), (0o600, NOBODY, 2));
    std::fs::remove_file(mnt.join("pipe2")).unwrap();
    assert_eq!(ft("pipe3").nlink(), 1);
    std::fs::remove_file(mnt.join("disk")).unwrap();
    m.unmount();

    // They persist, show in `tree ls`, are left out of a share (and said so), and exported per type.
    let ls = env.ok(&["tree", "ls", "/"]);
    assert!(
        ls.lines().any(|l| l.starts_with('p') && l.ends_with("pipe3")),
        "{ls}"
    );
    assert!(
        ls.lines().any(|l| l.starts_with('c') && l.ends_with("null")),
        "{ls}"
    );
    assert!(
        ls.lines().any(|l| l.starts_with('s') && l.ends_with("sock")),
        "{ls}"
    );
    std::fs::write(env.path("plain"), b"plain").unwrap();
    env.ok(&["tree", "import", &env.path("plain").display().to_string(), "/"]);
    let out = env.cli(&["share", "/"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("left out /pipe3: a fifo is not shared"), "{err}");
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let got = env.path("got");
    env.ok(&["get", &link, "-o", &got.display().to_string()]);
    assert_eq!(std::fs::read(got.join("plain")).unwrap(), b"plain");
    assert!(!got.join("pipe3").exists() && !got.join("null").exists());

    let out = env.path("exported");
    let run = env.cli(&["tree", "export", "/", &out.display().to_string()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("sock: a socket is not exported"), "{err}");
    let meta = |n: &str| std::fs::symlink_metadata(out.join(n)).unwrap();
    assert!(meta("pipe3").file_type().is_fifo());
    assert_eq!(meta("pipe3").mode() & 0o7777, 0o600);
    assert!(meta("null").file_type().is_char_device()); // made: the tests run as root
    assert_eq!(meta("null").rdev(), libc::makedev(1, 3));

    // And a local tree with them imports them as what they are.
    let again = env.cli(&["tree", "import", &out.display().to_string(), "/again"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && !err.contains("skipped"), "{err}");
    let ls = env.ok(&["tree", "ls", "/again"]);
    assert!(
        ls.lines().any(|l| l.starts_with('p') && l.ends_with("pipe3")),
        "{ls}"
    );
}

#[test]
fn uid_gid_and_umask_options_set_what_is_shown() {
    let env = open_env();
    let m = env.mount("");
    std::fs::write(env.mnt().join("f"), b"x").unwrap();
    std::fs::set_permissions(env.mnt().join("f"), std::fs::Permissions::from_mode(0o664)).unwrap();
    m.unmount();
    let m = env.mount("uid=1234,gid=5678,umask=027");
    let md = std::fs::metadata(env.mnt().join("f")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (1234, 5678, 0o640));
    m.unmount();
    // The tree kept what was stored.
    let m = env.mount("");
    let md = std::fs::metadata(env.mnt().join("f")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o664));
    m.unmount();
    // Bad values are refused before anything is mounted.
    let out = Command::new(env!("CARGO_BIN_EXE_mount-noisefs"))
        .arg(env.repo())
        .arg(env.mnt())
        .args(["-o", "umask=999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("umask=999"));
    assert!(!is_mounted(&env.mnt()));
}

/// `mount -t fuse.noisefs` and the fstab form go through util-linux to the helper installed as
/// `mount.fuse.noisefs` (a `-t noisefs` type could never work: mount(8) reads a type starting with
/// "no" as a negation).
#[test]
fn mount_t_fuse_noisefs_and_fstab() {
    let helper = Path::new("/usr/sbin/mount.fuse.noisefs");
    let built = Path::new(env!("CARGO_BIN_EXE_mount-noisefs"));
    // Point the helper at this build (scripts/setup.sh installs the same link).
    let _ = std::fs::remove_file(helper);
    std::os::unix::fs::symlink(built, helper).expect("install the mount(8) helper (as root)");
    let env = open_env();
    std::fs::write(env.path("plain"), b"via mount(8)").unwrap();
    env.ok(&["tree", "import", &env.path("plain").display().to_string(), "/"]);

    let (repo, mnt) = (env.repo().display().to_string(), env.mnt().display().to_string());
    sh(Command::new("mount")
        .args(["-t", "fuse.noisefs", &repo, &mnt, "-o", "allow_other,ro"])
        .env("NOISEFS_HOME", env.repo()));
    assert!(is_mounted(&env.mnt()));
    assert_eq!(std::fs::read(env.mnt().join("plain")).unwrap(), b"via mount(8)");
    nobody_ok(&format!("cat {mnt}/plain"));
    assert_eq!(
        std::fs::write(env.mnt().join("new"), b"")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS)
    );
    env.ok(&["unmount", &mnt]);

    let fstab = env.path("fstab");
    std::fs::write(
        &fstab,
        format!("{repo} {mnt} fuse.noisefs noauto,allow_other,umask=077 0 0\n"),
    )
    .unwrap();
    sh(Command::new("mount")
        .args(["-T", &fstab.display().to_string(), &mnt])
        .env("NOISEFS_HOME", env.repo()));
    assert!(is_mounted(&env.mnt()));
    let md = std::fs::metadata(env.mnt().join("plain")).unwrap();
    assert_eq!(md.mode() & 0o077, 0);
    std::fs::write(env.mnt().join("written"), b"rw by default").unwrap();
    env.ok(&["unmount", &mnt]);
    assert!(env.ok(&["tree", "ls", "/"]).contains("written"));
}
