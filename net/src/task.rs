//! The task that owns the swarm: it builds the transports and behaviours, then turns swarm events,
//! handle commands, bitswap messages from reader tasks and a timer into calls on the sans-IO state
//! ([`crate::bitswap::wants`]) and the actions those return. Readers, writers and servers run as tasks
//! of their own so a slow peer or disk never holds up the loop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    gossipsub, identify, mdns, multiaddr::Protocol, noise, ping, tcp, yamux, Multiaddr, PeerId,
    StreamProtocol, Swarm,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::bitswap::io::{self as bio, ServeLimits, TaskEvent};
use crate::bitswap::message::{Entry, Message, Presence, MAX_ITEMS};
use crate::bitswap::wants::{Action, Ended, Wants};
use crate::cid::Cid;
use crate::config::{Config, DhtMode};
use crate::node::{Command, Discovered, Info, PeerInfo, Stats};
use crate::pubsub::PubsubMessage;
use crate::{Blocks, NetError};

/// How many peers are asked want-have besides the one asked for the block.
const BROADCAST: usize = 4;
/// Bad messages a peer may send before it is dropped.
const BAD_MESSAGES: u32 = 3;
/// How long a dropped peer stays refused.
const BAN: Duration = Duration::from_secs(600);
/// Completed wants remembered, so a late duplicate is not taken for a lie.
const RECENT: usize = 4096;
/// Messages queued to one peer's writer before more are dropped. With the server's replies of at most
/// 1 MiB of blocks each, a peer that stops reading holds at most this many MiB of ours.
const WRITER_QUEUE: usize = 32;
/// Want lists queued to one peer's server before more are dropped (each at most 8,192 entries, about
/// 0.5 MB decoded): a peer that floods want lists costs at most a few MB besides its ledger.
const SERVER_QUEUE: usize = 8;

/// Queues `msg` for `peer` on `tx`, or, when that queue is full (or already has messages parked
/// behind it), merges it into the one message parked for `peer` in `parked`, keeping at most `cap`
/// want-list entries. Returns how many entries were cut (and says so).
fn send_or_park(
    parked: &mut HashMap<PeerId, Message>,
    peer: PeerId,
    tx: &mpsc::Sender<Message>,
    msg: Message,
    cap: usize,
    what: &str,
) -> usize {
    let Some(waiting) = parked.get_mut(&peer) else {
        if let Err(mpsc::error::TrySendError::Full(msg)) = tx.try_send(msg) {
            parked.insert(peer, msg);
        }
        return 0;
    };
    waiting.merge(msg);
    let cut = waiting.wantlist.len().saturating_sub(cap);
    if cut > 0 {
        waiting.wantlist.truncate(cap);
        tracing::warn!(%peer, cut, "{what} is over {cap} entries; the rest is dropped");
    }
    cut
}

/// Hands the message parked for `peer` to `tx` if its queue has room again.
fn unpark(parked: &mut HashMap<PeerId, Message>, peer: PeerId, tx: &mpsc::Sender<Message>) {
    if let Some(msg) = parked.remove(&peer) {
        if let Err(mpsc::error::TrySendError::Full(msg)) = tx.try_send(msg) {
            parked.insert(peer, msg);
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    stream: libp2p_stream::Behaviour,
}

type Waiter = oneshot::Sender<Result<Bytes, NetError>>;

struct Lookup {
    /// The want that started it (dial what it finds), or a command's reply.
    cid: Cid,
    reply: Option<oneshot::Sender<Vec<PeerId>>>,
    found: Vec<PeerId>,
    deadline: Instant,
}

#[derive(Default)]
struct Peer {
    addrs: Vec<Multiaddr>,
    connections: usize,
    agent: Option<String>,
    rtt: Option<Duration>,
    blocks_from: u64,
    bytes_from: u64,
    bytes_to: u64,
    bad: u32,
}

struct State {
    swarm: Swarm<Behaviour>,
    blocks: Arc<dyn Blocks>,
    stats: Arc<Stats>,
    limits: ServeLimits,
    events_tx: mpsc::Sender<TaskEvent>,
    wants: Wants<Waiter>,
    want_started: HashMap<Cid, Instant>,
    writers: HashMap<PeerId, mpsc::Sender<Message>>,
    servers: HashMap<PeerId, mpsc::Sender<Message>>,
    /// Our messages to peers whose writer queue was full, merged into one per peer, sent as soon as
    /// there is room (at most `MAX_ITEMS` entries each; a want left out is asked again after patience).
    outbox: HashMap<PeerId, Message>,
    /// Peers' want lists their server had no room for, merged into one per peer (at most the ledger
    /// cap of entries; more are refused and counted), handed over as soon as there is room.
    backlog: HashMap<PeerId, Message>,
    peers: HashMap<PeerId, Peer>,
    no_bitswap: HashSet<PeerId>,
    banned: HashMap<PeerId, Instant>,
    recent: VecDeque<Cid>,
    recent_set: HashSet<Cid>,
    lookups: HashMap<QueryId, Lookup>,
    dials: HashMap<ConnectionId, (String, oneshot::Sender<Result<PeerId, NetError>>)>,
    mdns_found: HashMap<PeerId, Vec<Multiaddr>>,
    providing: HashSet<Cid>,
    listen: Vec<Multiaddr>,
    /// Where received pubsub messages go to be judged.
    inbox: broadcast::Sender<PubsubMessage>,
}

/// Builds the swarm, opens the listeners, and spawns the loop; returns once every listener reported
/// its addresses (or the first one failed); returns a control for streams of other protocols.
pub(crate) async fn spawn(
    config: Config,
    blocks: Arc<dyn Blocks>,
    commands: mpsc::Receiver<Command>,
    stats: Arc<Stats>,
    inbox: broadcast::Sender<PubsubMessage>,
) -> Result<libp2p_stream::Control, NetError> {
    let mut swarm = build(&config)?;
    let mut control = swarm.behaviour().stream.new_control();
    let mut incoming = Vec::new();
    for p in crate::bitswap::PROTOCOLS {
        incoming.push(
            control
                .accept(StreamProtocol::new(p))
                .map_err(|e| NetError::Setup(e.to_string()))?,
        );
    }
    let mut listeners = HashMap::new();
    for addr in &config.listen {
        let id = swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        listeners.insert(id, addr.clone());
    }
    // Wait for every listener's first address, within a bound.
    let mut listen = Vec::new();
    let mut pending: HashSet<_> = listeners.keys().copied().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pending.is_empty() {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NetError::Setup("listeners did not start within 10 s".into()))?;
        match ev {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                pending.remove(&listener_id);
                listen.push(address);
            }
            SwarmEvent::ListenerClosed {
                listener_id, reason, ..
            } => {
                let addr = listeners
                    .get(&listener_id)
                    .cloned()
                    .unwrap_or_else(Multiaddr::empty);
                return Err(NetError::Listen {
                    addr,
                    reason: match reason {
                        Err(e) => e.to_string(),
                        Ok(()) => "closed".into(),
                    },
                });
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                let addr = listeners
                    .get(&listener_id)
                    .cloned()
                    .unwrap_or_else(Multiaddr::empty);
                return Err(NetError::Listen {
                    addr,
                    reason: error.to_string(),
                });
            }
            _ => {}
        }
    }
    for addr in &config.bootstrap {
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            tracing::warn!(%addr, "bootstrap address has no /p2p/<peer id>; skipped");
            continue;
        };
        swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial a bootstrap peer");
        }
    }
    if !config.bootstrap.is_empty() {
        let _ = swarm.behaviour_mut().kad.bootstrap();
    }
    let (events_tx, events_rx) = mpsc::channel(1024);
    let (inbound_tx, inbound_rx) = mpsc::channel(1024);
    // One acceptor per protocol name; each stream gets a reader task.
    for mut streams in incoming {
        let tx = inbound_tx.clone();
        tokio::spawn(async move {
            while let Some((peer, stream)) = streams.next().await {
                tokio::spawn(read_stream(peer, stream, tx.clone()));
            }
        });
    }
    let state = State {
        swarm,
        blocks,
        stats,
        limits: ServeLimits {
            ledger_cap: config.ledger_cap,
            batch_bytes: 256 << 10,
            bytes_per_sec: config.serve_bytes_per_sec,
        },
        events_tx,
        wants: Wants::new(BROADCAST, config.patience),
        want_started: HashMap::new(),
        writers: HashMap::new(),
        servers: HashMap::new(),
        outbox: HashMap::new(),
        backlog: HashMap::new(),
        peers: HashMap::new(),
        no_bitswap: HashSet::new(),
        banned: HashMap::new(),
        recent: VecDeque::new(),
        recent_set: HashSet::new(),
        lookups: HashMap::new(),
        dials: HashMap::new(),
        mdns_found: HashMap::new(),
        providing: HashSet::new(),
        listen,
        inbox,
    };
    let handle_control = control.clone();
    tokio::spawn(state.run(commands, events_rx, inbound_rx, control));
    Ok(handle_control)
}

fn build(config: &Config) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let mdns_on = config.mdns;
    let agent = config.agent.clone();
    let dht = config.dht;
    let reprovide = config.reprovide;
    let max_connections = config.max_connections;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            let mut kcfg = kad::Config::new(kad::PROTOCOL_NAME);
            kcfg.set_provider_publication_interval(Some(reprovide));
            kcfg.set_query_timeout(Duration::from_secs(30));
            let mut kad = kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), kcfg);
            kad.set_mode(match dht {
                DhtMode::Auto => None,
                DhtMode::Server => Some(kad::Mode::Server),
                DhtMode::Client => Some(kad::Mode::Client),
            });
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: libp2p::connection_limits::Behaviour::new(
                    libp2p::connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(max_connections))
                        .with_max_established_per_peer(Some(4)),
                ),
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/id/1.0.0".into(), key.public())
                        .with_agent_version(agent)
                        .with_cache_size(256),
                ),
                ping: ping::Behaviour::default(),
                kad,
                mdns: mdns.into(),
                gossipsub: crate::pubsub::behaviour()?,
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// Reads frames from one inbound stream and hands the decoded messages to the loop.
async fn read_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    tx: mpsc::Sender<(PeerId, Result<Message, String>)>,
) {
    loop {
        let item = match bio::read_frame(&mut stream).await {
            Ok(None) => return,
            Ok(Some(frame)) => Message::decode(&frame).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let failed = item.is_err();
        if tx.send((peer, item)).await.is_err() || failed {
            return;
        }
    }
}

impl State {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<TaskEvent>,
        mut inbound: mpsc::Receiver<(PeerId, Result<Message, String>)>,
        control: libp2p_stream::Control,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev, &control),
                cmd = commands.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown(done)) => {
                        self.close();
                        let _ = done.send(());
                        break;
                    }
                    Some(cmd) => self.on_command(cmd, &control),
                },
                Some((peer, msg)) = inbound.recv() => self.on_message(peer, msg, &control),
                Some(ev) = events.recv() => self.on_task_event(ev, &control),
                _ = tick.tick() => self.on_tick(&control),
            }
            self.flush(&control);
        }
        self.close();
    }

    fn close(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        for (_, (_, reply)) in self.dials.drain() {
            let _ = reply.send(Err(NetError::Stopped));
        }
    }

    /// Connected peers that speak bitswap (as far as we know), the ones wants go to.
    fn bitswap_peers(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(p, info)| info.connections > 0 && !self.no_bitswap.contains(p))
            .map(|(p, _)| *p)
            .collect()
    }

    fn apply(&mut self, actions: Vec<Action>, control: &libp2p_stream::Control) {
        let mut batches: HashMap<PeerId, Message> = HashMap::new();
        for a in actions {
            match a {
                Action::Send(peer, entry) => batches.entry(peer).or_default().wantlist.push(entry),
                Action::FindProviders(cid) => {
                    let q = self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .get_providers(RecordKey::new(&cid.multihash()));
                    self.lookups.insert(
                        q,
                        Lookup {
                            cid,
                            reply: None,
                            found: Vec::new(),
                            deadline: Instant::now() + Duration::from_secs(30),
                        },
                    );
                }
            }
        }
        for (peer, msg) in batches {
            self.send(peer, msg, control);
        }
    }

    fn send(&mut self, peer: PeerId, msg: Message, control: &libp2p_stream::Control) {
        let tx = self.writer(peer, control);
        send_or_park(
            &mut self.outbox,
            peer,
            &tx,
            msg,
            MAX_ITEMS,
            "our want list to a slow peer",
        );
    }

    /// Hands merged messages to writers and servers that have room again.
    fn flush(&mut self, control: &libp2p_stream::Control) {
        let peers: Vec<PeerId> = self.outbox.keys().copied().collect();
        for peer in peers {
            let tx = self.writer(peer, control);
            unpark(&mut self.outbox, peer, &tx);
        }
        let peers: Vec<PeerId> = self.backlog.keys().copied().collect();
        for peer in peers {
            match self.servers.get(&peer).filter(|tx| !tx.is_closed()) {
                Some(tx) => unpark(&mut self.backlog, peer, tx),
                None => {
                    self.backlog.remove(&peer);
                }
            }
        }
    }

    fn writer(&mut self, peer: PeerId, control: &libp2p_stream::Control) -> mpsc::Sender<Message> {
        if let Some(tx) = self.writers.get(&peer) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        tokio::spawn(bio::writer(peer, control.clone(), rx, self.events_tx.clone()));
        self.writers.insert(peer, tx.clone());
        tx
    }

    fn cancel(&mut self, cid: Cid, peers: Vec<PeerId>, control: &libp2p_stream::Control) {
        for p in peers {
            if self.writers.contains_key(&p) {
                self.send(
                    p,
                    Message {
                        wantlist: vec![Entry::cancel(cid)],
                        ..Message::default()
                    },
                    control,
                );
            }
        }
    }

    fn remember(&mut self, cid: Cid) {
        if self.recent_set.insert(cid) {
            self.recent.push_back(cid);
            if self.recent.len() > RECENT {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
    }

    fn drop_peer(&mut self, peer: PeerId, why: &str, control: &libp2p_stream::Control) {
        tracing::warn!(%peer, reason = why, "dropping peer for {} s", BAN.as_secs());
        Stats::add(&self.stats.peers_banned, 1);
        self.banned.insert(peer, Instant::now() + BAN);
        self.wants.penalize(peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        let connected = self.bitswap_peers();
        let connected: Vec<PeerId> = connected.into_iter().filter(|p| *p != peer).collect();
        let acts = self.wants.gone(peer, Instant::now(), &connected);
        self.apply(acts, control);
    }

    fn on_message(&mut self, peer: PeerId, msg: Result<Message, String>, control: &libp2p_stream::Control) {
        let msg = match msg {
            Ok(m) => m,
            Err(reason) => {
                Stats::add(&self.stats.bad_messages, 1);
                tracing::warn!(%peer, %reason, "bad bitswap message");
                let info = self.peers.entry(peer).or_default();
                info.bad += 1;
                if info.bad >= BAD_MESSAGES {
                    self.drop_peer(peer, "bad bitswap messages", control);
                }
                return;
            }
        };
        if self.banned.contains_key(&peer) {
            return;
        }
        // What the peer wants goes to its server.
        if !msg.wantlist.is_empty() || msg.full {
            let wl = Message {
                wantlist: msg.wantlist.clone(),
                full: msg.full,
                ..Message::default()
            };
            self.serve(peer, wl, control);
        }
        let now = Instant::now();
        let connected = self.bitswap_peers();
        let mut actions = Vec::new();
        for (cid, data) in msg.blocks {
            match self.wants.block(peer, &cid) {
                Some(Ended { waiters, cancel, .. }) => {
                    Stats::add(&self.stats.blocks_received, 1);
                    Stats::add(&self.stats.bytes_received, data.len() as u64);
                    let info = self.peers.entry(peer).or_default();
                    info.blocks_from += 1;
                    info.bytes_from += data.len() as u64;
                    if let Some(t) = self.want_started.remove(&cid) {
                        tracing::trace!(%cid, %peer, ms = t.elapsed().as_millis() as u64, "block received");
                    }
                    for w in waiters {
                        let _ = w.send(Ok(data.clone()));
                    }
                    self.remember(cid);
                    self.cancel(cid, cancel, control);
                }
                None if self.recent_set.contains(&cid) => {}
                None => {
                    Stats::add(&self.stats.unwanted_blocks, 1);
                    tracing::warn!(%peer, %cid, bytes = data.len(), "block nobody asked for (or wrong bytes for a wanted one): not kept");
                    self.drop_peer(peer, "sent a block that matches no want", control);
                    return;
                }
            }
        }
        for (cid, p) in msg.presences {
            actions.extend(self.wants.presence(peer, cid, p, now, &connected));
            if p == Presence::DontHave {
                tracing::trace!(%peer, %cid, "dont-have");
            }
        }
        self.apply(actions, control);
    }

    fn serve(&mut self, peer: PeerId, wl: Message, control: &libp2p_stream::Control) {
        let tx = match self.servers.get(&peer) {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let out = self.writer(peer, control);
                let (tx, rx) = mpsc::channel(SERVER_QUEUE);
                tokio::spawn(bio::server(
                    peer,
                    self.blocks.clone(),
                    rx,
                    out,
                    self.events_tx.clone(),
                    self.limits,
                ));
                self.servers.insert(peer, tx.clone());
                tx
            }
        };
        let cut = send_or_park(
            &mut self.backlog,
            peer,
            &tx,
            wl,
            self.limits.ledger_cap,
            "a peer's want lists waiting to be served",
        );
        Stats::add(&self.stats.refused_wants, cut as u64);
    }

    fn on_task_event(&mut self, ev: TaskEvent, control: &libp2p_stream::Control) {
        match ev {
            TaskEvent::WriterFailed(peer, reason) => {
                tracing::debug!(%peer, %reason, "bitswap stream failed");
                self.writers.remove(&peer);
                self.outbox.remove(&peer);
                if reason.contains("does not support") {
                    self.no_bitswap.insert(peer);
                }
                let connected: Vec<PeerId> =
                    self.bitswap_peers().into_iter().filter(|p| *p != peer).collect();
                let acts = self.wants.gone(peer, Instant::now(), &connected);
                self.apply(acts, control);
            }
            TaskEvent::Served { peer, bytes } => {
                Stats::add(&self.stats.bytes_sent, bytes as u64);
                self.peers.entry(peer).or_default().bytes_to += bytes as u64;
            }
        }
    }

    fn on_tick(&mut self, control: &libp2p_stream::Control) {
        let now = Instant::now();
        let connected = self.bitswap_peers();
        let (ended, acts) = self.wants.tick(now, &connected);
        for e in ended {
            let secs = self
                .want_started
                .remove(&e.cid)
                .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
            let peers = e.cancel.len();
            tracing::info!(cid = %e.cid, secs, peers, "no peer sent the block in time");
            for w in e.waiters {
                let _ = w.send(Err(NetError::NotFound {
                    cid: e.cid,
                    secs,
                    peers,
                }));
            }
            self.cancel(e.cid, e.cancel, control);
        }
        self.apply(acts, control);
        // Lookups for commands end at their deadline.
        let late: Vec<QueryId> = self
            .lookups
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(q, _)| *q)
            .collect();
        for q in late {
            if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&q) {
                query.finish();
            }
            self.finish_lookup(q);
        }
        self.banned.retain(|_, until| *until > now);
    }

    fn finish_lookup(&mut self, q: QueryId) {
        if let Some(l) = self.lookups.remove(&q) {
            if let Some(reply) = l.reply {
                let _ = reply.send(l.found);
            }
        }
    }

    fn on_command(&mut self, cmd: Command, control: &libp2p_stream::Control) {
        match cmd {
            Command::Want { cid, timeout, reply } => {
                let now = Instant::now();
                self.want_started.entry(cid).or_insert(now);
                let connected = self.bitswap_peers();
                let acts = self.wants.want(cid, reply, now + timeout, now, &connected);
                self.apply(acts, control);
            }
            Command::Provide { cid, reply } => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(RecordKey::new(&cid.multihash()))
                    .map(|_| {
                        self.providing.insert(cid);
                    })
                    .map_err(|e| NetError::Provide {
                        cid,
                        reason: e.to_string(),
                    });
                let _ = reply.send(r);
            }
            Command::Providers { cid, timeout, reply } => {
                let q = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(RecordKey::new(&cid.multihash()));
                self.lookups.insert(
                    q,
                    Lookup {
                        cid,
                        reply: Some(reply),
                        found: Vec::new(),
                        deadline: Instant::now() + timeout,
                    },
                );
            }
            Command::Connect { addr, reply } => {
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr.to_string(), reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Disconnect { peer, reply } => {
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
            }
            Command::Peers(reply) => {
                let mut out: Vec<PeerInfo> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.connections > 0)
                    .map(|(id, p)| PeerInfo {
                        peer: *id,
                        addrs: p.addrs.clone(),
                        agent: p.agent.clone(),
                        rtt: p.rtt,
                        blocks_from: p.blocks_from,
                        bytes_from: p.bytes_from,
                        bytes_to: p.bytes_to,
                    })
                    .collect();
                out.sort_by_key(|p| p.peer.to_string());
                let _ = reply.send(out);
            }
            Command::Discovered(reply) => {
                let mut out: Vec<Discovered> = self
                    .mdns_found
                    .iter()
                    .map(|(p, a)| Discovered {
                        peer: *p,
                        addrs: a.clone(),
                        how: "mdns",
                    })
                    .collect();
                for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
                    for e in bucket.iter() {
                        let peer = *e.node.key.preimage();
                        if !out.iter().any(|d| d.peer == peer) {
                            out.push(Discovered {
                                peer,
                                addrs: e.node.value.iter().cloned().collect(),
                                how: "dht",
                            });
                        }
                    }
                }
                out.sort_by_key(|d| d.peer.to_string());
                let _ = reply.send(out);
            }
            Command::Info(reply) => {
                let me = *self.swarm.local_peer_id();
                let listen = self
                    .listen
                    .iter()
                    .map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a))
                    .collect();
                let _ = reply.send(Info {
                    peer: me,
                    listen,
                    connected: self.swarm.connected_peers().count(),
                    wants: self.wants.len(),
                    dht_server: self.swarm.behaviour().kad.mode() == kad::Mode::Server,
                });
            }
            Command::Subscribe { topic, reply } => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&gossipsub::IdentTopic::new(topic.clone()))
                    .map_err(|e| NetError::Subscribe {
                        topic,
                        reason: e.to_string(),
                    });
                let _ = reply.send(r);
            }
            Command::Unsubscribe { topic, reply } => {
                let left = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&gossipsub::IdentTopic::new(topic));
                let _ = reply.send(left);
            }
            Command::Publish { topic, data, reply } => {
                let r = if data.len() > crate::pubsub::MAX_MESSAGE {
                    Err(format!(
                        "the message is {} bytes, more than the {} allowed",
                        data.len(),
                        crate::pubsub::MAX_MESSAGE
                    ))
                } else {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(gossipsub::IdentTopic::new(topic.clone()), data)
                        .map(|_| ())
                        .map_err(|e| match e {
                            gossipsub::PublishError::NoPeersSubscribedToTopic => {
                                "no connected peer has joined it yet".to_string()
                            }
                            e => e.to_string(),
                        })
                };
                let _ = reply.send(r.map_err(|reason| NetError::Publish { topic, reason }));
            }
            Command::Judge { id, from, verdict } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&gossipsub::MessageId(id), &from, verdict.into());
            }
            Command::Shutdown(done) => {
                let _ = done.send(());
            }
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>, control: &libp2p_stream::Control) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } if !self.listen.contains(&address) => {
                self.listen.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => self.listen.retain(|a| *a != address),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if self.banned.contains_key(&peer_id) {
                    tracing::debug!(peer = %peer_id, "refusing a dropped peer");
                    let _ = self.swarm.close_connection(connection_id);
                    if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                        let _ = reply.send(Err(NetError::Dial {
                            addr,
                            reason: format!("peer {peer_id} was dropped for misbehaving; refused for now"),
                        }));
                    }
                    return;
                }
                let p = self.peers.entry(peer_id).or_default();
                p.connections += 1;
                let addr = endpoint.get_remote_address().clone();
                if !p.addrs.contains(&addr) {
                    p.addrs.push(addr);
                }
                tracing::debug!(peer = %peer_id, "connected");
                self.count_connected();
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                let connected = self.bitswap_peers();
                let acts = self.wants.connected(Instant::now(), &connected);
                self.apply(acts, control);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.connections = num_established as usize;
                    let addr = endpoint.get_remote_address();
                    p.addrs.retain(|a| a != addr);
                }
                if num_established == 0 {
                    tracing::debug!(peer = %peer_id, "disconnected");
                    self.count_connected();
                    self.writers.remove(&peer_id);
                    self.servers.remove(&peer_id);
                    self.outbox.remove(&peer_id);
                    self.backlog.remove(&peer_id);
                    let connected = self.bitswap_peers();
                    let acts = self.wants.gone(peer_id, Instant::now(), &connected);
                    self.apply(acts, control);
                    // Keep the counters of peers we may see again, not their connections.
                    if self
                        .peers
                        .get(&peer_id)
                        .is_some_and(|p| p.blocks_from == 0 && p.bytes_to == 0)
                    {
                        self.peers.remove(&peer_id);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id, error, ..
            } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr,
                        reason: error.to_string(),
                    }));
                } else {
                    tracing::debug!(%error, "outgoing connection failed");
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "incoming connection failed");
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            _ => {}
        }
    }

    /// Updates the connected-peers gauge.
    fn count_connected(&self) {
        let n = self.swarm.connected_peers().count() as u64;
        self.stats
            .connected
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let speaks_kad = info.protocols.contains(&kad::PROTOCOL_NAME);
                if speaks_kad {
                    for addr in &info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr.clone());
                    }
                }
                let speaks_bitswap = info
                    .protocols
                    .iter()
                    .any(|p| crate::bitswap::PROTOCOLS.contains(&p.as_ref()));
                if !speaks_bitswap {
                    self.no_bitswap.insert(peer_id);
                } else {
                    self.no_bitswap.remove(&peer_id);
                }
                self.peers.entry(peer_id).or_default().agent = Some(info.agent_version);
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.rtt = Some(rtt);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                for (peer, addr) in list {
                    tracing::info!(%peer, %addr, "found a peer by mDNS");
                    let known = self.mdns_found.entry(peer).or_default();
                    if !known.contains(&addr) {
                        known.push(addr.clone());
                    }
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                    let _ = self.swarm.dial(
                        DialOpts::peer_id(peer)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build(),
                    );
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(list)) => {
                for (peer, addr) in list {
                    if let Some(a) = self.mdns_found.get_mut(&peer) {
                        a.retain(|x| *x != addr);
                        if a.is_empty() {
                            self.mdns_found.remove(&peer);
                        }
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { id, result, step, .. }) => match result
            {
                QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                    let me = *self.swarm.local_peer_id();
                    let Some(l) = self.lookups.get_mut(&id) else {
                        return;
                    };
                    let new: Vec<PeerId> = providers
                        .into_iter()
                        .filter(|p| *p != me && !l.found.contains(p))
                        .collect();
                    l.found.extend(new.iter().copied());
                    let for_want = l.reply.is_none();
                    tracing::debug!(cid = %l.cid, providers = new.len(), "providers found");
                    if for_want {
                        for p in new {
                            // Dialed while the query runs, so its addresses are known to kad.
                            let _ = self.swarm.dial(
                                DialOpts::peer_id(p)
                                    .condition(PeerCondition::DisconnectedAndNotDialing)
                                    .build(),
                            );
                        }
                    }
                    if step.last {
                        self.finish_lookup(id);
                    }
                }
                QueryResult::GetProviders(_) if step.last => self.finish_lookup(id),
                QueryResult::StartProviding(Err(e)) => {
                    tracing::debug!(error = %e, "providing did not reach enough peers");
                }
                QueryResult::Bootstrap(Err(e)) => tracing::debug!(error = %e, "DHT bootstrap failed"),
                _ => {}
            },
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let msg = PubsubMessage {
                    id: message_id.0.clone(),
                    from: propagation_source,
                    topic: message.topic.into_string(),
                    data: Bytes::from(message.data),
                };
                // Nobody to judge it: it goes no further.
                if self.inbox.send(msg).is_err() {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            crate::pubsub::Verdict::Ignore.into(),
                        );
                }
            }
            _ => {}
        }
    }
}
