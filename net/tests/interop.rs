//! Interoperability with a real IPFS implementation: helia (IPFS in JavaScript, js-libp2p) on
//! 127.0.0.1. Helia fetches a block from our node over bitswap 1.2.0, our node fetches a block helia
//! added, and our node answers helia's Kademlia (`/ipfs/kad/1.0.0`) provider queries.
//!
//! The helia harness is `net/tests/helia/`; `scripts/interop-setup.sh` copies it to `target/helia`
//! and installs its npm packages (scripts/test.sh does it first). `NOISEFS_HELIA` names another
//! prepared folder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use noisefs_net::{Blocks, Cid, Config, DhtMode, Handle, Keypair, Multiaddr};

#[derive(Default)]
struct Mem(Mutex<HashMap<Cid, Bytes>>);

#[async_trait]
impl Blocks for Mem {
    async fn get(&self, cid: &Cid) -> Option<Bytes> {
        self.0.lock().unwrap().get(cid).cloned()
    }
    async fn has(&self, cid: &Cid) -> bool {
        self.0.lock().unwrap().contains_key(cid)
    }
}

/// The prepared helia folder; a clear failure when it is missing.
fn helia_dir() -> PathBuf {
    let dir = std::env::var_os("NOISEFS_HELIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/helia"));
    assert!(
        dir.join("node_modules/helia").is_dir(),
        "the helia harness is not installed in {}: run scripts/interop-setup.sh (needs node and npm)",
        dir.display()
    );
    dir
}

/// Runs `peer.mjs` with `args` (bounded by `timeout` on the JS side and by `timeout(1)` here) and
/// parses the JSON line it prints last.
fn helia(dir: &PathBuf, args: &[&str]) -> serde_json::Value {
    let out = Command::new("timeout")
        .arg("60")
        .arg("node")
        .args(["--import", "./polyfill.mjs", "peer.mjs"])
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "helia {args:?} failed: {stdout}");
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("helia {args:?} printed {stdout:?}: {e}"))
}

async fn node(blocks: Arc<Mem>, bootstrap: Vec<Multiaddr>) -> Handle {
    let mut cfg = Config::new(Keypair::generate_ed25519());
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.bootstrap = bootstrap;
    cfg.dht = DhtMode::Server;
    noisefs_net::start(cfg, blocks).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_and_noisefs_exchange_blocks_and_answer_each_others_dht() {
    let dir = helia_dir();

    // helia fetches a NoiseFS-sized block from us over bitswap and verifies it.
    let blocks = Arc::new(Mem::default());
    let data: Vec<u8> = (0..131_072u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let cid = Cid::v1_of(0x55, &data);
    blocks.0.lock().unwrap().insert(cid, Bytes::from(data.clone()));
    let ours = node(blocks.clone(), vec![]).await;
    let addr = ours.info().await.unwrap().listen[0].to_string();
    let got = tokio::task::spawn_blocking({
        let (dir, addr, cid) = (dir.clone(), addr.clone(), cid.to_string());
        move || helia(&dir, &["fetch", &addr, &cid])
    })
    .await
    .unwrap();
    assert_eq!(got["verified"], true, "{got}");
    assert_eq!(got["fetched_bytes"], data.len(), "{got}");
    assert!(ours.stats().bytes_sent >= data.len() as u64);

    // helia asks our DHT for the providers of a block we provide: we answer with ourselves.
    ours.provide(cid).await.unwrap();
    let found = tokio::task::spawn_blocking({
        let (dir, addr, cid) = (dir.clone(), addr.clone(), cid.to_string());
        move || helia(&dir, &["providers", &addr, &cid])
    })
    .await
    .unwrap();
    let providers: Vec<String> = found["providers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect())
        .unwrap_or_default();
    assert!(
        providers.contains(&ours.peer_id().to_string()),
        "helia found {providers:?}, not us ({})",
        ours.peer_id()
    );
    ours.shutdown().await;

    // We fetch a block helia added, knowing only helia's address.
    let mut serve = Command::new("timeout")
        .args([
            "60",
            "node",
            "--import",
            "./polyfill.mjs",
            "peer.mjs",
            "serve",
            "30",
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node");
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let helia_addr: Multiaddr = info["addrs"][0].as_str().unwrap().parse().unwrap();
    let helia_cid: Cid = info["rawCid"].as_str().unwrap().parse().unwrap();
    let ours = node(Arc::new(Mem::default()), vec![helia_addr]).await;
    let bytes = ours.want(helia_cid, Duration::from_secs(20)).await;
    let _ = serve.kill();
    let _ = serve.wait();
    let bytes = bytes.unwrap();
    assert_eq!(bytes.len() as u64, info["bytes"].as_u64().unwrap());
    assert_eq!(Cid::v1_of(0x55, &bytes), helia_cid);
    assert!(String::from_utf8_lossy(&bytes).starts_with("raw block from helia"));
    ours.shutdown().await;
}
