//! How a node is set up: its identity, where it listens, whom it asks first, and its limits.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::Multiaddr;

/// Whether the node answers DHT queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhtMode {
    /// Answer queries only once an external address is confirmed (libp2p's rule): a node behind NAT
    /// or on loopback stays a client.
    Auto,
    /// Always answer queries (a node others bootstrap from, or tests on loopback).
    Server,
    /// Never answer queries.
    Client,
}

/// A node's setup.
#[derive(Clone)]
pub struct Config {
    pub keypair: Keypair,
    /// Multiaddrs to listen on (`/ip4/127.0.0.1/tcp/0`, `/ip4/0.0.0.0/udp/4001/quic-v1`, ...).
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start, each with `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network by multicast DNS (it multicasts on every interface).
    pub mdns: bool,
    pub dht: DhtMode,
    /// Established connections at most.
    pub max_connections: u32,
    /// Block bytes per second served to one peer (0: no limit).
    pub serve_bytes_per_sec: u64,
    /// Wants kept per peer we serve.
    pub ledger_cap: usize,
    /// How long a peer asked for a block may stay silent before another is asked.
    pub patience: Duration,
    /// Connections with nothing going on are closed after this.
    pub idle_timeout: Duration,
    /// How often provider records are published again.
    pub reprovide: Duration,
    /// The agent version identify reports.
    pub agent: String,
}

impl Config {
    /// Defaults around `keypair`: no listener, no peers, no mDNS.
    pub fn new(keypair: Keypair) -> Config {
        Config {
            keypair,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            dht: DhtMode::Auto,
            max_connections: 256,
            serve_bytes_per_sec: 0,
            ledger_cap: 1024,
            patience: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            reprovide: Duration::from_secs(12 * 3600),
            agent: format!("noisefs/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Shows everything but the secret key (only its peer id).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("peer_id", &self.keypair.public().to_peer_id())
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .field("mdns", &self.mdns)
            .field("dht", &self.dht)
            .field("max_connections", &self.max_connections)
            .field("serve_bytes_per_sec", &self.serve_bytes_per_sec)
            .field("ledger_cap", &self.ledger_cap)
            .field("patience", &self.patience)
            .field("idle_timeout", &self.idle_timeout)
            .field("reprovide", &self.reprovide)
            .field("agent", &self.agent)
            .finish()
    }
}
