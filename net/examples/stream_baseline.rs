//! The baseline of the network benchmark (scripts/bench-net.sh): two libp2p swarms on 127.0.0.1 with the
//! transport NoiseFS nodes use (TCP with nodelay, noise, yamux) copy N bytes over one plain stream, in
//! 128 KiB writes. Prints `{"bytes":N,"secs":S,"mb_per_s":R}`.
//!
//!     cargo run --release -p noisefs-net --example stream_baseline -- 1073741824

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/noisefs/bench-copy/1");

fn swarm() -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a byte count"))
        .unwrap_or(1 << 30);

    let mut server = swarm();
    let mut incoming = server.behaviour().new_control().accept(PROTOCOL).expect("accept");
    server
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"))
        .expect("listen");
    let addr: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let server_id = *server.local_peer_id();
    tokio::spawn(async move {
        loop {
            server.select_next_some().await;
        }
    });
    // The receiver reads everything and reports how much arrived.
    let received = tokio::spawn(async move {
        let (_, mut stream) = incoming.next().await.expect("a stream");
        let mut buf = vec![0u8; 1 << 17];
        let mut got = 0u64;
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
        got
    });

    let mut client = swarm();
    let mut control = client.behaviour().new_control();
    client.dial(addr).expect("dial");
    tokio::spawn(async move {
        loop {
            client.select_next_some().await;
        }
    });
    let data: Vec<u8> = (0..1u32 << 17).map(|i| (i * 31 + i / 97) as u8).collect();
    let began = Instant::now();
    let mut stream = loop {
        match control.open_stream(server_id, PROTOCOL).await {
            Ok(s) => break s,
            Err(_) if began.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("cannot open a stream: {e}"),
        }
    };
    let began = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(data.len() as u64) as usize;
        stream.write_all(&data[..n]).await.expect("write");
        sent += n as u64;
    }
    stream.close().await.expect("close");
    let got = received.await.expect("receiver");
    let secs = began.elapsed().as_secs_f64();
    assert_eq!(got, total, "the receiver got every byte");
    println!(
        "{{\"bytes\":{total},\"secs\":{secs:.3},\"mb_per_s\":{:.1}}}",
        total as f64 / secs / 1e6
    );
}
