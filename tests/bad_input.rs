//! End to end: bad links, wrong keys, missing and corrupt blocks, hostile manifests, existing targets,
//! locked and future repositories each give a clear error and change nothing.

mod common;

use std::sync::Arc;

use common::{pseudo_random, Env};
use noisefs::crypto::Key;
use noisefs::descriptor::{DirEntry, EntryKind, FanoutWriter, Link, Meta};
use noisefs::repo::Repo;
use noisefs::state::BlockKind;
use noisefs::store::LocalStore;
use noisefs::transfer::{no_progress, Sealer};

#[test]
fn malformed_links_are_refused() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("f"), b"data").unwrap();
    let link = env.put(&env.path("f"));
    let cases = [
        ("http://example", "noisefs://"),
        ("noisefs://nonsense#abc", "not a valid CID"),
        (&link[..link.len() - 4], "wrong length"),
        (link.split('#').next().unwrap(), "#key part is missing"),
    ];
    for (bad, want) in cases {
        let err = env.fails(&["cat", bad]);
        assert!(err.contains(want), "{bad}: {err}");
    }
    // A well-formed link with the wrong key.
    let wrong = format!("{}#{}", link.split('#').next().unwrap(), "A".repeat(43));
    assert!(env.fails(&["cat", &wrong]).contains("wrong key or password"));
    // A link to a block the repository does not hold.
    let missing = "noisefs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert!(env.fails(&["cat", missing]).contains("missing"));
}

#[test]
fn missing_and_corrupt_blocks_are_named_and_leave_no_output() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("f"), pseudo_random(40_000, 3)).unwrap();
    let link = env.put(&env.path("f"));
    let root = link
        .split('#')
        .next()
        .unwrap()
        .trim_start_matches("noisefs://")
        .to_string();
    // A sealed content block of this file: a fresh random block may sit in the pool unused (several
    // blocks are sealed at once while the pool is tiny), and corrupting that one would break nothing.
    let data_blocks: Vec<String> = {
        let repo = Repo::open(&env.repo()).unwrap();
        let blocks = repo.state().blocks().unwrap();
        blocks
            .into_iter()
            .filter(|(_, rec)| rec.kind == BlockKind::Data)
            .map(|(id, _)| id.to_string())
            .collect()
    };
    let blocks = env.block_files();
    let victim = blocks
        .iter()
        .find(|p| !p.ends_with(&root) && data_blocks.iter().any(|id| p.ends_with(id)))
        .unwrap()
        .clone();
    let victim_id = victim.file_name().unwrap().to_str().unwrap().to_string();
    let saved = std::fs::read(&victim).unwrap();

    std::fs::write(&victim, b"bit rot").unwrap();
    let err = env.fails(&["get", &link, "-o", "out"]);
    assert!(err.contains("corrupt") && err.contains(&victim_id), "{err}");
    assert!(!env.path("out").exists(), "a failed get left output behind");
    let verify = env.run(&["repo", "verify"]);
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stdout).contains(&victim_id));

    std::fs::remove_file(&victim).unwrap();
    let err = env.fails(&["get", &link, "-o", "out"]);
    assert!(err.contains("missing") && err.contains(&victim_id), "{err}");
    assert!(!env.path("out").exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".noisefs"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    std::fs::write(&victim, saved).unwrap();
    env.ok(&["get", &link, "-o", "out"]);
    env.ok(&["repo", "verify"]);
}

#[test]
fn existing_targets_need_force() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("f"), b"new content").unwrap();
    let link = env.put(&env.path("f"));
    std::fs::write(env.path("target"), b"precious").unwrap();
    let err = env.fails(&["get", &link, "-o", "target"]);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(env.path("target")).unwrap(), b"precious");
    env.ok(&["get", &link, "-o", "target", "--force"]);
    assert_eq!(std::fs::read(env.path("target")).unwrap(), b"new content");
    // A folder target means "into this folder"; --force never deletes a folder.
    std::fs::create_dir(env.path("dir")).unwrap();
    std::fs::write(env.path("dir/inside"), b"x").unwrap();
    env.ok(&["get", &link, "-o", "dir", "--force"]);
    assert_eq!(std::fs::read(env.path("dir/f")).unwrap(), b"new content");
    assert_eq!(std::fs::read(env.path("dir/inside")).unwrap(), b"x");
    std::fs::remove_file(env.path("dir/f")).unwrap();
    std::fs::create_dir(env.path("dir/f")).unwrap();
    std::fs::write(env.path("dir/f/keep"), b"k").unwrap();
    let err = env.fails(&["get", &link, "-o", "dir", "--force"]);
    assert!(err.contains("never folders"), "{err}");
    assert_eq!(std::fs::read(env.path("dir/f/keep")).unwrap(), b"k");
}

/// Builds a folder manifest with arbitrary entries straight into the repository, as a hostile peer could.
fn forge_folder(env: &Env, names: &[&str]) -> String {
    forge_folder_modes(env, names, 0o644, 0o755)
}

/// [`forge_folder`] with the given file and folder modes.
fn forge_folder_modes(env: &Env, names: &[&str], file_mode: u32, dir_mode: u32) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let repo = Arc::new(Repo::open(&env.repo()).unwrap());
        let session = Sealer::new(repo.clone(), no_progress());
        std::fs::write(env.path("payload"), b"escaped!").unwrap();
        let file = std::fs::File::open(env.path("payload")).unwrap();
        let info = noisefs::transfer::FileInfo {
            name: "payload".into(),
            mtime: 0,
            mtime_ns: 0,
            mode: file_mode,
            media_type: "text/plain".into(),
        };
        let (child, _) = session.put_reader(&repo.hold().await, file, info).await.unwrap();
        let key = Key::random();
        let mut tree = FanoutWriter::<DirEntry>::new(key.clone(), repo.block_size());
        let mut nodes = Vec::new();
        for name in names {
            nodes.extend(
                tree.push(DirEntry {
                    name: name.to_string(),
                    kind: EntryKind::File,
                    size: 8,
                    mtime: 0,
                    mode: file_mode,
                    root: Some(child.root),
                    key: Some(serde_bytes::ByteBuf::from(
                        child.key().unwrap().as_bytes().to_vec(),
                    )),
                    ..DirEntry::default()
                })
                .unwrap(),
            );
        }
        let (root, rest) = tree
            .finish(Meta::Dir {
                name: "evil".into(),
                mtime: 0,
                mtime_ns: 0,
                mode: dir_mode,
                entries: names.len() as u64,
            })
            .unwrap();
        nodes.extend(rest);
        for n in nodes {
            repo.stack().put(n.id, n.data).await.unwrap();
        }
        repo.stack().flush().await.unwrap();
        Link::new(root, key).to_string()
    })
}

#[test]
fn hostile_manifest_names_are_refused_and_nothing_is_written() {
    let env = Env::new(Some("4K"));
    for names in [
        vec![".."],
        vec!["."],
        vec!["ok", "../../escaped"],
        vec!["a/b"],
        vec!["nul\0byte"],
        vec!["twice", "twice"],
        vec![""],
    ] {
        let link = forge_folder(&env, &names);
        let err = env.fails(&["get", &link, "-o", "target"]);
        assert!(
            err.contains("unsafe entry name") || err.contains("malformed"),
            "{names:?}: {err}"
        );
        assert!(!env.path("target").exists(), "{names:?} left a target");
        assert!(!env.dir.path().parent().unwrap().join("escaped").exists());
    }
    // The same forge with good names works, so the refusals above are about the names.
    let link = forge_folder(&env, &["fine"]);
    env.ok(&["get", &link, "-o", "target"]);
    assert_eq!(std::fs::read(env.path("target/fine")).unwrap(), b"escaped!");
}

/// Runs `noisefs args` under umask 077 and asserts success.
fn ok_under_umask_077(env: &Env, args: &[&str]) {
    let c = env.cmd(args);
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("umask 077 && exec \"$0\" \"$@\"")
        .arg(c.get_program())
        .args(c.get_args())
        .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env_remove("RUST_LOG")
        .current_dir(env.dir.path());
    let out = sh.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode_of(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn hostile_modes_never_reach_the_disk_and_the_umask_applies() {
    let env = Env::new(Some("4K"));
    // A stranger's manifest: setuid, setgid, sticky and world-writable everywhere.
    let link = forge_folder_modes(&env, &["f"], 0o7777, 0o7777);
    ok_under_umask_077(&env, &["get", &link, "-o", "got"]);
    assert_eq!(mode_of(&env.path("got")), 0o700);
    assert_eq!(mode_of(&env.path("got/f")), 0o700);
    assert_eq!(std::fs::read(env.path("got/f")).unwrap(), b"escaped!");

    ok_under_umask_077(&env, &["receive", &link, "/in"]);
    ok_under_umask_077(&env, &["tree", "export", "/in", "exported"]);
    assert_eq!(mode_of(&env.path("exported")), 0o700);
    assert_eq!(mode_of(&env.path("exported/f")), 0o700);
    // The tree itself keeps no special bits from the share either.
    let ls = env.ok(&["tree", "ls", "--json", "/in"]);
    assert!(ls.contains("\"mode\": \"0777\""), "{ls}");

    // Ordinary modes under the ordinary umask come through as they were.
    let link = forge_folder_modes(&env, &["g"], 0o640, 0o750);
    env.ok(&["get", &link, "-o", "plain"]);
    assert_eq!(mode_of(&env.path("plain")), 0o750 & !0o022);
    assert_eq!(mode_of(&env.path("plain/g")), 0o640 & !0o022);
}

#[test]
fn locked_and_future_repositories_are_refused() {
    let env = Env::new(Some("4K"));
    {
        let _owner = Repo::open(&env.repo()).unwrap();
        let err = env.fails(&["repo", "stats"]);
        assert!(
            err.contains("locked by process") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
    }
    env.ok(&["repo", "stats"]);
    {
        let repo = Repo::open(&env.repo()).unwrap();
        repo.state().set_schema_version(99).unwrap();
    }
    let err = env.fails(&["repo", "stats"]);
    assert!(
        err.contains("schema version 99") && err.contains("upgrade"),
        "{err}"
    );
    let err = env.fails(&["init"]);
    assert!(err.contains("already initialized"), "{err}");
}

#[test]
fn gc_keeps_pinned_and_frees_unpinned() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("keep"), pseudo_random(100_000, 1)).unwrap();
    std::fs::write(env.path("drop"), pseudo_random(100_000, 2)).unwrap();
    let keep = env.put(&env.path("keep"));
    let drop = env.put(&env.path("drop"));
    let before = env.block_files().len();
    env.ok(&["unpin", &drop]);
    assert!(env.fails(&["unpin", &drop]).contains("not pinned"));
    let dry = env.ok(&["gc", "--dry-run", "--json"]);
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(env.block_files().len(), before, "dry run removed blocks");
    let report: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert_eq!(report["removed_blocks"], dry["removed_blocks"]);
    let after = env.block_files().len();
    assert!(after < before, "gc freed nothing ({before} -> {after})");
    assert_eq!(
        before - after,
        report["removed_blocks"].as_u64().unwrap() as usize
    );
    env.ok(&["get", &keep, "-o", "k"]);
    assert_eq!(std::fs::read(env.path("k")).unwrap(), pseudo_random(100_000, 1));
    env.ok(&["repo", "verify"]);
    // Pinning again a link whose blocks are gone is refused.
    let err = env.fails(&["pin", &drop]);
    assert!(
        err.contains("missing") || err.contains("not every block"),
        "{err}"
    );
    env.ok(&["pin", &keep]);
}

#[test]
fn receive_refuses_a_share_over_its_max_size_and_keeps_nothing() {
    let env = Env::new(Some("4K"));
    let src = env.path("share");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), pseudo_random(6_000, 1)).unwrap();
    std::fs::write(src.join("sub/b"), pseudo_random(6_000, 2)).unwrap();
    let link = env.put(&src);
    // 12,000 bytes declared against a cap of 10 KiB: refused, naming the flag, nothing in the tree.
    let err = env.fails(&["receive", "--max-size", "10K", &link, "/capped"]);
    assert!(err.contains("declares more than --max-size allows"), "{err}");
    assert!(env.fails(&["tree", "ls", "/capped"]).contains("/capped"));
    // Under a cap that fits it lands, whole.
    env.ok(&["receive", "--max-size", "12000", &link, "/fits"]);
    env.ok(&["tree", "export", "/fits", "out"]);
    assert_eq!(
        std::fs::read(env.path("out/sub/b")).unwrap(),
        pseudo_random(6_000, 2)
    );
    // A size that is not one is refused before anything is read.
    assert!(env
        .fails(&["receive", "--max-size", "lots", &link])
        .contains("lots"));
}
