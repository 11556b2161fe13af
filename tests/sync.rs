//! Two local folders kept in sync through one tree folder by the real binary: by the daemon as changes
//! happen, by `sync run --once`, and across a `kill -9` of the daemon.

mod common;

use std::path::Path;

use common::{pseudo_random, wait_until, Env};

/// Every entry below `root` with its content (symlink targets for symlinks), sorted.
fn listing(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
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
                out.push((rel, std::fs::read(e.path()).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn setup() -> Env {
    let env = Env::new(Some("4K"));
    std::fs::create_dir_all(env.path("a")).unwrap();
    std::fs::create_dir_all(env.path("b")).unwrap();
    assert!(env.ok(&["sync", "add", "a", "/docs"]).starts_with("session 1"));
    assert!(env.ok(&["sync", "add", "b", "/docs"]).starts_with("session 2"));
    env
}

#[test]
fn the_daemon_keeps_two_folders_in_sync_both_ways() {
    let env = setup();
    let (a, b) = (env.path("a"), env.path("b"));
    let d = env.daemon();
    std::fs::create_dir_all(a.join("notes/2026")).unwrap();
    std::fs::write(a.join("notes/2026/todo.md"), b"- sync\n").unwrap();
    std::fs::write(a.join("photo.bin"), pseudo_random(300_000, 1)).unwrap();
    wait_until("a's files in b", || listing(&a) == listing(&b));

    // An edit in b goes to a; a delete in a goes to b; a rename in b goes to a.
    std::fs::write(b.join("notes/2026/todo.md"), b"- sync\n- mount\n").unwrap();
    wait_until("b's edit in a", || {
        std::fs::read(a.join("notes/2026/todo.md")).ok().as_deref() == Some(&b"- sync\n- mount\n"[..])
    });
    std::fs::remove_file(a.join("photo.bin")).unwrap();
    wait_until("a's delete in b", || !b.join("photo.bin").exists());
    std::fs::rename(b.join("notes/2026"), b.join("notes/archive")).unwrap();
    wait_until("b's rename in a", || {
        a.join("notes/archive/todo.md").exists() && !a.join("notes/2026").exists()
    });
    wait_until("both sides equal", || listing(&a) == listing(&b));

    let status: serde_json::Value = serde_json::from_str(&env.ok(&["sync", "status", "--json"])).unwrap();
    wait_until("idle sessions", || {
        let s: serde_json::Value = serde_json::from_str(&env.ok(&["sync", "status", "--json"])).unwrap();
        s.as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "idle" && x["queued"] == 0)
    });
    assert_eq!(status.as_array().unwrap().len(), 2);

    // Paused: changes wait; resumed: they flow.
    env.ok(&["sync", "pause", "2"]);
    std::fs::write(a.join("later.txt"), b"later").unwrap();
    wait_until("later.txt in the tree", || {
        env.ok(&["tree", "ls", "/docs"]).contains("later.txt")
    });
    assert!(!b.join("later.txt").exists(), "a paused session must not write");
    assert!(env.ok(&["sync", "list"]).contains("paused"));
    env.ok(&["sync", "resume", "2"]);
    wait_until("later.txt in b", || b.join("later.txt").exists());
    d.stop();

    // Conflicting edits while nothing runs: both versions survive on both sides.
    std::fs::write(a.join("later.txt"), b"edited in a").unwrap();
    std::fs::write(b.join("later.txt"), b"edited in b, longer").unwrap();
    let out = env.ok(&["sync", "run", "--once"]);
    assert!(
        out.contains("session 1: in sync") && out.contains("session 2: in sync"),
        "{out}"
    );
    // One run brings both sessions to rest (b's conflict copy reaches a without a second run).
    assert_eq!(listing(&a), listing(&b));
    let versions: Vec<Vec<u8>> = listing(&a)
        .into_iter()
        .filter(|(n, _)| n.starts_with("later"))
        .map(|(_, c)| c)
        .collect();
    assert_eq!(versions.len(), 2, "{:?}", listing(&a));
    assert!(
        versions.contains(&b"edited in a".to_vec()) && versions.contains(&b"edited in b, longer".to_vec())
    );
    let st = env.ok(&["sync", "status", "2"]);
    assert!(st.contains("conflicts: 1"), "{st}");
    assert!(
        st.contains("conflict:   later.txt (the local version kept as later (conflict "),
        "{st}"
    );
    let names: Vec<String> = listing(&a).into_iter().map(|(n, _)| n).collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("later (conflict ") && n.ends_with(".txt")),
        "{names:?}"
    );

    env.ok(&["sync", "remove", "2"]);
    assert!(!env.ok(&["sync", "list"]).contains("b <->"));
    assert!(env.fails(&["sync", "pause", "2"]).contains("no sync session 2"));
}

#[test]
fn a_killed_daemon_resumes_and_converges() {
    let env = setup();
    let (a, b) = (env.path("a"), env.path("b"));
    for i in 0..300 {
        std::fs::write(
            a.join(format!("f{i:03}.bin")),
            pseudo_random(20_000 + i * 37, i as u64),
        )
        .unwrap();
    }
    let d = env.daemon();
    // Kill it while it is partway: some of the files reached b, not all.
    wait_until("the first files in b", || {
        std::fs::read_dir(&b).map(|r| r.count()).unwrap_or(0) >= 10
    });
    d.kill();
    let partial = std::fs::read_dir(&b).unwrap().count();
    assert!(partial < 300, "the daemon finished before it was killed");

    // After a restart the queue resumes and everything converges; nothing is torn or left over.
    let d = env.daemon();
    wait_until("convergence after the restart", || listing(&a) == listing(&b));
    for i in 0..300 {
        assert_eq!(
            std::fs::read(b.join(format!("f{i:03}.bin"))).unwrap(),
            pseudo_random(20_000 + i * 37, i as u64)
        );
    }
    d.stop();
    env.ok(&["repo", "verify"]);
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["queue"]["len"], 0, "{status}");
    assert_eq!(status["daemon"]["running"], false);
}

#[test]
fn an_emptied_folder_holds_its_session_until_the_user_confirms() {
    let env = setup();
    let (a, b) = (env.path("a"), env.path("b"));
    for i in 0..4 {
        std::fs::write(a.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    env.ok(&["sync", "run", "--once"]);
    assert_eq!(listing(&b).len(), 4);
    for i in 0..4 {
        std::fs::remove_file(a.join(format!("f{i}.txt"))).unwrap();
    }
    let err = env.fails(&["sync", "run", "--once"]);
    assert!(
        err.contains("session 1: held: the local folder is empty"),
        "{err}"
    );
    assert_eq!(listing(&b).len(), 4, "nothing is deleted in b");
    let st = env.ok(&["sync", "status", "1"]);
    assert!(
        st.contains("state:      held") && st.contains("resume --confirm 1"),
        "{st}"
    );
    assert!(env.ok(&["sync", "list"]).contains("held"));
    assert!(env
        .fails(&["sync", "resume", "--confirm", "2"])
        .contains("holds no deletions"));
    assert!(env
        .ok(&["sync", "resume", "--confirm", "1"])
        .contains("applies the held deletions"));
    env.ok(&["sync", "run", "--once"]);
    assert!(listing(&b).is_empty());
    assert!(!env.ok(&["sync", "status", "1"]).contains("held"));
}

#[test]
fn a_file_sync_deleted_is_listed_and_restored_from_the_cli() {
    let env = setup();
    let (a, b) = (env.path("a"), env.path("b"));
    std::fs::write(a.join("report.txt"), b"draft").unwrap();
    env.ok(&["sync", "run", "--once"]);
    std::fs::write(a.join("report.txt"), b"final version").unwrap();
    env.ok(&["sync", "run", "--once"]);
    std::fs::remove_file(b.join("report.txt")).unwrap();
    env.ok(&["sync", "run", "--once"]);
    assert!(!a.join("report.txt").exists());

    let by_local = env.ok(&["sync", "versions", a.join("report.txt").to_str().unwrap()]);
    let by_tree = env.ok(&["sync", "versions", "/docs/report.txt"]);
    assert_eq!(by_local, by_tree);
    let lines: Vec<&str> = by_tree.lines().collect();
    assert_eq!(lines.len(), 2, "{by_tree}");
    assert!(
        lines[0].contains("deleted") && lines[0].contains("13 B"),
        "{by_tree}"
    );
    assert!(
        lines[1].contains("replaced") && lines[1].contains("5 B"),
        "{by_tree}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["sync", "versions", "/docs/report.txt", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(!json.to_string().contains("noisefs://"), "no keys in the listing");

    let out = env.ok(&["sync", "restore", "/docs/report.txt"]);
    assert!(out.starts_with("restored /docs/report.txt"), "{out}");
    assert_eq!(std::fs::read(a.join("report.txt")).unwrap(), b"final version");
    assert_eq!(std::fs::read(b.join("report.txt")).unwrap(), b"final version");
    // The older one, by the time the listing shows.
    let at = &lines[1][..23];
    env.ok(&[
        "sync",
        "restore",
        b.join("report.txt").to_str().unwrap(),
        "--at",
        at,
    ]);
    assert_eq!(std::fs::read(a.join("report.txt")).unwrap(), b"draft");
    assert!(env
        .fails(&["sync", "restore", "/docs/none.txt"])
        .contains("no kept version of /docs/none.txt"));
    assert!(env
        .fails(&["sync", "versions", "relative/x"])
        .contains("no synced folder"));
}
