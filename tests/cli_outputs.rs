//! End to end: what each command prints, in text and JSON, and where the default repository lives.

mod common;

use std::process::Command;

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

/// `put a b c` with one bad argument stores the others, reports the bad one and exits 3 ("partial"),
/// in text and in JSON; a folder holding a file that cannot be read is stored without it, naming it,
/// and exits 3 too. A command that fails outright exits with its class (docs/cli.md).
#[test]
fn partial_puts_and_exit_codes_by_class() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;

    let env = Env::new(None);
    std::fs::write(env.path("a.txt"), b"alpha").unwrap();
    std::fs::write(env.path("c.txt"), b"gamma").unwrap();
    let out = env.run(&["put", "a.txt", "missing.txt", "c.txt"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("missing.txt"), "{stderr}");
    let links: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(env.ok(&["cat", &links[0]]), "alpha");
    assert_eq!(env.ok(&["cat", &links[1]]), "gamma");
    assert_eq!(env.ok(&["pin", "ls"]).lines().count(), 2);
    let out = env.run(&["put", "--json", "a.txt", "missing.txt", "c.txt"]);
    assert_eq!(out.status.code(), Some(3));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items[0]["link"].as_str().unwrap().starts_with("noisefs://"));
    assert!(items[0]["error"].is_null());
    assert!(items[1]["path"].as_str().unwrap().ends_with("missing.txt"));
    assert!(items[1]["error"].as_str().unwrap().contains("missing.txt"));
    assert!(items[1]["link"].is_null());
    assert!(items[2]["path"].as_str().unwrap().ends_with("c.txt"));

    // A folder with a name that is not UTF-8, and a file its reader may not open.
    let dir = env.path("docs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("ok.txt"), b"fine").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"odd\xff.txt");
    std::fs::write(dir.join(odd), b"odd").unwrap();
    let locked = dir.join("locked.txt");
    std::fs::write(&locked, b"secret").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file: take away its override, as an ordinary user is.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.arg("--bounding-set=-dac_override,-dac_read_search")
            .arg(env!("CARGO_BIN_EXE_noisefs"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_noisefs"))
    };
    let out = cmd
        .args(["put", "--json", dir.to_str().unwrap()])
        .env("NOISEFS_HOME", env.repo())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("not stored") && stderr.contains("locked.txt"),
        "{stderr}"
    );
    assert!(stderr.contains("not UTF-8"), "{stderr}");
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let item = &items[0];
    assert_eq!(item["files"], 1, "{item}");
    let skipped = item["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{item}");
    assert!(skipped
        .iter()
        .any(|s| s["path"].as_str().unwrap().ends_with("locked.txt")
            && s["reason"].as_str().unwrap().contains("ermission denied")));
    let link = item["link"].as_str().unwrap();
    env.ok(&["get", link, "-o", "restored"]);
    assert_eq!(std::fs::read(env.path("restored/ok.txt")).unwrap(), b"fine");
    assert!(!env.path("restored/locked.txt").exists());

    // Failing outright: the class's code.
    assert_eq!(env.run(&["put", "nope"]).status.code(), Some(4), "not found");
    assert_eq!(
        env.run(&["cat", "noisefs://nonsense"]).status.code(),
        Some(2),
        "usage"
    );
    let (a, c) = (&links[0], &links[1]);
    let wrong = format!(
        "{}#{}",
        a.split_once('#').unwrap().0,
        c.split_once('#').unwrap().1
    );
    assert_eq!(env.run(&["cat", &wrong]).status.code(), Some(5), "wrong key");
    let other = Env::new(None);
    std::fs::write(other.path("elsewhere.txt"), b"elsewhere").unwrap();
    let elsewhere = other.put(&other.path("elsewhere.txt"));
    assert_eq!(
        env.run(&["cat", &elsewhere]).status.code(),
        Some(6),
        "missing data"
    );
    let out = env
        .cmd(&["--repo", env.path("no-repo-here").to_str().unwrap(), "pin", "ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "no repository");
}

/// A command that finds the repository held by another command (no daemon or mount to go through)
/// fails at once with "locked" (exit 7), saying what to do; with `--retry-lock` it waits for the lock
/// and then runs.
#[test]
fn a_held_repository_is_waited_for_with_retry_lock() {
    use std::io::{BufRead, Write};
    use std::process::Stdio;

    let env = Env::new(None);
    // `put -` holds the repository while it reads its standard input.
    let mut holder = env
        .cmd(&["put", "-", "--name", "held.txt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = holder.id().to_string();
    common::wait_until("the put to hold the repository", || {
        std::fs::read_to_string(env.repo().join("repo.lock")).unwrap_or_default() == pid
    });
    let out = env.run(&["pin", "ls"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains(&format!("locked by process {pid}")), "{stderr}");
    assert!(stderr.contains("--retry-lock"), "{stderr}");
    let out = env.run(&["--retry-lock", "1s", "pin", "ls"]);
    assert_eq!(out.status.code(), Some(7), "still held after the wait");

    let mut waiter = env
        .cmd(&["--retry-lock", "2m", "pin", "ls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut note = String::new();
    std::io::BufReader::new(waiter.stderr.take().unwrap())
        .read_line(&mut note)
        .unwrap();
    assert!(note.contains("waiting for another command"), "{note}");
    // The holder finishes; the waiter gets the repository and sees what it stored.
    let mut stdin = holder.stdin.take().unwrap();
    stdin.write_all(b"held").unwrap();
    drop(stdin);
    assert!(holder.wait().unwrap().success());
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("held.txt"));
}

/// `--help` documents the environment, the config file and the exit codes; `noisefs man` writes
/// manual pages made from the same definitions.
#[test]
fn help_and_manual_pages_document_environment_config_and_exit_codes() {
    let env = Env::without_repo();
    let help = env.ok(&["--help"]);
    for want in [
        "NOISEFS_HOME",
        "NOISEFS_PASSWORD",
        "RUST_LOG",
        "config.toml",
        "max_delete_percent",
        "Exit codes:",
        "3    partial",
        "7    the repository is locked",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    let page = env.ok(&["man"]);
    assert!(
        page.starts_with(".ie") && page.contains(".TH noisefs 1"),
        "{page}"
    );
    assert!(page.contains("Exit codes"));
    env.ok(&["man", "--dir", "pages"]);
    let put = std::fs::read_to_string(env.path("pages/noisefs-put.1")).unwrap();
    assert!(put.contains("Store files or folders"), "{put}");
    assert!(env.path("pages/noisefs-tree-ls.1").exists());
    assert!(!env.repo().exists(), "man opens no repository");
}

/// `-v` says what put, get and cat moved: the root block, bytes, blocks and rate (never the key).
#[test]
fn verbose_transfers_say_what_they_moved() {
    let env = Env::new(None);
    std::fs::write(env.path("f.bin"), pseudo_random(300_000, 3)).unwrap();
    let out = env.run(&["-v", "put", "f.bin"]);
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (root, key) = link.trim_start_matches("noisefs://").split_once('#').unwrap();
    for (args, what) in [
        (vec!["-v", "put", "f.bin"], "stored"),
        (vec!["-v", "cat", &link], "read"),
        (vec!["-v", "get", &link, "-o", "g.bin"], "retrieved"),
    ] {
        let out = env.run(&args);
        assert!(out.status.success());
        let log = String::from_utf8_lossy(&out.stderr);
        let line = log
            .lines()
            .find(|l| l.contains(&format!("INFO {what} ")))
            .unwrap_or_else(|| panic!("{args:?}: no {what} line in {log}"));
        assert!(
            line.contains("bytes=300000") && line.contains("content_blocks=3"),
            "{line}"
        );
        assert!(line.contains("mib_per_s="), "{line}");
        if what != "stored" {
            assert!(line.contains(root), "{line}");
        }
        assert!(!log.contains(key), "the key in the log: {log}");
    }
}

/// Every `--json` output speaks one vocabulary (docs/cli.md): times are integer seconds since the
/// epoch (a field with a unit suffix, `_ms` or `_ns`, is the same time in that unit), modes are octal
/// strings, sizes integer bytes, kinds "file", "dir" or "symlink".
#[test]
fn json_outputs_share_one_vocabulary() {
    let env = Env::new(None);
    let dir = env.path("d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), b"alpha").unwrap();
    std::os::unix::fs::symlink("a.txt", dir.join("ln")).unwrap();
    let link = env.put(&dir);
    env.ok(&["tree", "import", dir.to_str().unwrap(), "/d"]);
    let secs = |v: &serde_json::Value, what: &str| {
        let t = v
            .as_i64()
            .unwrap_or_else(|| panic!("{what}: {v} is not an integer"));
        assert!(
            (1_500_000_000..4_100_000_000).contains(&t),
            "{what}: {t} is not in seconds"
        );
    };
    let octal = |v: &serde_json::Value, what: &str| {
        let m = v
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {v} is not a string"));
        assert!(m.len() == 4 && u32::from_str_radix(m, 8).is_ok(), "{what}: {m}");
    };
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&env.ok(args)).unwrap() };

    for row in json(&["ls", "--json", &link]).as_array().unwrap() {
        secs(&row["mtime"], "ls mtime");
        octal(&row["mode"], "ls mode");
        assert!(
            ["file", "symlink"].contains(&row["kind"].as_str().unwrap()),
            "{row}"
        );
    }
    let stat = json(&["stat", "--json", &link]);
    secs(&stat["mtime"], "stat mtime");
    octal(&stat["mode"], "stat mode");
    assert_eq!(stat["kind"], "dir");
    for row in json(&["tree", "ls", "--json", "/d"]).as_array().unwrap() {
        secs(&row["mtime"], "tree ls mtime");
        assert_eq!(
            row["mtime_ns"].as_i64().unwrap().div_euclid(1_000_000_000),
            row["mtime"].as_i64().unwrap()
        );
        octal(&row["mode"], "tree ls mode");
    }
    for p in json(&["pin", "ls", "--json"]).as_array().unwrap() {
        secs(&p["created"], "pin created");
        assert!(p["root"].as_str().unwrap().starts_with("bafk"), "{p}");
        assert!(["file", "dir"].contains(&p["kind"].as_str().unwrap()), "{p}");
    }
    std::fs::create_dir(env.path("synced")).unwrap();
    env.ok(&["sync", "add", env.path("synced").to_str().unwrap(), "/s"]);
    env.ok(&["sync", "run", "--once"]);
    for s in json(&["sync", "list", "--json"]).as_array().unwrap() {
        secs(&s["created"], "session created");
        secs(&s["last_sync"], "session last_sync");
        assert_eq!(
            s["created_ms"].as_i64().unwrap().div_euclid(1000),
            s["created"].as_i64().unwrap()
        );
    }
    let status = json(&["status", "--json"]);
    assert_eq!(status["daemon"]["running"], false);
    secs(
        &status["sessions"][0]["session"]["created"],
        "status session created",
    );
}
