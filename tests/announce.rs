//! Announcements end to end, on 127.0.0.1 only: A announces a file on `media/books`; B, subscribed
//! to `media/**`, sees it live through `subscribe --follow`, finds it with `discover`, and reads its
//! content from A as a file of its mount's `/.announce` (where mkdir subscribes and rmdir unsubscribes); C subscribes and starts later, and catches up from its peer. A flood of forged
//! and replayed announcements from one peer leaves B's store unchanged and B responsive.

mod common;

use std::io::BufRead;
use std::time::Duration;

use common::{net_on_loopback, node_address, pseudo_random, wait_until, Daemon, Env};

/// Turns the network on for `env` on loopback (knowing `peers`), starts its daemon and returns it with
/// the node's first full address.
fn serve(env: &Env, peers: &[&str]) -> (Daemon, String) {
    net_on_loopback(env, peers);
    let daemon = env.daemon();
    (daemon, node_address(env))
}

fn discover(env: &Env, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["discover", "--json"];
    all.extend(args);
    let out = env.ok(&all);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn an_announcement_reaches_subscribers_live_and_late_and_opens() {
    let a = Env::new(Some("64K"));
    let b = Env::new(Some("64K"));
    let c = Env::new(Some("64K"));
    let content = pseudo_random(300_000, 11);
    std::fs::write(a.path("dune.epub"), &content).unwrap();
    let link = a.put(&a.path("dune.epub"));
    let (_da, addr_a) = serve(&a, &[]);

    b.ok(&["subscribe", "media/**"]);
    assert_eq!(
        b.ok(&["subscribe", "--list"])
            .lines()
            .next()
            .unwrap()
            .split('\t')
            .next(),
        Some("media/**")
    );
    // B's owner is its mount, which runs its node.
    net_on_loopback(&b, &[&addr_a]);
    let mnt = b.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    b.ok(&["mount", mnt.to_str().unwrap()]);
    let _unmount = Unmount(&b, &mnt);
    let announce_dir = mnt.join(".announce");
    let mut names: Vec<String> = std::fs::read_dir(&announce_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["media:**"], "a subscription shows at once");
    // B follows; its first line is the announcement.
    let mut follow = b
        .cmd(&["subscribe", "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It says when it listens (before that, an announcement would not be shown live).
    let mut said = String::new();
    std::io::BufReader::new(follow.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert!(said.starts_with("following media/**"), "{said}");
    let lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });

    let out = a.ok(&[
        "announce",
        &link,
        "--topic",
        "Media/Books",
        "--tags",
        "scifi,classic",
        "--title",
        "Dune",
        "--json",
    ]);
    let made: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(made["published"], true, "{out}");
    assert_eq!(made["topic"], "media/books");

    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
        panic!(
            "B's follow printed nothing: {} {}\n{}",
            b.ok(&["status"]),
            b.ok(&["discover"]),
            std::fs::read_to_string(b.repo().join("mount.log")).unwrap_or_default()
        )
    });
    let seen: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (&seen["title"], &seen["topic"], &seen["link"]),
        (&"Dune".into(), &"media/books".into(), &link.clone().into())
    );
    assert_eq!(seen["publisher"], made["publisher"]);
    let _ = follow.kill();
    let _ = follow.wait();

    // Discover ranks by tags; a tag it lacks or another topic finds nothing.
    let hits = discover(&b, &["--tags", "scifi", "--topic", "media/*"]);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (&hits[0]["title"], &hits[0]["tags_matched"]),
        (&"Dune".into(), &1.into())
    );
    assert!(discover(&b, &["--tags", "poetry"]).is_empty());
    assert!(discover(&b, &["--topic", "software/**"]).is_empty());
    let category = made["category"].as_str().unwrap();
    assert_eq!(
        discover(&b, &["dune", "--since", "1h", "--category", category]).len(),
        1
    );
    let other = if category == "video" { "audio" } else { "video" };
    assert!(discover(&b, &["--category", other]).is_empty());
    let publishers = b.ok(&["publishers"]);
    assert!(
        publishers.contains(made["publisher"].as_str().unwrap()),
        "{publishers}"
    );
    // In B's mount: the pattern's folder and the topic's hold it as a file whose content comes from A.
    names = std::fs::read_dir(&announce_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["media:**", "media:books"]);
    let file = announce_dir.join("media:**").join("Dune");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), content.len() as u64);
    assert_eq!(std::fs::read(&file).unwrap(), content);
    assert_eq!(
        std::fs::read(announce_dir.join("media:books/Dune")).unwrap(),
        content
    );
    let feed = std::fs::read_to_string(announce_dir.join("media:**/.feed")).unwrap();
    assert!(
        feed.contains("\tmedia/books\tDune\t") && feed.contains(&link),
        "{feed}"
    );
    assert!(
        std::fs::write(announce_dir.join("media:**/new"), b"x").is_err(),
        "read-only"
    );
    // A folder announcement is a folder, browsed through its link (small files inline, big ones not).
    std::fs::create_dir_all(a.path("series/sub")).unwrap();
    std::fs::write(a.path("series/one.txt"), b"first").unwrap();
    let big = pseudo_random(200_000, 12);
    std::fs::write(a.path("series/sub/two.bin"), &big).unwrap();
    let folder = a.put(&a.path("series"));
    a.ok(&["announce", &folder, "--topic", "media/books", "--title", "Series"]);
    wait_until("B kept the folder", || discover(&b, &[]).len() == 2);
    let series = announce_dir.join("media:books/Series");
    assert!(std::fs::metadata(&series).unwrap().is_dir());
    assert_eq!(std::fs::read(series.join("one.txt")).unwrap(), b"first");
    assert_eq!(std::fs::read(series.join("sub/two.bin")).unwrap(), big);
    let mut inside: Vec<String> = std::fs::read_dir(&series)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    inside.sort();
    assert_eq!(inside, ["one.txt", "sub"]);
    // mkdir subscribes, rmdir unsubscribes; a bad pattern is refused.
    std::fs::create_dir(announce_dir.join("docs:*")).unwrap();
    assert!(b.ok(&["subscribe", "--list"]).contains("docs/*"));
    assert!(std::fs::create_dir(announce_dir.join("a b")).is_err());
    std::fs::remove_dir(announce_dir.join("docs:*")).unwrap();
    assert!(!b.ok(&["subscribe", "--list"]).contains("docs/*"));
    // And `get` opens it too.
    let got = b.path("got.epub");
    b.ok(&["get", &link, "-o", got.to_str().unwrap()]);
    assert_eq!(std::fs::read(&got).unwrap(), content);

    // C subscribes to the exact topic while offline, then starts: it catches up from A.
    c.ok(&["subscribe", "media/books"]);
    assert!(discover(&c, &[]).is_empty());
    let (_dc, _) = serve(&c, &[&addr_a]);
    wait_until("C caught up", || discover(&c, &[]).len() == 2);
    let mut titles: Vec<String> = discover(&c, &[])
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles, ["Dune", "Series"]);
    let status = c.ok(&["status"]);
    assert!(
        status.contains("announce:   2 kept, 1 subscription(s); refused: none"),
        "{status}"
    );
    b.ok(&["unsubscribe", "media/**"]);
    assert!(b.fails(&["unsubscribe", "media/**"]).contains("not subscribed"));
}

/// Unmounts when dropped, so a failed assertion leaves no mount behind.
struct Unmount<'a>(&'a Env, &'a std::path::Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["unmount", self.1.to_str().unwrap()]);
    }
}

#[test]
fn bad_patterns_and_offline_announcements_are_clear() {
    let a = Env::new(Some("64K"));
    let err = a.fails(&["subscribe", "media/**/x"]);
    assert!(err.contains("`**` can only be the last level"), "{err}");
    let err = a.fails(&["subscribe", "a b"]);
    assert!(err.contains("is not allowed"), "{err}");
    std::fs::write(a.path("f.txt"), b"hello").unwrap();
    let link = a.put(&a.path("f.txt"));
    let err = a.fails(&["announce", &link, "--topic", "docs", "--ttl", "40d"]);
    assert!(err.contains("1m to 30d"), "{err}");
    // With the network off, it is kept here and says so.
    let out = a.run(&["announce", &link, "--topic", "docs", "--private"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the network is off"), "{err}");
    a.ok(&["subscribe", "docs"]);
    let hits = discover(&a, &[]);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (&hits[0]["title"], &hits[0]["link"]),
        (&"f.txt".into(), &serde_json::Value::Null)
    );
    // Blocking a publisher removes what it announced.
    let key = hits[0]["publisher"].as_str().unwrap().to_string();
    a.ok(&["publishers", "--block", &key]);
    assert!(discover(&a, &[]).is_empty());
    assert!(a.ok(&["publishers"]).contains("blocked"));
    assert!(a
        .fails(&["publishers", "--trust", "np-nope"])
        .contains("publisher"));
}

struct NoBlocks;

#[async_trait::async_trait]
impl noisefs_net::Blocks for NoBlocks {
    async fn get(&self, _cid: &noisefs_net::Cid) -> Option<bytes::Bytes> {
        None
    }
    async fn has(&self, _cid: &noisefs_net::Cid) -> bool {
        false
    }
}

/// B's refusal counts, from `status --json`.
fn refused(env: &Env) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    v["announcements"]["refused"].clone()
}

#[test]
fn a_flood_of_forged_and_replayed_announcements_changes_nothing() {
    use noisefs::announce::{format, topic};
    let b = Env::new(Some("64K"));
    b.ok(&["subscribe", "media/**"]);
    let (_db, addr_b) = serve(&b, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let make = |nonce: u32, title: &str| {
        let id = noisefs::block::BlockId::of(&nonce.to_le_bytes());
        let mut n = [0u8; 16];
        n[..4].copy_from_slice(&nonce.to_le_bytes());
        format::Body {
            v: format::VERSION,
            publisher: key.verifying_key().to_bytes(),
            root: id.to_string(),
            link: None,
            title: title.into(),
            folder: false,
            topic: topic::levels("media/books")
                .into_iter()
                .map(serde_bytes::ByteArray::new)
                .collect(),
            tags: format::Tags::of(&["x"]).0,
            category: format::Category::Other,
            size_class: 10,
            media_type: "text/plain".into(),
            time: noisefs::clock::now_secs() as u64,
            ttl: 3600,
            nonce: n,
        }
        .sign(&key)
        .unwrap()
        .bytes
    };
    let wire = topic::wire_topic(&topic::prefix_hash("media"));
    rt.block_on(async {
        let mut cfg = noisefs_net::Config::new(noisefs_net::Keypair::generate_ed25519());
        cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        cfg.bootstrap = vec![addr_b.parse().unwrap()];
        let f = noisefs_net::start(cfg, std::sync::Arc::new(NoBlocks))
            .await
            .unwrap();
        f.subscribe(&wire).await.unwrap();
        // One honest announcement first (retried until B has joined the topic).
        let honest = make(0, "honest");
        let mut sent = false;
        for _ in 0..100 {
            if f.publish(&wire, honest.clone()).await.is_ok() {
                sent = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(sent, "B never joined the topic");
        wait_until("B kept the honest one", || discover(&b, &[]).len() == 1);
        // 10,000 more: forged signatures (each distinct) and replays of the honest one re-sent as new
        // bytes (the same publisher and nonce, another title: the signature no longer holds).
        for i in 1..=10_000u32 {
            let mut m = if i % 2 == 0 {
                make(i, "forged")
            } else {
                make(0, &format!("replay {i}"))
            };
            let n = m.len();
            m[n - 1] ^= 0x55;
            let _ = f.publish(&wire, m).await;
        }
        // And the honest one itself again, unchanged (a replay gossipsub or the store drops).
        let _ = f.publish(&wire, honest).await;
        wait_until("B counted the flood", || {
            let r = refused(&b);
            r["forged"].as_u64().unwrap_or(0) + r["peer_rate"].as_u64().unwrap_or(0) >= 1000
        });
        f.shutdown().await;
    });
    // Nothing stored, and B still answers and takes new work.
    let hits = discover(&b, &[]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["title"], "honest");
    std::fs::write(b.path("n.txt"), b"new").unwrap();
    let link = b.put(&b.path("n.txt"));
    b.ok(&["announce", &link, "--topic", "media/books", "--wait", "0s"]);
    assert_eq!(discover(&b, &[]).len(), 2);
}
