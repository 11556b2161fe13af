//! The repository on the network: starts its libp2p node ([`noisefs_net`]) with the repository's key
//! and `[network]` config, serves the local store, adds peers as a remote read of the store stack
//! (behind a breaker of its own), and provides the roots of pinned links in the DHT. The one module of
//! the core that knows libp2p types; the rest sees [`Network`] and plain strings.

pub mod config;
mod source;

pub use config::{NetworkConfig, KEY_FILE, PUBLIC_BOOTSTRAP};
/// A pub/sub message received, as [`Network::inbox`] gives it.
pub use noisefs_net::PubsubMessage as Received;
/// A one-shot request received, as [`Network::serve`] gives it.
pub use noisefs_net::{Inbound as Request, Verdict};
pub use source::{cid_of, id_of, LocalBlocks, PeerSource};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::block::BlockId;
use crate::repo::Repo;
use crate::store::Resilience;
use crate::{Error, Result};

/// A repository's node, started on first use.
pub struct Network {
    repo: Arc<Repo>,
    pub(crate) config: NetworkConfig,
    handle: tokio::sync::OnceCell<noisefs_net::Handle>,
    provided: Mutex<HashSet<BlockId>>,
}

/// A connected peer, as `peers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub peer: String,
    pub addrs: Vec<String>,
    pub agent: Option<String>,
    pub rtt_ms: Option<f64>,
    pub blocks_from: u64,
    pub bytes_from: u64,
    pub bytes_to: u64,
}

/// What `id` and `status` show of the node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub peer: String,
    /// Full multiaddrs, each ending in `/p2p/<peer id>`.
    pub addrs: Vec<String>,
    pub connected: usize,
    pub dht_server: bool,
    pub blocks_received: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub bad_messages: u64,
    pub peers_dropped: u64,
}

/// A peer found by mDNS or the DHT.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub peer: String,
    pub addrs: Vec<String>,
    pub how: &'static str,
}

fn net_err(e: noisefs_net::NetError) -> Error {
    Error::Unavailable {
        store: "network".into(),
        reason: e.to_string(),
    }
}

impl Network {
    /// The network of `repo` when `[network] enabled`, added to its store stack as the remote
    /// `peers`; `None` when the network is off. The node starts on the first call that needs it.
    pub fn attach(repo: &Arc<Repo>) -> Option<Arc<Network>> {
        let config = repo.config().network.clone();
        if !config.enabled {
            return None;
        }
        let net = Arc::new(Network {
            repo: repo.clone(),
            config,
            handle: tokio::sync::OnceCell::new(),
            provided: Mutex::new(HashSet::new()),
        });
        let fetch = net.config.fetch_timeout_ms;
        // One want waits for the whole fetch timeout; a miss is not retried, and three in a row open
        // the breaker so reads fail fast while no peer answers.
        let resilience = Resilience {
            timeout_ms: fetch + 2_000,
            retries: 0,
            breaker_failures: 3,
            breaker_open_ms: 10_000,
            ..repo.config().store.clone()
        };
        repo.stack()
            .add_remote_with("peers", Arc::new(PeerSource { network: net.clone() }), resilience);
        Some(net)
    }

    /// Whether the node runs now.
    pub fn running(&self) -> bool {
        self.handle.initialized()
    }

    /// Peers connected now and block bytes received from peers since the node started, when it runs.
    pub fn traffic(&self) -> Option<(u64, u64)> {
        self.handle.get().map(|h| {
            let s = h.stats();
            (s.connected, s.bytes_received)
        })
    }

    /// The running node, started now if it is not yet.
    pub async fn handle(&self) -> Result<&noisefs_net::Handle> {
        self.handle
            .get_or_try_init(|| async {
                let root = self.repo.root();
                let key = config::keypair(root)?;
                let cfg = self.config.node_config(root, key)?;
                let blocks = Arc::new(LocalBlocks(self.repo.local().clone()));
                let h = noisefs_net::start(cfg, blocks).await.map_err(net_err)?;
                tracing::info!(peer = %h.peer_id(), "network node started");
                Ok::<_, Error>(h)
            })
            .await
    }

    /// Peer id, full listen addresses and counters.
    pub async fn info(&self) -> Result<NodeInfo> {
        let h = self.handle().await?;
        let i = h.info().await.map_err(net_err)?;
        let s = h.stats();
        Ok(NodeInfo {
            peer: i.peer.to_string(),
            addrs: i.listen.iter().map(|a| a.to_string()).collect(),
            connected: i.connected,
            dht_server: i.dht_server,
            blocks_received: s.blocks_received,
            bytes_received: s.bytes_received,
            bytes_sent: s.bytes_sent,
            bad_messages: s.bad_messages,
            peers_dropped: s.peers_banned,
        })
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<Peer>> {
        let list = self.handle().await?.peers().await.map_err(net_err)?;
        Ok(list
            .into_iter()
            .map(|p| Peer {
                peer: p.peer.to_string(),
                addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
                agent: p.agent,
                rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1000.0),
                blocks_from: p.blocks_from,
                bytes_from: p.bytes_from,
                bytes_to: p.bytes_to,
            })
            .collect())
    }

    /// Connects to `addr`; returns the peer id.
    pub async fn connect(&self, addr: &str) -> Result<String> {
        let parsed = addr.parse().map_err(|e| Error::Unsupported {
            what: format!("address {addr:?}"),
            reason: format!("not a multiaddr ({e}); e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…"),
        })?;
        let peer = self.handle().await?.connect(parsed).await.map_err(net_err)?;
        Ok(peer.to_string())
    }

    /// Disconnects a peer given by id or by a multiaddr ending in `/p2p/<id>`; false when it was
    /// not connected.
    pub async fn disconnect(&self, who: &str) -> Result<bool> {
        let id = who.rsplit("/p2p/").next().unwrap_or(who);
        let peer: noisefs_net::PeerId = id.parse().map_err(|_| Error::Unsupported {
            what: format!("peer {who:?}"),
            reason: "give a peer id (12D3Koo…) or a multiaddr ending in /p2p/<peer id>".into(),
        })?;
        self.handle().await?.disconnect(peer).await.map_err(net_err)
    }

    /// Peers found by mDNS and in the DHT's routing table.
    pub async fn discovered(&self) -> Result<Vec<Found>> {
        let list = self.handle().await?.discovered().await.map_err(net_err)?;
        Ok(list
            .into_iter()
            .map(|d| Found {
                peer: d.peer.to_string(),
                addrs: d.addrs.iter().map(|a| a.to_string()).collect(),
                how: d.how,
            })
            .collect())
    }

    /// Peers the DHT names as providers of `root`.
    pub async fn providers(&self, root: &BlockId, timeout: Duration) -> Result<Vec<String>> {
        let list = self
            .handle()
            .await?
            .providers(cid_of(root), timeout)
            .await
            .map_err(net_err)?;
        Ok(list.into_iter().map(|p| p.to_string()).collect())
    }

    /// Provides every pinned root not provided yet (pins are what put, share and receive keep);
    /// returns how many were new.
    pub async fn provide_pins(&self) -> Result<usize> {
        let pins = crate::maint::pins(&self.repo)?;
        let h = self.handle().await?;
        let mut new = 0;
        for p in pins {
            let Ok(root) = p.root.parse::<BlockId>() else {
                continue;
            };
            if self
                .provided
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&root)
            {
                continue;
            }
            match h.provide(cid_of(&root)).await {
                Ok(()) => {
                    self.provided
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(root);
                    new += 1;
                }
                Err(e) => tracing::warn!(root = %root, error = %e, "cannot provide a pinned root"),
            }
        }
        Ok(new)
    }

    /// Joins pub/sub `topic`; false when joined already.
    pub async fn join(&self, topic: &str) -> Result<bool> {
        self.handle().await?.subscribe(topic).await.map_err(net_err)
    }

    /// Leaves pub/sub `topic`; false when it was not joined.
    pub async fn leave(&self, topic: &str) -> Result<bool> {
        self.handle().await?.unsubscribe(topic).await.map_err(net_err)
    }

    /// Publishes `data` on `topic`; fails while no connected peer has joined it.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<()> {
        self.handle().await?.publish(topic, data).await.map_err(net_err)
    }

    /// Messages received on joined topics from now on, each to be judged with [`Network::judge`].
    pub async fn inbox(&self) -> Result<tokio::sync::broadcast::Receiver<Received>> {
        Ok(self.handle().await?.messages())
    }

    /// Gives the verdict on a received message (forwarded only when accepted).
    pub async fn judge(&self, msg: &Received, verdict: Verdict) -> Result<()> {
        self.handle().await?.judge(msg, verdict).await.map_err(net_err)
    }

    /// Serves one-shot requests on `protocol`.
    pub async fn serve(
        &self,
        protocol: &'static str,
        max_request: usize,
        max_response: usize,
    ) -> Result<tokio::sync::mpsc::Receiver<Request>> {
        self.handle()
            .await?
            .serve_requests(protocol, max_request, max_response)
            .map_err(net_err)
    }

    /// Asks connected peer `peer` (a peer id as text) on `protocol`.
    pub async fn ask(
        &self,
        peer: &str,
        protocol: &'static str,
        data: Vec<u8>,
        max_response: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let id: noisefs_net::PeerId = peer.parse().map_err(|_| Error::Unsupported {
            what: format!("peer {peer:?}"),
            reason: "not a peer id".into(),
        })?;
        self.handle()
            .await?
            .request(id, protocol, data, max_response, timeout)
            .await
            .map_err(net_err)
    }

    /// Stops the node, when it runs.
    pub async fn shutdown(&self) {
        if let Some(h) = self.handle.get() {
            h.shutdown().await;
        }
    }
}
