//! The network end to end, on 127.0.0.1 only: three repositories as three processes. A holds a file;
//! B knows only A's address; C knows only B's and gets the file (A found through the DHT). A block no
//! peer holds fails with a clear error within the fetch timeout; three such misses open the peers'
//! breaker. What C fetched is recorded as fetched and kept by `gc` for `keep_fetched_days`. A folder mounted with `--root` on a
//! machine that holds none of it reads from the one peer that does; once that peer is gone a file not
//! read yet fails with EIO (logged with the link's root) and the mount stays up.

mod common;

use common::{net_on_loopback, node_address, pseudo_random, wait_until, Daemon, Env};

/// Turns the network on for `env` on loopback, with a short fetch timeout so a miss fails fast.
fn net_on(env: &Env, peers: &[&str]) {
    net_on_loopback(env, peers);
    edit_config(env, "fetch_timeout_ms = 30000", "fetch_timeout_ms = 5000");
}

/// Replaces the line `from` of `env`'s config.toml with `to` (one of the two must be there: editing
/// twice is editing once).
fn edit_config(env: &Env, from: &str, to: &str) {
    let cfg = env.repo().join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains(from) || text.contains(to),
        "neither {from:?} nor {to:?} is in {text}"
    );
    std::fs::write(&cfg, text.replace(from, to)).unwrap();
}

/// Turns the network on for `env` (knowing `peers`), starts its daemon (which runs the node) and
/// returns it with the node's first full address.
fn serve(env: &Env, peers: &[&str]) -> (Daemon, String) {
    net_on(env, peers);
    let daemon = env.daemon();
    let addr = node_address(env);
    (daemon, addr)
}

#[test]
fn a_link_resolves_across_three_nodes_through_the_dht() {
    let a = Env::new(Some("64K"));
    let b = Env::new(Some("64K"));
    let c = Env::new(Some("64K"));

    // Off by default: the commands that need the node say how to turn it on.
    let err = c.fails(&["peers"]);
    assert!(
        err.contains("the network is off") && err.contains("noisefs net on"),
        "{err}"
    );
    assert!(c.ok(&["status"]).contains("network:    off"));

    let data = pseudo_random(700_000, 10);
    std::fs::write(a.path("f.bin"), &data).unwrap();
    let link = a.put(&a.path("f.bin"));

    let (_da, a_addr) = serve(&a, &[]);
    let (_db, b_addr) = serve(&b, &[&a_addr]);
    assert!(b.ok(&["peers"]).contains(a_addr.rsplit("/p2p/").next().unwrap()));

    // A provides its pinned root once B (its one peer) is there to hold the record.
    let a_id = a_addr.rsplit("/p2p/").next().unwrap().to_string();
    wait_until("B to see A as provider", || {
        let out = b.run(&["providers", &link, "--timeout", "2s"]);
        String::from_utf8_lossy(&out.stdout).contains(&a_id)
    });

    // C knows only B; no daemon runs on C, so `get` starts a node for its own duration.
    net_on(&c, &[&b_addr]);
    c.ok(&["get", &link, "-o", c.path("got.bin").to_str().unwrap()]);
    assert_eq!(std::fs::read(c.path("got.bin")).unwrap(), data);

    // A block no peer holds: a clear error within the fetch timeout, naming the peers.
    let missing = format!(
        "noisefs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku#{}",
        link.rsplit('#').next().unwrap()
    );
    let began = std::time::Instant::now();
    let err = c.fails(&["get", &missing, "-o", c.path("none.bin").to_str().unwrap()]);
    assert!(err.contains("peers"), "{err}");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(60),
        "bounded by the fetch timeout"
    );
    assert!(!c.path("none.bin").exists());

    // What C fetched is recorded as fetched: `repo stats` counts it, and `gc` keeps it for
    // `keep_fetched_days` though nothing pins it, then removes it once the rule allows.
    let stats = |env: &Env| -> serde_json::Value {
        serde_json::from_str(&env.ok(&["repo", "stats", "--json"])).unwrap()
    };
    let on_disk = c.block_files().len() as u64;
    assert!(on_disk > 0);
    let s = stats(&c);
    assert_eq!(s["fetched_blocks"].as_u64(), Some(on_disk), "{s}");
    assert_eq!(s["data_blocks"].as_u64(), Some(0), "{s}");
    let gc: serde_json::Value = serde_json::from_str(&c.ok(&["gc", "--json"])).unwrap();
    assert_eq!(gc["removed_blocks"].as_u64(), Some(0), "{gc}");
    assert_eq!(gc["kept_fetched_blocks"].as_u64(), Some(on_disk), "{gc}");
    assert_eq!(c.block_files().len() as u64, on_disk);
    edit_config(&c, "keep_fetched_days = 7", "keep_fetched_days = 0");
    let gc: serde_json::Value = serde_json::from_str(&c.ok(&["gc", "--json"])).unwrap();
    assert_eq!(gc["removed_blocks"].as_u64(), Some(on_disk), "{gc}");
    assert!(c.block_files().is_empty());
    assert_eq!(stats(&c)["fetched_blocks"].as_u64(), Some(0));

    // Peers sit behind a breaker of their own: with C's daemon running, three misses in a row open
    // it, the next read fails at once saying so, and the local store still serves.
    let (_dc, _) = serve(&c, &[&b_addr]);
    let own = c.put(&c.path("got.bin"));
    for _ in 0..3 {
        let err = c.fails(&["get", &missing, "-o", c.path("none.bin").to_str().unwrap()]);
        assert!(err.contains("no peer sent block"), "{err}");
    }
    let status = c.ok(&["status"]);
    assert!(status.contains("store peers: breaker open"), "{status}");
    let err = c.fails(&["get", &missing, "-o", c.path("none.bin").to_str().unwrap()]);
    assert!(err.contains("circuit breaker open"), "{err}");
    c.ok(&["get", &own, "-o", c.path("own.bin").to_str().unwrap()]);
    assert_eq!(std::fs::read(c.path("own.bin")).unwrap(), data);
}

/// Whether `dir` is a mount point in /proc/mounts.
fn is_mounted(dir: &std::path::Path) -> bool {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(dir.as_str()))
}

#[test]
fn a_mounted_link_reads_from_its_only_holder_and_fails_with_eio_once_it_is_gone() {
    let a = Env::new(Some("64K"));
    let b = Env::new(Some("64K"));
    std::fs::create_dir(a.path("share")).unwrap();
    let one = pseudo_random(300_000, 1);
    let two = pseudo_random(300_000, 2);
    std::fs::write(a.path("share/one.bin"), &one).unwrap();
    std::fs::write(a.path("share/two.bin"), &two).unwrap();
    let link = a.put(&a.path("share"));
    let (da, a_addr) = serve(&a, &[]);

    // B holds none of it and knows only A; the mount runs B's node.
    net_on(&b, &[&a_addr]);
    let mnt = b.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    b.ok(&["mount", "--root", &link, mnt.to_str().unwrap()]);
    assert!(is_mounted(&mnt));
    let _unmount = Unmount(&b, &mnt);
    let mut names: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["one.bin", "two.bin"]);
    assert_eq!(std::fs::read(mnt.join("one.bin")).unwrap(), one);

    // A goes away: two.bin's blocks are nowhere, its read fails with EIO within the fetch timeout.
    da.stop();
    let began = std::time::Instant::now();
    let err = std::fs::read(mnt.join("two.bin")).expect_err("two.bin cannot be read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(began.elapsed() < std::time::Duration::from_secs(60));
    // The mount stays up and what was read stays readable.
    assert!(is_mounted(&mnt));
    assert_eq!(std::fs::read(mnt.join("one.bin")).unwrap(), one);
    assert_eq!(std::fs::metadata(mnt.join("two.bin")).unwrap().len(), 300_000);
    let log = std::fs::read_to_string(b.repo().join("mount.log")).unwrap_or_default();
    assert!(
        log.contains("cannot read a file's content")
            && log.contains("link=\"bafk")
            && log.contains("no peer sent block"),
        "{log}"
    );
}

/// Unmounts when dropped, so a failed assertion leaves no mount behind.
struct Unmount<'a>(&'a Env, &'a std::path::Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["unmount", self.1.to_str().unwrap()]);
    }
}
