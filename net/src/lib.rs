//! `noisefs-net`: an IPFS-compatible libp2p node that knows nothing of NoiseFS formats. One task owns
//! the `Swarm` (TCP and QUIC-v1, noise, yamux, identify, ping, Kademlia as `/ipfs/kad/1.0.0`, mDNS when
//! asked, gossipsub for publish/subscribe, bitswap 1.2.0 written here); the rest of the program
//! reaches it through a cheap cloneable [`Handle`]. Blocks are served from, and only from, what the
//! [`Blocks`] trait gives; every block received is verified against its CID before a waiter sees it.
//!
//! Module map: [`cid`] and [`varint`] (multiformats), [`bitswap`] (message codec, ledgers and wants
//! without I/O, then stream tasks), [`pubsub`] (gossipsub setup and message types), [`request`] (one-shot request and response on a
//! stream), [`config`],
//! [`node`] (start-up and the handle), `task` (the event loop that owns the swarm).

pub mod bitswap;
pub mod cid;
pub mod config;
pub mod node;
pub mod pubsub;
pub mod request;
mod task;
pub mod varint;

pub use cid::Cid;
pub use config::{Config, DhtMode};
pub use node::{start, Discovered, Handle, Info, PeerInfo, Stats, StatsSnapshot};
pub use pubsub::{PubsubMessage, Verdict};
pub use request::Inbound;

pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};

use async_trait::async_trait;
use bytes::Bytes;

/// The local blocks a node serves. Unless [`Blocks::verifies`] says the store checks what it reads
/// itself, the node verifies what this returns against the CID before it is sent, so a corrupt local
/// copy is answered as dont-have.
#[async_trait]
pub trait Blocks: Send + Sync + 'static {
    /// The block named by `cid`, when held.
    async fn get(&self, cid: &Cid) -> Option<Bytes>;
    /// Whether the block is held.
    async fn has(&self, cid: &Cid) -> bool;
    /// Whether `get` only ever returns bytes that match their CID (so the node need not hash them
    /// again before sending).
    fn verifies(&self) -> bool {
        false
    }
}

/// What went wrong in the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot reach {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("no peer sent block {cid} within {secs:.1} s (asked {peers} peers and the DHT)")]
    NotFound { cid: Cid, secs: f64, peers: usize },
    #[error("the network node has stopped")]
    Stopped,
    #[error("cannot set up the network node: {0}")]
    Setup(String),
    #[error("cannot provide {cid} in the DHT: {reason}")]
    Provide { cid: Cid, reason: String },
    #[error("cannot subscribe to topic {topic:?}: {reason}")]
    Subscribe { topic: String, reason: String },
    #[error("cannot publish on topic {topic:?}: {reason}")]
    Publish { topic: String, reason: String },
    #[error("{protocol} request to {peer} failed: {reason}")]
    Request {
        protocol: String,
        peer: String,
        reason: String,
    },
}
