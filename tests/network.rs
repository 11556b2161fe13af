//! The network end to end, on 127.0.0.1 only: three repositories as three processes. A holds a file;
//! B knows only A's address; C knows only B's and gets the file (A found through the DHT). A block no
//! peer holds fails with a clear error within the fetch timeout.

mod common;

use common::{pseudo_random, wait_until, Env};

/// Turns the network on for `env`, listening on a free loopback port, answering DHT queries.
fn net_on(env: &Env, peers: &[&str]) {
    let mut args = vec!["net", "on", "--listen", "/ip4/127.0.0.1/tcp/0", "--dht", "server"];
    for p in peers {
        args.extend(["--peer", p]);
    }
    env.ok(&args);
    // Short fetch timeout, so a miss fails fast.
    let cfg = env.repo().join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("fetch_timeout_ms = 30000", "fetch_timeout_ms = 5000"),
    )
    .unwrap();
}

/// The first full address `noisefs id` prints.
fn address(env: &Env) -> String {
    let out = env.ok(&["id"]);
    let addr = out.lines().nth(1).expect("an address line").to_string();
    assert!(
        addr.starts_with("/ip4/127.0.0.1/tcp/") && addr.contains("/p2p/"),
        "{out}"
    );
    addr
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

    net_on(&a, &[]);
    let _da = a.daemon();
    let a_addr = address(&a);
    net_on(&b, &[&a_addr]);
    let _db = b.daemon();
    let b_addr = address(&b);
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
}
