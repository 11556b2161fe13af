//! Our side of bitswap: the blocks we want, whom we asked, and what to do on each answer. A want asks
//! one peer for the block (the peer that served us most, so one transfer sticks to the peers that have
//! its blocks) and a few others only whether they have it; a dont-have or a silent peer moves the want
//! to a peer that said have, else to another connected peer; when no connected peer has it, the want
//! asks for a provider lookup and goes to the providers as they connect. Blocks are matched by their
//! CID (computed from their bytes by the decoder), so a block nobody wanted is never used. No I/O: the
//! node feeds it events and carries out the [`Action`]s it returns.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::message::{Entry, Presence, WantType};
use crate::cid::Cid;

/// What the node must do for the wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this want-list entry to the peer.
    Send(PeerId, Entry),
    /// Look up providers of the CID in the DHT (and connect to them).
    FindProviders(Cid),
}

/// A want that ended: who waited for it and which peers to send a cancel.
#[derive(Debug)]
pub struct Ended<W> {
    pub cid: Cid,
    pub waiters: Vec<W>,
    pub cancel: Vec<PeerId>,
}

struct Want<W> {
    waiters: Vec<W>,
    deadline: Instant,
    /// The peer asked for the block, and when.
    block_from: Option<(PeerId, Instant)>,
    /// Every peer asked, for cancels.
    asked: HashSet<PeerId>,
    /// Asked whether they have it, no answer yet.
    pending_have: HashSet<PeerId>,
    /// Said they have it; not asked for the block yet.
    haves: Vec<PeerId>,
    /// Said they do not have it (or failed to send it).
    dont_have: HashSet<PeerId>,
    looked_up: bool,
}

/// Every block we want.
pub struct Wants<W> {
    wants: HashMap<Cid, Want<W>>,
    /// Blocks each peer served recently: the best scored peer is asked first.
    scores: HashMap<PeerId, i64>,
    /// How many peers are asked want-have besides the one asked for the block.
    broadcast: usize,
    /// How long a peer asked for a block may stay silent before the want moves on.
    patience: Duration,
}

impl<W> Wants<W> {
    /// Wants asking `broadcast` peers want-have besides the block's peer, moving on from a silent peer
    /// after `patience`.
    pub fn new(broadcast: usize, patience: Duration) -> Self {
        Wants {
            wants: HashMap::new(),
            scores: HashMap::new(),
            broadcast,
            patience,
        }
    }

    /// Wants standing.
    pub fn len(&self) -> usize {
        self.wants.len()
    }

    /// Whether no want stands.
    pub fn is_empty(&self) -> bool {
        self.wants.is_empty()
    }

    /// Whether `cid` is wanted.
    pub fn is_wanted(&self, cid: &Cid) -> bool {
        self.wants.contains_key(cid)
    }

    /// Wants `cid` for `waiter` until `deadline`; `connected` are the peers to ask.
    pub fn want(
        &mut self,
        cid: Cid,
        waiter: W,
        deadline: Instant,
        now: Instant,
        connected: &[PeerId],
    ) -> Vec<Action> {
        let w = self.wants.entry(cid).or_insert_with(|| Want {
            waiters: Vec::new(),
            deadline,
            block_from: None,
            asked: HashSet::new(),
            pending_have: HashSet::new(),
            haves: Vec::new(),
            dont_have: HashSet::new(),
            looked_up: false,
        });
        w.waiters.push(waiter);
        w.deadline = w.deadline.max(deadline);
        let mut out = Vec::new();
        self.route(cid, now, connected, &mut out);
        out
    }

    /// Asks the next peers for `cid` as its state allows.
    fn route(&mut self, cid: Cid, now: Instant, connected: &[PeerId], out: &mut Vec<Action>) {
        let scores = &self.scores;
        let Some(w) = self.wants.get_mut(&cid) else { return };
        if w.block_from.is_none() {
            let next = w.haves.pop().or_else(|| {
                connected
                    .iter()
                    .filter(|p| !w.asked.contains(p) && !w.dont_have.contains(p))
                    .max_by_key(|p| scores.get(p).copied().unwrap_or(0))
                    .copied()
            });
            if let Some(peer) = next {
                w.block_from = Some((peer, now));
                w.asked.insert(peer);
                w.pending_have.remove(&peer);
                out.push(Action::Send(peer, Entry::want(cid, WantType::Block)));
            }
        }
        let block_peer = w.block_from.map(|(p, _)| p);
        let asking = w.pending_have.len();
        let extra: Vec<PeerId> = connected
            .iter()
            .filter(|p| Some(**p) != block_peer && !w.asked.contains(p) && !w.dont_have.contains(p))
            .take(self.broadcast.saturating_sub(asking))
            .copied()
            .collect();
        for peer in &extra {
            w.asked.insert(*peer);
            w.pending_have.insert(*peer);
            out.push(Action::Send(*peer, Entry::want(cid, WantType::Have)));
        }
        if w.block_from.is_none() && w.pending_have.is_empty() && !w.looked_up {
            w.looked_up = true;
            out.push(Action::FindProviders(cid));
        }
    }

    /// A peer's have or dont-have for `cid`.
    pub fn presence(
        &mut self,
        peer: PeerId,
        cid: Cid,
        p: Presence,
        now: Instant,
        connected: &[PeerId],
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(w) = self.wants.get_mut(&cid) else {
            return out;
        };
        w.pending_have.remove(&peer);
        match p {
            Presence::Have => {
                if w.block_from.is_some_and(|(b, _)| b == peer) {
                    return out;
                }
                if !w.haves.contains(&peer) {
                    w.haves.push(peer);
                }
            }
            Presence::DontHave => {
                w.dont_have.insert(peer);
                w.haves.retain(|h| *h != peer);
                if w.block_from.is_some_and(|(b, _)| b == peer) {
                    w.block_from = None;
                }
            }
        }
        self.route(cid, now, connected, &mut out);
        out
    }

    /// A block from `peer` whose bytes hash to `cid`: the want ends, or `None` when nobody wanted it.
    pub fn block(&mut self, peer: PeerId, cid: &Cid) -> Option<Ended<W>> {
        let w = self.wants.remove(cid)?;
        *self.scores.entry(peer).or_insert(0) += 1;
        Some(Ended {
            cid: *cid,
            waiters: w.waiters,
            cancel: w.asked.into_iter().filter(|p| *p != peer).collect(),
        })
    }

    /// A peer misbehaved: it is asked last from now on.
    pub fn penalize(&mut self, peer: PeerId) {
        self.scores.insert(peer, i64::MIN / 2);
    }

    /// A peer connected: wants nobody is sending are offered to it.
    pub fn connected(&mut self, now: Instant, connected: &[PeerId]) -> Vec<Action> {
        let idle: Vec<Cid> = self
            .wants
            .iter()
            .filter(|(_, w)| w.block_from.is_none())
            .map(|(c, _)| *c)
            .collect();
        let mut out = Vec::new();
        for cid in idle {
            self.route(cid, now, connected, &mut out);
        }
        out
    }

    /// A peer went away (or its stream failed): what it was asked goes elsewhere.
    pub fn gone(&mut self, peer: PeerId, now: Instant, connected: &[PeerId]) -> Vec<Action> {
        let mut touched = Vec::new();
        for (cid, w) in self.wants.iter_mut() {
            let was_block = w.block_from.is_some_and(|(b, _)| b == peer);
            if was_block || w.pending_have.remove(&peer) || w.haves.contains(&peer) {
                touched.push(*cid);
            }
            if was_block {
                w.block_from = None;
            }
            w.haves.retain(|h| *h != peer);
            w.asked.remove(&peer);
        }
        if self.scores.get(&peer).is_none_or(|s| *s >= 0) {
            self.scores.remove(&peer);
        }
        let mut out = Vec::new();
        for cid in touched {
            self.route(cid, now, connected, &mut out);
        }
        out
    }

    /// Ends the wants past their deadline and moves on from peers silent for longer than the patience.
    pub fn tick(&mut self, now: Instant, connected: &[PeerId]) -> (Vec<Ended<W>>, Vec<Action>) {
        let expired: Vec<Cid> = self
            .wants
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        let mut ended = Vec::new();
        for cid in expired {
            if let Some(w) = self.wants.remove(&cid) {
                ended.push(Ended {
                    cid,
                    waiters: w.waiters,
                    cancel: w.asked.into_iter().collect(),
                });
            }
        }
        let mut stalled = Vec::new();
        for (cid, w) in self.wants.iter_mut() {
            if let Some((peer, since)) = w.block_from {
                if now.duration_since(since) >= self.patience {
                    w.block_from = None;
                    w.dont_have.insert(peer);
                    stalled.push(*cid);
                }
            }
        }
        let mut out = Vec::new();
        for cid in stalled {
            self.route(cid, now, connected, &mut out);
        }
        (ended, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u8) -> Cid {
        Cid::v1_of(0x55, &[i])
    }

    fn block_asks(actions: &[Action]) -> Vec<PeerId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p, e) if e.want == WantType::Block && !e.cancel => Some(*p),
                _ => None,
            })
            .collect()
    }

    fn have_asks(actions: &[Action]) -> Vec<PeerId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p, e) if e.want == WantType::Have => Some(*p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn asks_one_peer_for_the_block_and_others_whether_they_have_it() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let now = Instant::now();
        let mut w: Wants<u32> = Wants::new(1, Duration::from_secs(5));
        let acts = w.want(cid(1), 1, now + Duration::from_secs(30), now, &[a, b, c]);
        assert_eq!(block_asks(&acts).len(), 1);
        assert_eq!(have_asks(&acts).len(), 1, "broadcast is bounded");
        let first = block_asks(&acts)[0];
        let asked_have = have_asks(&acts)[0];
        // The block's peer has not got it; the peer asked want-have has: it is asked for the block.
        let acts = w.presence(asked_have, cid(1), Presence::Have, now, &[a, b, c]);
        assert!(
            block_asks(&acts).is_empty(),
            "the block is still asked of {first}"
        );
        let acts = w.presence(first, cid(1), Presence::DontHave, now, &[a, b, c]);
        assert_eq!(block_asks(&acts), vec![asked_have]);
        // A second waiter joins the same want; the block ends it with cancels for the others.
        w.want(cid(1), 2, now + Duration::from_secs(30), now, &[a, b, c]);
        let ended = w.block(asked_have, &cid(1)).unwrap();
        assert_eq!(ended.waiters, vec![1, 2]);
        assert!(!ended.cancel.contains(&asked_have));
        assert!(ended.cancel.contains(&first));
        assert!(w.block(asked_have, &cid(1)).is_none(), "nobody wants it any more");
        // The peer that served is asked first next time.
        let acts = w.want(cid(2), 3, now + Duration::from_secs(30), now, &[a, b, c]);
        assert_eq!(block_asks(&acts), vec![asked_have]);
        assert!(w.is_wanted(&cid(2)));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn no_peer_has_it_so_providers_are_looked_up_and_asked_as_they_connect() {
        let (a, p) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let mut w: Wants<u32> = Wants::new(2, Duration::from_secs(5));
        assert_eq!(
            w.want(cid(1), 1, now + Duration::from_secs(1), now, &[]),
            vec![Action::FindProviders(cid(1))]
        );
        let acts = w.want(cid(2), 2, now + Duration::from_secs(30), now, &[a]);
        assert_eq!(block_asks(&acts), vec![a]);
        let acts = w.presence(a, cid(2), Presence::DontHave, now, &[a]);
        assert_eq!(acts, vec![Action::FindProviders(cid(2))]);
        // A provider connects: both idle wants go to it.
        let acts = w.connected(now, &[a, p]);
        assert_eq!(block_asks(&acts), vec![p, p]);
        // It goes away: nobody left to ask, and the lookup is not repeated.
        assert!(w.gone(p, now, &[a]).is_empty());
        // Past its deadline the first want ends; the second stays.
        let (ended, _) = w.tick(now + Duration::from_secs(2), &[a]);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].waiters, vec![1]);
        assert!(!w.is_empty());
    }

    #[test]
    fn a_silent_or_vanished_peer_hands_the_want_on_and_a_liar_is_asked_last() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let mut w: Wants<u32> = Wants::new(0, Duration::from_secs(5));
        w.penalize(b);
        let acts = w.want(cid(1), 1, now + Duration::from_secs(60), now, &[a, b]);
        assert_eq!(block_asks(&acts), vec![a], "the penalized peer is asked last");
        // Silent past the patience: b is asked.
        let (ended, acts) = w.tick(now + Duration::from_secs(6), &[a, b]);
        assert!(ended.is_empty());
        assert_eq!(block_asks(&acts), vec![b]);
        // b goes away: nobody left (a already failed), so providers are looked up.
        assert_eq!(w.gone(b, now, &[a]), vec![Action::FindProviders(cid(1))]);
        // A have from a peer we asked for the block is nothing new.
        let c = PeerId::random();
        let acts = w.connected(now, &[a, c]);
        assert_eq!(block_asks(&acts), vec![c]);
        assert!(w.presence(c, cid(1), Presence::Have, now, &[a, c]).is_empty());
        assert!(w.presence(c, cid(9), Presence::Have, now, &[a, c]).is_empty());
    }
}
