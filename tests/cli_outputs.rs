//! End to end: what each command prints, in text and JSON, and where the default repository lives.

mod common;

use common::{pseudo_random, Env};

#[test]
fn stat_ls_pin_and_gc_outputs() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("notes.md"), b"# hello\n").unwrap();
    let link = env.put(&env.path("notes.md"));
    let stat = env.ok(&["stat", &link]);
    for want in [
        "kind:",
        "file",
        "media type:",
        "text/markdown",
        "mode:",
        "0644",
        "size:",
        "8",
    ] {
        assert!(stat.contains(want), "stat lacks {want}: {stat}");
    }
    let ls = env.ok(&["ls", &link]);
    assert!(
        ls.starts_with("-rw-r--r--") && ls.trim_end().ends_with("notes.md"),
        "{ls}"
    );

    // --no-pin: stored, readable, but gc takes it.
    std::fs::write(env.path("tmp.bin"), pseudo_random(20_000, 1)).unwrap();
    let loose = env.ok(&["put", "--no-pin", "tmp.bin"]).trim().to_string();
    assert!(env.fails(&["unpin", &loose]).contains("not pinned"));
    let gc = env.ok(&["gc"]);
    assert!(
        gc.starts_with("removed ") && gc.contains("needed by 1 pins"),
        "{gc}"
    );
    assert!(env.fails(&["cat", &loose]).contains("missing"));
    assert!(env.ok(&["gc", "--dry-run"]).starts_with("would remove 0 blocks"));

    // Pinning a folder link, and unpinning a password link (pinned under the root it wraps).
    std::fs::create_dir(env.path("dir")).unwrap();
    std::fs::write(env.path("dir/a"), b"a").unwrap();
    let dir = env.put(&env.path("dir"));
    env.ok(&["unpin", &dir]);
    env.ok(&["pin", &dir]);
    let out = env.with_password(&["put", "--password", "notes.md"], "pw");
    let pw_link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // The wrapper survives gc while pinned.
    env.ok(&["gc"]);
    let got = env.with_password(&["cat", &pw_link], "pw");
    assert_eq!(got.stdout, b"# hello\n");
    env.ok(&["unpin", &pw_link]);
    let pinned = env.with_password(&["pin", &pw_link], "pw");
    assert!(pinned.status.success());
    env.ok(&["gc"]);
    let got = env.with_password(&["cat", &pw_link], "pw");
    assert_eq!(got.stdout, b"# hello\n");
    env.ok(&["unpin", &pw_link]);
    let empty = env.with_password(&["cat", &pw_link], "");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("set but empty"));

    // A folder is not a file, and logs follow -v.
    let err = env.fails(&["cat", &dir]);
    assert!(
        err.contains("reading a folder as a file") && err.contains("noisefs get"),
        "{err}"
    );
    for flag in ["-v", "-vv", "-vvv"] {
        let out = env
            .cmd(&[flag, "repo", "stats"])
            .env_remove("NOISEFS_HOME")
            .env("XDG_DATA_HOME", env.path("fresh"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("on first use"), "{flag}: {log}");
        std::fs::remove_dir_all(env.path("fresh")).unwrap();
    }
    let quiet = env
        .cmd(&["-q", "repo", "stats"])
        .env_remove("NOISEFS_HOME")
        .env("XDG_DATA_HOME", env.path("fresh"))
        .output()
        .unwrap();
    assert!(quiet.stderr.is_empty());

    let stats = env.ok(&["repo", "stats"]);
    for want in [
        "block size:   4KiB",
        "pinned:       2 links",
        "overhead:",
        "reuse:",
    ] {
        assert!(stats.contains(want), "stats lacks {want}: {stats}");
    }
}

#[test]
fn verify_reports_corrupt_and_missing_blocks() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("f"), pseudo_random(30_000, 2)).unwrap();
    env.put(&env.path("f"));
    let ok: serde_json::Value = serde_json::from_str(&env.ok(&["repo", "verify", "--json"])).unwrap();
    assert_eq!(ok["corrupt"].as_array().unwrap().len(), 0);
    let files = env.block_files();
    std::fs::write(&files[0], b"rot").unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let out = env.run(&["repo", "verify", "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["corrupt"].as_array().unwrap().len(), 1);
    assert_eq!(report["missing"].as_array().unwrap().len(), 1);
    let text = env.run(&["repo", "verify"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("corrupt ") && text.contains("missing ") && text.contains("1 corrupt, 1 missing"),
        "{text}"
    );
    // Storing goes on: randomizers found missing or corrupt are set aside.
    for seed in 3..6 {
        std::fs::write(env.path("g"), pseudo_random(30_000, seed)).unwrap();
        let link = env.put(&env.path("g"));
        let got = env.run(&["cat", &link]);
        assert!(got.status.success() && got.stdout == pseudo_random(30_000, seed));
    }
}

#[test]
fn default_repository_locations() {
    let env = Env::new(None);
    std::fs::write(env.path("f"), b"x").unwrap();
    let xdg = env.path("xdg");
    let out = env
        .cmd(&["put", "f"])
        .env_remove("NOISEFS_HOME")
        .env("XDG_DATA_HOME", &xdg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(xdg.join("noisefs/config.toml").exists());
    let home = env.path("home");
    let out = env
        .cmd(&["put", "f"])
        .env_remove("NOISEFS_HOME")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(home.join(".local/share/noisefs/config.toml").exists());
    let out = env
        .cmd(&["repo", "stats"])
        .env_remove("NOISEFS_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("HOME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --repo"));
    let explicit = env.path("explicit");
    // A mistyped --repo or NOISEFS_HOME is an error that names it, and creates nothing.
    std::fs::create_dir_all(env.path("unrelated")).unwrap();
    for at in [&explicit, &env.path("unrelated")] {
        let err = env.fails(&["--repo", at.to_str().unwrap(), "ls", "noisefs://x"]);
        let err2 = env.fails(&["--repo", at.to_str().unwrap(), "repo", "stats"]);
        assert!(
            err2.contains("no repository at") && err2.contains("init"),
            "{err2}"
        );
        assert!(!at.join("config.toml").exists(), "{err}");
    }
    let out = env
        .cmd(&["repo", "stats"])
        .env("NOISEFS_HOME", env.path("typo"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no repository at"));
    assert!(!env.path("typo").exists());
    env.ok(&[
        "--repo",
        explicit.to_str().unwrap(),
        "init",
        "--block-size",
        "64K",
    ]);
    let stats = env.ok(&["--repo", explicit.to_str().unwrap(), "repo", "stats", "--json"]);
    assert!(stats.contains("\"block_size\": 65536"), "{stats}");
}

#[test]
fn names_with_terminal_escapes_are_listed_escaped() {
    let env = Env::new(Some("4K"));
    let dir = env.path("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("\x1b[2Jgotcha\x07"), b"x").unwrap();
    std::os::unix::fs::symlink("\x1b]0;title\x07", dir.join("ln")).unwrap();
    let link = env.put(&dir);
    env.ok(&["tree", "import", "shared", "/in"]);
    for out in [env.ok(&["ls", &link]), env.ok(&["tree", "ls", "/in"])] {
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
        assert!(out.contains("\\x1b[2Jgotcha\\x07"), "{out}");
        assert!(out.contains("-> \\x1b]0;title\\x07"), "{out}");
    }
    // JSON keeps the name as it is (escaped by JSON itself).
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["tree", "ls", "/in", "--json"])).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "\x1b[2Jgotcha\x07"));
}

#[test]
fn tree_mv_into_a_missing_folder_fails_instead_of_renaming() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("f.txt"), b"f").unwrap();
    env.ok(&["tree", "import", "f.txt", "/f.txt"]);
    let err = env.fails(&["tree", "mv", "/f.txt", "/archive/"]);
    assert!(err.contains("no folder /archive/"), "{err}");
    let ls = env.ok(&["tree", "ls", "/"]);
    assert!(ls.contains("f.txt") && !ls.contains("archive"), "{ls}");
    env.ok(&["tree", "mkdir", "/archive"]);
    env.ok(&["tree", "mv", "/f.txt", "/archive/"]);
    assert!(env.ok(&["tree", "ls", "/archive"]).contains("f.txt"));
}

#[test]
fn logs_have_no_colour_codes_when_not_on_a_terminal() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("f"), b"f").unwrap();
    let out = env.cmd(&["-vv", "put", "f"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEBUG") || err.contains("INFO"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}
