//! End to end: `noisefs put` then `get`/`cat` give back exactly what went in, for files of every edge size
//! and for folders with nesting, empty folders, unicode names, symlinks, modes and times.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{pseudo_random, Env};

#[test]
fn files_of_edge_sizes_round_trip() {
    let env = Env::new(Some("4K"));
    let bs = 4096usize;
    for (i, size) in [0, 1, bs - 1, bs, bs + 1, 3 * 1024 * 1024 + 7]
        .into_iter()
        .enumerate()
    {
        let data = pseudo_random(size, i as u64 + 1);
        let src = env.path(&format!("in-{size}"));
        std::fs::write(&src, &data).unwrap();
        let link = env.put(&src);
        assert!(link.starts_with("noisefs://b"), "{link}");
        let out = env.path(&format!("out-{size}"));
        env.ok(&["get", &link, "-o", out.to_str().unwrap()]);
        assert_eq!(std::fs::read(&out).unwrap(), data, "get of {size} bytes");
        let cat = env.cmd(&["cat", &link]).output().unwrap();
        assert!(cat.status.success());
        assert_eq!(cat.stdout, data, "cat of {size} bytes");
    }
}

#[test]
fn default_block_size_edges_round_trip() {
    let env = Env::new(None);
    let bs = 128 * 1024;
    for size in [bs - 1, bs, bs + 1] {
        let data = pseudo_random(size, size as u64);
        let src = env.path("in");
        std::fs::write(&src, &data).unwrap();
        let link = env.put(&src);
        let out = env.path(&format!("out-{size}"));
        env.ok(&["get", &link, "-o", out.to_str().unwrap()]);
        assert_eq!(std::fs::read(&out).unwrap(), data);
    }
    // The repository was created on first use, private to its owner.
    let mode = std::fs::metadata(env.repo()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn folders_round_trip_with_metadata() {
    let env = Env::new(Some("4K"));
    let src = env.path("tree");
    std::fs::create_dir_all(src.join("a/b/c")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::fs::create_dir_all(src.join("ünïcødé ☃")).unwrap();
    std::fs::write(src.join("a/b/c/deep.bin"), pseudo_random(50_000, 9)).unwrap();
    std::fs::write(src.join("ünïcødé ☃/名前.txt"), "héllo wörld\n").unwrap();
    std::fs::write(src.join("empty-file"), b"").unwrap();
    std::fs::write(src.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(src.join("script.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("a/b/c/deep.bin", src.join("shortcut")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    let fifo = src.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(src.join("empty-file"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let link = env.put(&src);
    let out = env.path("restored");
    env.ok(&["get", &link, "-o", out.to_str().unwrap()]);

    // Everything but the fifo (special files are skipped) came back.
    std::fs::remove_file(&fifo).unwrap();
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&src)
        .arg(&out)
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    assert!(out.join("empty").is_dir());
    assert_eq!(
        std::fs::read_link(out.join("dangling")).unwrap().to_str(),
        Some("/nonexistent/target")
    );
    assert_eq!(
        std::fs::metadata(out.join("script.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    assert_eq!(
        std::fs::metadata(out.join("empty-file")).unwrap().mtime(),
        1_500_000_000
    );
    assert!(!out.join("pipe").exists());

    let ls = env.ok(&["ls", &link]);
    assert!(ls.contains("shortcut -> a/b/c/deep.bin"), "{ls}");
    assert!(ls.contains("ünïcødé ☃/"), "{ls}");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["ls", "--json", &link])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 7);
    let stat: serde_json::Value = serde_json::from_str(&env.ok(&["stat", "--json", &link])).unwrap();
    assert_eq!(stat["kind"], "dir");
    assert_eq!(stat["entries"], 7);
}

#[test]
fn put_prints_one_link_per_argument_and_json() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("x"), b"x").unwrap();
    std::fs::write(env.path("y"), b"yy").unwrap();
    let out = env.ok(&["put", "x", "y"]);
    assert_eq!(out.lines().count(), 2);
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["put", "--json", "x", "y"])).unwrap();
    assert_eq!(json[1]["size"], 2);
    assert_eq!(json[0]["dir"], false);
    // Without -o, get writes the stored name into the current folder.
    let link = json[1]["link"].as_str().unwrap().to_string();
    std::fs::remove_file(env.path("y")).unwrap();
    env.ok(&["get", &link]);
    assert_eq!(std::fs::read(env.path("y")).unwrap(), b"yy");
}

#[test]
fn standard_input_streams_in() {
    let env = Env::new(Some("4K"));
    let data = pseudo_random(50_000, 77);
    let mut child = env
        .cmd(&["put", "-", "--name", "piped.bin", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["name"], "piped.bin");
    assert_eq!(json[0]["size"], 50_000);
    let link = json[0]["link"].as_str().unwrap();
    assert_eq!(env.cmd(&["cat", link]).output().unwrap().stdout, data);
    env.ok(&["get", link]);
    assert_eq!(std::fs::read(env.path("piped.bin")).unwrap(), data);
    assert!(env
        .fails(&["put", "-", "--name", "../x"])
        .contains("plain file name"));
}

#[test]
fn password_links_need_the_password() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("secret.txt"), b"the diary").unwrap();
    let out = env.with_password(&["put", "--password", "secret.txt"], "hunter2");
    assert!(out.status.success());
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // The link records the Argon2id cost it was made with; a weak password is named as such.
    assert!(link.contains("#argon2id.m65536.t3.p1."), "{link}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("warning: weak password (7 characters"),
        "{warned}"
    );
    let strong = env.with_password(
        &["put", "--password", "secret.txt"],
        "tulip-orbit-canyon-mellow-frost",
    );
    assert!(strong.status.success());
    assert!(!String::from_utf8_lossy(&strong.stderr).contains("weak"));
    let got = env.with_password(&["cat", &link], "hunter2");
    assert_eq!(got.stdout, b"the diary");
    let wrong = env.with_password(&["cat", &link], "hunter3");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong key or password"));
    // No password at all and no terminal to ask on: a clear error.
    let none = env.fails(&["cat", &link]);
    assert!(none.contains("password"), "{none}");
}

#[test]
fn help_and_completions() {
    let env = Env::without_repo();
    for cmd in [
        "init",
        "put",
        "get",
        "cat",
        "ls",
        "stat",
        "pin",
        "unpin",
        "gc",
        "completions",
    ] {
        let help = env.ok(&[cmd, "--help"]);
        assert!(help.contains("Example"), "{cmd} --help has no example");
    }
    assert!(env.ok(&["repo", "stats", "--help"]).contains("Example"));
    assert!(env.ok(&["completions", "bash"]).contains("noisefs"));
    // Neither help nor completions create a repository.
    assert!(!env.repo().exists());
}

#[test]
fn large_folders_span_many_manifest_blocks() {
    let env = Env::new(Some("4K"));
    let src = env.path("many");
    std::fs::create_dir(&src).unwrap();
    // 3000 entries of ~120 bytes each need about 90 manifest leaves of 4 KiB and an inner level.
    for i in 0..3000u64 {
        std::fs::write(
            src.join(format!("file-{i:05}.txt")),
            pseudo_random(40 + (i % 60) as usize, i),
        )
        .unwrap();
    }
    let link = env.put(&src);
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["ls", "--json", &link])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3000);
    env.ok(&["get", &link, "-o", "many-out"]);
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(env.path("many-out"))
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
}

#[test]
fn cat_reads_byte_ranges() {
    let env = Env::new(Some("4K"));
    let size = 3 * 1024 * 1024 + 7;
    let data = pseudo_random(size, 31);
    std::fs::write(env.path("big"), &data).unwrap();
    let link = env.put(&env.path("big"));
    let cases: [(usize, Option<usize>); 7] = [
        (0, Some(10)),
        (4095, Some(2)),
        (100, Some(3 * 4096 + 17)),
        (size - 5, Some(100)),
        (size + 10, Some(5)),
        (2_000_000, Some(1_100_000)),
        (3_000_000, None),
    ];
    for (offset, length) in cases {
        let off = offset.to_string();
        let mut args = vec!["cat", "--offset", off.as_str()];
        let len_s = length.map(|l| l.to_string());
        if let Some(l) = &len_s {
            args.extend(["--length", l.as_str()]);
        }
        args.push(&link);
        let out = env.run(&args);
        assert!(out.status.success(), "{args:?}");
        let end = length.map_or(size, |l| (offset + l).min(size));
        let want = if offset >= size {
            &[][..]
        } else {
            &data[offset..end]
        };
        assert_eq!(out.stdout, want, "range {offset} +{length:?}");
    }
    let head = env.run(&["cat", "--length", "5", &link]);
    assert_eq!(head.stdout, &data[..5]);
}

#[test]
fn get_to_a_dash_streams_to_standard_output() {
    let env = Env::new(Some("4K"));
    let data = pseudo_random(50_000, 9);
    std::fs::write(env.path("f.bin"), &data).unwrap();
    let link = env.put(&env.path("f.bin"));
    let out = env.cmd(&["get", &link, "-o", "-"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, data);
    assert!(!env.path("-").exists(), "no file named -");
    std::fs::create_dir_all(env.path("d")).unwrap();
    std::fs::write(env.path("d/x"), b"x").unwrap();
    let folder = env.put(&env.path("d"));
    assert!(env
        .fails(&["get", &folder, "-o", "-"])
        .contains("standard output takes one file"));
}

/// Sets the modification time of `p` itself (a symlink is not followed), to the nanosecond.
fn set_mtime(p: &std::path::Path, secs: i64, nsec: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let t = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nsec,
        },
    ];
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), t.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

/// (seconds, nanoseconds) of `p`'s own modification time.
fn mtime_of(p: &std::path::Path) -> (i64, i64) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

/// Sub-second modification times of files, folders and symlinks (the link's own time) survive put and
/// get, tree import and export, and share and receive.
#[test]
fn sub_second_and_symlink_times_survive_every_copy() {
    let env = Env::new(Some("4K"));
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("small.txt"), b"inline").unwrap();
    std::fs::write(src.join("sub/big.bin"), pseudo_random(40_000, 1)).unwrap();
    std::os::unix::fs::symlink("sub/big.bin", src.join("ln")).unwrap();
    let want = [
        ("small.txt", (1_700_000_001, 123_456_789)),
        ("sub/big.bin", (1_700_000_002, 987_654_321)),
        ("ln", (1_600_000_003, 5)),
        ("sub", (1_700_000_004, 444_000_000)),
        ("", (1_700_000_005, 555_555_555)),
    ];
    for (rel, (s, ns)) in want {
        set_mtime(&src.join(rel), s, ns);
    }
    let check = |root: &std::path::Path, how: &str| {
        for (rel, t) in want {
            assert_eq!(mtime_of(&root.join(rel)), t, "{how}: {rel:?}");
        }
    };

    let link = env.put(&src);
    env.ok(&["get", &link, "-o", "got"]);
    check(&env.path("got"), "put/get");
    // A single file keeps its time too.
    let one = env.put(&src.join("sub/big.bin"));
    env.ok(&["get", &one, "-o", "one.bin"]);
    assert_eq!(mtime_of(&env.path("one.bin")), (1_700_000_002, 987_654_321));

    env.ok(&["tree", "import", src.to_str().unwrap(), "/imported"]);
    env.ok(&["tree", "export", "/imported", "exported"]);
    check(&env.path("exported"), "tree import/export");

    let shared = env.ok(&["share", "/imported"]).trim().to_string();
    env.ok(&["receive", &shared, "/received"]);
    env.ok(&["tree", "export", "/received", "received"]);
    check(&env.path("received"), "share/receive/export");
}
