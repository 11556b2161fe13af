//! Nodes on 127.0.0.1 in one process: blocks move by bitswap between peers that know each other, are
//! found through the DHT by a peer that knows only a third one, survive a holder that dies, and are
//! never taken from a peer that lies. Pubsub messages travel a chain of peers only as far as each
//! one accepts them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use noisefs_net::{Blocks, Cid, Config, DhtMode, Handle, Keypair, NetError, PubsubMessage, Verdict};

/// Blocks in memory; a liar answers every want with bytes that do not match.
#[derive(Default)]
struct Mem {
    blocks: Mutex<HashMap<Cid, Bytes>>,
    liar: bool,
}

impl Mem {
    fn put(&self, data: &[u8]) -> Cid {
        let cid = Cid::v1_of(0x55, data);
        self.blocks
            .lock()
            .unwrap()
            .insert(cid, Bytes::copy_from_slice(data));
        cid
    }
}

#[async_trait]
impl Blocks for Mem {
    async fn get(&self, cid: &Cid) -> Option<Bytes> {
        if self.liar {
            return Some(Bytes::from_static(b"not what you asked for"));
        }
        self.blocks.lock().unwrap().get(cid).cloned()
    }
    async fn has(&self, cid: &Cid) -> bool {
        self.liar || self.blocks.lock().unwrap().contains_key(cid)
    }
}

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn node(blocks: Arc<Mem>, bootstrap: Vec<noisefs_net::Multiaddr>) -> Handle {
    node_in(DhtMode::Server, blocks, bootstrap).await
}

async fn node_in(dht: DhtMode, blocks: Arc<Mem>, bootstrap: Vec<noisefs_net::Multiaddr>) -> Handle {
    logs();
    let mut cfg = Config::new(Keypair::generate_ed25519());
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.bootstrap = bootstrap;
    cfg.dht = dht;
    cfg.patience = Duration::from_secs(2);
    noisefs_net::start(cfg, blocks).await.unwrap()
}

async fn addr(h: &Handle) -> noisefs_net::Multiaddr {
    h.info().await.unwrap().listen[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_found_through_the_dht_and_fetched_verified() {
    let a_blocks = Arc::new(Mem::default());
    let cids: Vec<Cid> = (0..40u32)
        .map(|i| a_blocks.put(&vec![i as u8; 100_000]))
        .collect();
    let a = node(a_blocks.clone(), vec![]).await;
    let b = node(Arc::new(Mem::default()), vec![addr(&a).await]).await;
    let info = a.info().await.unwrap();
    assert!(info.listen[0]
        .to_string()
        .ends_with(&format!("/p2p/{}", a.peer_id())));
    assert!(info.dht_server);
    // B knows A; A provides its first block (its provider record lands on B, its only peer).
    wait_for(|| async { a.peers().await.unwrap().len() == 1 }).await;
    a.provide(cids[0]).await.unwrap();
    wait_for(|| async {
        b.providers(cids[0], Duration::from_secs(2))
            .await
            .unwrap()
            .contains(&a.peer_id())
    })
    .await;
    // C knows only B: it finds A as a provider through B and fetches every block.
    let c = node(Arc::new(Mem::default()), vec![addr(&b).await]).await;
    wait_for(|| async { !c.peers().await.unwrap().is_empty() }).await;
    assert!(c
        .providers(cids[0], Duration::from_secs(5))
        .await
        .unwrap()
        .contains(&a.peer_id()));
    let first = c.want(cids[0], Duration::from_secs(20)).await.unwrap();
    assert!(cids[0].verifies(&first));
    let peers = c.peers().await.unwrap();
    assert!(
        peers.iter().any(|p| p.peer == a.peer_id() && p.blocks_from == 1),
        "{peers:?}"
    );
    // The rest in flight at once.
    let all = futures::future::join_all(cids.iter().map(|cid| c.want(*cid, Duration::from_secs(20)))).await;
    for (cid, got) in cids.iter().zip(all) {
        assert!(cid.verifies(&got.unwrap()));
    }
    assert!(a.stats().blocks_sent == 0 || a.stats().bytes_sent >= 40 * 100_000 - 100_000);
    assert!(c.stats().bytes_received >= 40 * 100_000);
    assert!(c
        .discovered()
        .await
        .unwrap()
        .iter()
        .any(|d| d.peer == b.peer_id()));
    // A block nobody has: a clear error within the timeout.
    let missing = Cid::v1_of(0x55, b"nobody has this");
    let t = std::time::Instant::now();
    match c.want(missing, Duration::from_secs(2)).await {
        Err(NetError::NotFound { cid, .. }) => assert_eq!(cid, missing),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // Disconnect and shut down.
    assert!(c.disconnect(a.peer_id()).await.unwrap());
    for h in [a, b, c] {
        h.shutdown().await;
        assert!(matches!(h.info().await, Err(NetError::Stopped)));
    }
}

/// A peer that answers every want-block with a block of other bytes (what an honest node never does:
/// its server checks what it sends), written straight on a bitswap stream.
async fn liar() -> noisefs_net::Multiaddr {
    use futures::StreamExt;
    use libp2p::StreamProtocol;
    use noisefs_net::bitswap::{io, message::Message};
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            Default::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    let mut control = swarm.behaviour().new_control();
    let mut incoming = control
        .accept(StreamProtocol::new("/ipfs/bitswap/1.2.0"))
        .unwrap();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with_p2p(*swarm.local_peer_id()).unwrap();
        }
    };
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = incoming.next().await {
            let mut control = control.clone();
            tokio::spawn(async move {
                while let Ok(Some(frame)) = io::read_frame(&mut stream).await {
                    let Ok(msg) = Message::decode(&frame) else { return };
                    if msg.wantlist.is_empty() {
                        continue;
                    }
                    let lie = Bytes::from_static(b"not what you asked for");
                    let reply = Message {
                        blocks: vec![(Cid::v1_of(0x55, &lie), lie)],
                        ..Message::default()
                    };
                    let Ok(mut out) = control
                        .open_stream(peer, StreamProtocol::new("/ipfs/bitswap/1.2.0"))
                        .await
                    else {
                        return;
                    };
                    let _ = io::write_frame(&mut out, &reply).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liar_is_dropped_and_the_block_comes_from_an_honest_peer() {
    let honest = Arc::new(Mem::default());
    let cid = honest.put(b"the real block");
    let liar_addr = liar().await;
    let good = node(honest, vec![]).await;
    let me = node(Arc::new(Mem::default()), vec![liar_addr.clone()]).await;
    wait_for(|| async { me.peers().await.unwrap().len() == 1 }).await;
    // Only the liar is connected: its bytes are refused and it is dropped.
    assert!(me.want(cid, Duration::from_secs(3)).await.is_err());
    assert_eq!(me.stats().peers_banned, 1);
    assert!(me.stats().unwanted_blocks >= 1);
    assert!(me.peers().await.unwrap().is_empty());
    // It cannot come back for a while; the honest peer serves.
    let refused = me.connect(liar_addr).await.unwrap_err();
    assert!(
        refused.to_string().contains("dropped for misbehaving"),
        "{refused}"
    );
    me.connect(addr(&good).await).await.unwrap();
    let got = me.want(cid, Duration::from_secs(10)).await.unwrap();
    assert_eq!(&got[..], b"the real block");
    assert_eq!(me.peers().await.unwrap().len(), 1, "the liar stays out");
    // A dial to a port nobody listens on fails clearly.
    let err = me
        .connect("/ip4/127.0.0.1/tcp/1".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot reach /ip4/127.0.0.1/tcp/1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_dies_mid_transfer_leaves_the_rest_to_another() {
    let a_blocks = Arc::new(Mem::default());
    let b_blocks = Arc::new(Mem::default());
    let cids: Vec<Cid> = (0..200u32)
        .map(|i| {
            let data = [i.to_le_bytes().to_vec(), vec![7u8; 64 * 1024]].concat();
            b_blocks.put(&data);
            a_blocks.put(&data)
        })
        .collect();
    let a = node(a_blocks, vec![]).await;
    let b = node(b_blocks, vec![]).await;
    let me = node(Arc::new(Mem::default()), vec![addr(&a).await]).await;
    wait_for(|| async { me.peers().await.unwrap().len() == 1 }).await;
    // A serves the first blocks, so wants stick to it.
    for cid in &cids[..10] {
        me.want(*cid, Duration::from_secs(10)).await.unwrap();
    }
    me.connect(addr(&b).await).await.unwrap();
    let rest = cids[10..].to_vec();
    let fetch = {
        let me = me.clone();
        tokio::spawn(async move {
            futures::future::join_all(rest.iter().map(|cid| me.want(*cid, Duration::from_secs(30)))).await
        })
    };
    a.shutdown().await;
    for got in fetch.await.unwrap() {
        got.unwrap();
    }
}

/// A burst of 1,000 wants at once from one peer to one holder (each want is its own message): none is
/// dropped on the way, though both sides' queues are far shorter than the burst (before the want lists
/// were merged while a queue was full, wants past the queue were lost and timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wants_larger_than_the_queues_is_answered_in_full() {
    let a_blocks = Arc::new(Mem::default());
    let cids: Vec<Cid> = (0..1000u32)
        .map(|i| a_blocks.put(&[i.to_le_bytes().to_vec(), vec![3u8; 4096]].concat()))
        .collect();
    let a = node(a_blocks, vec![]).await;
    let me = node(Arc::new(Mem::default()), vec![addr(&a).await]).await;
    wait_for(|| async { me.peers().await.unwrap().len() == 1 }).await;
    let got = futures::future::join_all(cids.iter().map(|cid| me.want(*cid, Duration::from_secs(20)))).await;
    let failed = got.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "{failed} of 1000 wants were not answered");
    for (cid, data) in cids.iter().zip(got) {
        assert!(cid.verifies(&data.unwrap()));
    }
}

/// The next pubsub message, within 30 s.
async fn next_message(rx: &mut tokio::sync::broadcast::Receiver<PubsubMessage>) -> PubsubMessage {
    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        Ok(Ok(m)) => m,
        other => panic!("no message within 30 s: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_messages_travel_a_chain_only_as_far_as_each_peer_accepts_them() {
    // A - B - C, each knowing only its neighbour (DHT clients: nobody finds anyone else).
    let a = node_in(DhtMode::Client, Arc::new(Mem::default()), vec![]).await;
    let b = node_in(DhtMode::Client, Arc::new(Mem::default()), vec![addr(&a).await]).await;
    let c = node_in(DhtMode::Client, Arc::new(Mem::default()), vec![addr(&b).await]).await;
    let topic = "9f86d081884c7d659a2feaa0c55ad015";
    let (mut rb, mut rc) = (b.messages(), c.messages());
    for h in [&a, &b, &c] {
        assert!(h.subscribe(topic).await.unwrap());
    }
    assert!(!a.subscribe(topic).await.unwrap(), "joined already");

    // Nobody else joined this one; a message over the cap is refused before it is sent.
    let err = a.publish("lonely", b"x".to_vec()).await.unwrap_err();
    assert!(
        err.to_string().contains("no connected peer has joined it"),
        "{err}"
    );
    let err = a
        .publish(topic, vec![0; noisefs_net::pubsub::MAX_MESSAGE + 1])
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetError::Publish { .. }) && err.to_string().contains("more than"),
        "{err}"
    );

    // Until C's first message, A publishes probes that B and C accept (the mesh forms on heartbeats).
    let mut ready = false;
    for i in 0..30 {
        if a.publish(topic, format!("probe {i}").into_bytes()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let m = next_message(&mut rb).await;
        b.judge(&m, Verdict::Accept).await.unwrap();
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), rc.recv()).await {
            c.judge(&m, Verdict::Accept).await.unwrap();
            ready = true;
            break;
        }
    }
    assert!(ready, "C never received a probe through B");

    // B rejects one message and accepts the next: C gets the second, from B, and never the first.
    a.publish(topic, b"forged".to_vec()).await.unwrap();
    let m = loop {
        let m = next_message(&mut rb).await;
        if m.data.starts_with(b"probe") {
            continue;
        }
        break m;
    };
    assert_eq!(
        (&m.data[..], m.from, m.topic.as_str()),
        (&b"forged"[..], a.peer_id(), topic)
    );
    assert_eq!(m.id, noisefs_net::pubsub::message_id(topic, b"forged"));
    b.judge(&m, Verdict::Reject).await.unwrap();
    a.publish(topic, b"signed".to_vec()).await.unwrap();
    let m = next_message(&mut rb).await;
    assert_eq!(&m.data[..], b"signed");
    b.judge(&m, Verdict::Accept).await.unwrap();
    let got = loop {
        let m = next_message(&mut rc).await;
        assert_ne!(&m.data[..], b"forged", "B rejected it: it must not reach C");
        if m.data.starts_with(b"probe") {
            continue;
        }
        break m;
    };
    assert_eq!((&got.data[..], got.from), (&b"signed"[..], b.peer_id()));

    assert!(c.unsubscribe(topic).await.unwrap());
    assert!(!c.unsubscribe(topic).await.unwrap());
}

/// Polls `check` until it holds, for at most 20 s.
async fn wait_for<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_once_capped_and_bounded_in_time() {
    let a = node_in(DhtMode::Client, Arc::new(Mem::default()), vec![]).await;
    let b = node_in(DhtMode::Client, Arc::new(Mem::default()), vec![addr(&a).await]).await;
    wait_for(|| async { a.peers().await.unwrap().len() == 1 }).await;
    const ECHO: &str = "/noisefs-test/echo/1.0.0";
    const SILENT: &str = "/noisefs-test/silent/1.0.0";
    let mut inbox = a.serve_requests(ECHO, 64, 1024).unwrap();
    assert!(
        a.serve_requests(ECHO, 64, 1024).is_err(),
        "one server per protocol"
    );
    tokio::spawn(async move {
        while let Some(req) = inbox.recv().await {
            let mut answer = b"echo ".to_vec();
            answer.extend_from_slice(&req.data);
            if req.data == b"big" {
                answer = vec![7; 2048]; // over the server's own cap: sent empty
            }
            req.respond(answer);
        }
    });
    let t = Duration::from_secs(10);
    let got = b
        .request(a.peer_id(), ECHO, b"hi".to_vec(), 1024, t)
        .await
        .unwrap();
    assert_eq!(got, b"echo hi");
    let got = b
        .request(a.peer_id(), ECHO, b"big".to_vec(), 1024, t)
        .await
        .unwrap();
    assert!(got.is_empty());
    // An answer over the asker's cap is refused; a request over the server's cap goes unanswered.
    let err = b
        .request(a.peer_id(), ECHO, b"hello".to_vec(), 4, t)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cap"), "{err}");
    let err = b
        .request(a.peer_id(), ECHO, vec![1; 100], 1024, t)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Request { .. }), "{err}");
    // A protocol nobody serves, and one whose server never answers within the asker's time.
    let err = b
        .request(a.peer_id(), SILENT, b"x".to_vec(), 1024, t)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(SILENT), "{err}");
    let _held = a.serve_requests(SILENT, 64, 64).unwrap();
    let err = b
        .request(a.peer_id(), SILENT, b"x".to_vec(), 64, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no answer within 0.5 s"), "{err}");
}
