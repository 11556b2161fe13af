//! Starting a node and talking to it: [`start`] builds the swarm, opens the listeners and spawns the
//! task that owns it; the [`Handle`] sends that task commands over a channel and awaits their replies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::cid::Cid;
use crate::config::Config;
use crate::pubsub::{PubsubMessage, Verdict};
use crate::{Blocks, NetError};

/// How long [`Handle::connect`] waits for a connection.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Counters of a node's traffic and refusals.
#[derive(Debug, Default)]
pub struct Stats {
    pub blocks_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub blocks_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Messages that were oversized or malformed.
    pub bad_messages: AtomicU64,
    /// Blocks nobody wanted (or that did not match what was asked).
    pub unwanted_blocks: AtomicU64,
    /// Wants dropped because a peer's want list was full.
    pub refused_wants: AtomicU64,
    /// Peers dropped for sending wrong blocks or bad messages.
    pub peers_banned: AtomicU64,
    /// Peers connected now.
    pub connected: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub blocks_received: u64,
    pub bytes_received: u64,
    pub blocks_sent: u64,
    pub bytes_sent: u64,
    pub bad_messages: u64,
    pub unwanted_blocks: u64,
    pub refused_wants: u64,
    pub peers_banned: u64,
    pub connected: u64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            blocks_received: g(&self.blocks_received),
            bytes_received: g(&self.bytes_received),
            blocks_sent: g(&self.blocks_sent),
            bytes_sent: g(&self.bytes_sent),
            bad_messages: g(&self.bad_messages),
            unwanted_blocks: g(&self.unwanted_blocks),
            refused_wants: g(&self.refused_wants),
            peers_banned: g(&self.peers_banned),
            connected: g(&self.connected),
        }
    }
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer: PeerId,
    /// The address of each connection to it.
    pub addrs: Vec<Multiaddr>,
    /// What identify said it runs, once it said.
    pub agent: Option<String>,
    /// Round trip of the last ping.
    pub rtt: Option<Duration>,
    pub blocks_from: u64,
    pub bytes_from: u64,
    pub bytes_to: u64,
}

/// A peer known but not necessarily connected, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    /// `mdns` or `dht`.
    pub how: &'static str,
}

/// What the node says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub peer: PeerId,
    /// Where it listens, each with `/p2p/<peer id>`.
    pub listen: Vec<Multiaddr>,
    pub connected: usize,
    pub wants: usize,
    /// Whether it answers DHT queries now.
    pub dht_server: bool,
}

pub(crate) enum Command {
    Want {
        cid: Cid,
        timeout: Duration,
        reply: oneshot::Sender<Result<Bytes, NetError>>,
    },
    Provide {
        cid: Cid,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Providers {
        cid: Cid,
        timeout: Duration,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Connect {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Discovered(oneshot::Sender<Vec<Discovered>>),
    Info(oneshot::Sender<Info>),
    Subscribe {
        topic: String,
        reply: oneshot::Sender<Result<bool, NetError>>,
    },
    Unsubscribe {
        topic: String,
        reply: oneshot::Sender<bool>,
    },
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Judge {
        id: Vec<u8>,
        from: PeerId,
        verdict: Verdict,
    },
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable way to reach a running node. The node stops when [`Handle::shutdown`] is called
/// or every handle is dropped.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    peer: PeerId,
    stats: Arc<Stats>,
    inbox: broadcast::Sender<PubsubMessage>,
    control: libp2p_stream::Control,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("peer", &self.peer).finish()
    }
}

/// Starts a node serving `blocks`: listens where `config` says (failing if a listener cannot open),
/// dials the bootstrap peers, and returns once the listen addresses are known.
pub async fn start(config: Config, blocks: Arc<dyn Blocks>) -> Result<Handle, NetError> {
    let peer = config.keypair.public().to_peer_id();
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(1024);
    let (inbox, _) = broadcast::channel(crate::pubsub::INBOX);
    let control = crate::task::spawn(config, blocks, rx, stats.clone(), inbox.clone()).await?;
    Ok(Handle {
        tx,
        peer,
        stats,
        inbox,
        control,
    })
}

impl Handle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// Traffic and refusal counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Joins `topic` (an opaque string: callers hash their names); `false` when already joined.
    /// Messages arrive through [`Handle::messages`].
    pub async fn subscribe(&self, topic: &str) -> Result<bool, NetError> {
        let topic = topic.to_string();
        self.ask(|reply| Command::Subscribe { topic, reply }).await?
    }

    /// Leaves `topic`; `false` when it was not joined.
    pub async fn unsubscribe(&self, topic: &str) -> Result<bool, NetError> {
        let topic = topic.to_string();
        self.ask(|reply| Command::Unsubscribe { topic, reply }).await
    }

    /// Publishes `data` (at most [`crate::pubsub::MAX_MESSAGE`] bytes) on `topic` to the peers that
    /// joined it; fails when none has, so the caller can retry once peers are connected.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), NetError> {
        let topic = topic.to_string();
        self.ask(|reply| Command::Publish { topic, data, reply }).await?
    }

    /// Messages received on joined topics, from now on. Each must be judged ([`Handle::judge`]) by one
    /// receiver before it is forwarded; with no receiver, messages are dropped unforwarded.
    pub fn messages(&self) -> broadcast::Receiver<PubsubMessage> {
        self.inbox.subscribe()
    }

    /// Gives the verdict on a received message: forwarded to other peers only when accepted.
    pub async fn judge(&self, msg: &PubsubMessage, verdict: Verdict) -> Result<(), NetError> {
        let cmd = Command::Judge {
            id: msg.id.clone(),
            from: msg.from,
            verdict,
        };
        self.tx.send(cmd).await.map_err(|_| NetError::Stopped)
    }

    /// Asks connected `peer` on `protocol` (a request of its own stream, see [`crate::request`]):
    /// sends `data`, returns the answer, at most `max_response` bytes, within `timeout`.
    pub async fn request(
        &self,
        peer: PeerId,
        protocol: &'static str,
        data: Vec<u8>,
        max_response: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        crate::request::ask(self.control.clone(), peer, protocol, data, max_response, timeout).await
    }

    /// Serves requests on `protocol` (at most `max_request` bytes each, answers at most
    /// `max_response`): each arrives on the returned channel to be answered. One server per protocol.
    pub fn serve_requests(
        &self,
        protocol: &'static str,
        max_request: usize,
        max_response: usize,
    ) -> Result<mpsc::Receiver<crate::Inbound>, NetError> {
        crate::request::serve(self.control.clone(), protocol, max_request, max_response)
    }

    /// The block `cid` from peers, verified, within `timeout`.
    pub async fn want(&self, cid: Cid, timeout: Duration) -> Result<Bytes, NetError> {
        self.ask(|reply| Command::Want { cid, timeout, reply }).await?
    }

    /// Announces in the DHT that this node provides `cid` (re-published on the configured interval).
    pub async fn provide(&self, cid: Cid) -> Result<(), NetError> {
        self.ask(|reply| Command::Provide { cid, reply }).await?
    }

    /// Peers the DHT names as providers of `cid`, looked up for at most `timeout`.
    pub async fn providers(&self, cid: Cid, timeout: Duration) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::Providers { cid, timeout, reply }).await
    }

    /// Connects to `addr` (with or without `/p2p/<peer id>`), returning the peer's id.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        let shown = addr.to_string();
        match tokio::time::timeout(DIAL_TIMEOUT, self.ask(|reply| Command::Connect { addr, reply })).await {
            Ok(r) => r?,
            Err(_) => Err(NetError::Dial {
                addr: shown,
                reason: format!("no answer within {} s", DIAL_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Closes every connection to `peer`; false when it was not connected.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NetError> {
        self.ask(|reply| Command::Disconnect { peer, reply }).await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(Command::Peers).await
    }

    /// Peers found by mDNS and in the DHT's routing table.
    pub async fn discovered(&self) -> Result<Vec<Discovered>, NetError> {
        self.ask(Command::Discovered).await
    }

    /// Peer id, listen addresses and counts.
    pub async fn info(&self) -> Result<Info, NetError> {
        self.ask(Command::Info).await
    }

    /// Stops the node (closing its connections) and waits for it to be gone.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}
