//! A `put` killed with SIGKILL midway loses nothing stored before it: the repository reopens cleanly,
//! earlier links still read back, and `gc` removes the blocks the killed `put` left unrecorded.

mod common;

use std::process::Stdio;

use common::{pseudo_random, Env};

#[test]
fn killed_put_leaves_a_clean_repository() {
    let env = Env::new(None);
    let keep = pseudo_random(300_000, 11);
    std::fs::write(env.path("keep"), &keep).unwrap();
    let link = env.put(&env.path("keep"));
    // Start from a collected repository (an unused fresh randomizer would otherwise go in the later gc).
    env.ok(&["gc"]);
    let kept = env.block_files();
    let before = kept.len();

    std::fs::write(env.path("big"), pseudo_random(512 << 20, 12)).unwrap();
    let mut child = env
        .cmd(&["put", "big"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (by condition, not by time) until the put has written a good number of blocks, then kill it.
    loop {
        if env.block_files().len() > before + 200 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("put finished before it could be killed: {status}");
        }
        std::thread::yield_now();
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());

    // The lock died with the process; every block file on disk is whole.
    env.ok(&["repo", "verify"]);
    let cat = env.run(&["cat", &link]);
    assert!(
        cat.status.success() && cat.stdout == keep,
        "the earlier file did not read back"
    );
    let report: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert!(report["removed_blocks"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        env.block_files(),
        kept,
        "gc should leave exactly the earlier blocks"
    );
    env.ok(&["repo", "verify"]);
    // The repository stores again after the crash.
    let again = env.put(&env.path("keep"));
    env.ok(&["get", &again, "-o", "again"]);
    assert_eq!(std::fs::read(env.path("again")).unwrap(), keep);
}
