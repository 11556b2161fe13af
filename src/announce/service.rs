//! The announcements' task on the network, run by the repository's owner (or a command that needs
//! it for its duration): joins the gossipsub topic of each subscription's first level, judges every
//! message through [`super::Announcements::receive`] (forwarded only when valid), answers catch-up
//! requests from what is stored, and asks each newly connected peer (and every peer when
//! subscriptions change) for the recent announcements of the subscribed topics. Catch-up protocol
//! `/noisefs/announce/catchup/1.0.0` (docs/formats.md §14): a CBOR request `{v, topics: [bytes16],
//! since}` and a CBOR answer `{v, items: [bytes]}`, newest first, bounded in count and bytes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::topic::{wire_topic, LevelHash};
use super::Announcements;
use crate::clock::now_secs;
use crate::network::{Network, Verdict};
use crate::Result;

/// The catch-up protocol's name.
pub const CATCHUP: &str = "/noisefs/announce/catchup/1.0.0";
/// Largest catch-up request read.
pub const MAX_REQUEST: usize = 4096;
/// Largest catch-up answer sent or read.
pub const MAX_RESPONSE: usize = 1 << 20;
/// Most announcements in one answer.
pub const MAX_ITEMS: usize = 256;
/// Most topics one request may name.
const MAX_TOPICS: usize = 64;
/// How long a catch-up request may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the task looks at its peers, expires and saves its counts.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
struct CatchupRequest {
    v: u8,
    topics: Vec<serde_bytes::ByteArray<16>>,
    since: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CatchupAnswer {
    v: u8,
    items: Vec<serde_bytes::ByteBuf>,
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding plain structs into a Vec cannot fail.
    super::format::cbor(v).unwrap_or_default()
}

/// The first level a wire topic names, when it is one of ours.
fn first_of(wire: &str) -> Option<LevelHash> {
    let hex = wire.strip_prefix("noisefs/announce/1/")?;
    data_encoding::HEXLOWER
        .decode(hex.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

/// Publishes `a` on its topic, retrying while no peer follows it, for at most `wait`.
pub async fn publish(net: &Network, a: &super::Announcement, wait: Duration) -> bool {
    let Some(first) = a.body.levels().first().copied() else {
        return false;
    };
    let topic = wire_topic(&first);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match net.publish(&topic, a.bytes.clone()).await {
            Ok(()) => return true,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                tracing::info!(error = %e, "announcement kept here; peers get it when they catch up");
                return false;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The answer to a catch-up request: the stored announcements of the topics asked, newest first.
fn answer(me: &Announcements, data: &[u8]) -> Vec<u8> {
    let Ok(req) = ciborium::from_reader::<CatchupRequest, _>(data) else {
        return cbor(&CatchupAnswer { v: 1, items: vec![] });
    };
    let topics: HashSet<LevelHash> = req
        .topics
        .iter()
        .take(MAX_TOPICS)
        .map(|t| t.into_array())
        .collect();
    let now = now_secs().max(0) as u64;
    let mut found = Vec::new();
    let scanned = me.store().each(&mut |e| {
        if e.expires > now && e.time >= req.since && e.levels.first().is_some_and(|f| topics.contains(f)) {
            found.push((e.time, e.bytes));
        }
        true
    });
    if let Err(e) = scanned {
        tracing::warn!(error = %e, "cannot read announcements for a catch-up request");
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut items = Vec::new();
    let mut bytes = 64;
    for (_, b) in found.into_iter().take(MAX_ITEMS) {
        bytes += b.len() + 8;
        if bytes > MAX_RESPONSE {
            break;
        }
        items.push(serde_bytes::ByteBuf::from(b));
    }
    cbor(&CatchupAnswer { v: 1, items })
}

/// Asks `peer` for the recent announcements of `topics` and takes what passes the checks; returns
/// how many were new.
async fn catch_up(me: &Announcements, net: &Network, peer: &str, topics: &[LevelHash]) -> Result<usize> {
    let req = CatchupRequest {
        v: 1,
        topics: topics.iter().map(|t| serde_bytes::ByteArray::new(*t)).collect(),
        since: (now_secs().max(0) as u64).saturating_sub(super::MAX_TTL as u64),
    };
    let data = net
        .ask(peer, CATCHUP, cbor(&req), MAX_RESPONSE, ASK_TIMEOUT)
        .await?;
    let Ok(ans) = ciborium::from_reader::<CatchupAnswer, _>(&data[..]) else {
        tracing::debug!(peer, "malformed catch-up answer");
        return Ok(0);
    };
    let before = me.store().len()?;
    let asked: HashSet<&LevelHash> = topics.iter().collect();
    for item in ans.items.iter().take(MAX_ITEMS) {
        // An item of a topic not asked for is refused as if it came on the wrong topic.
        let first = super::Announcement::decode(item)
            .ok()
            .and_then(|a| a.body.levels().first().copied());
        let wire = first.filter(|f| asked.contains(f)).unwrap_or([0; 16]);
        me.receive(item, Some(peer), Some(&wire), false)?;
    }
    Ok(me.store().len()?.saturating_sub(before) as usize)
}

/// Starts the node and the task.
pub async fn spawn(me: Arc<Announcements>, net: Arc<Network>) -> Result<()> {
    let mut inbox = net.inbox().await?;
    let mut requests = net.serve(CATCHUP, MAX_REQUEST, MAX_RESPONSE).await?;
    let mut joined: HashSet<LevelHash> = HashSet::new();
    let mut asked: HashSet<String> = HashSet::new();
    let mut ticks = 0u64;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Ok(m) => {
                        let wire = first_of(&m.topic);
                        let from = m.from.to_string();
                        let verdict = match wire {
                            Some(w) => me.receive(&m.data, Some(&from), Some(&w), true).unwrap_or_else(|e| {
                                tracing::warn!(error = %e, "cannot store an announcement");
                                Verdict::Ignore
                            }),
                            None => Verdict::Ignore,
                        };
                        let _ = net.judge(&m, verdict).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(dropped = n, "announcements arrived faster than they were checked");
                    }
                    Err(_) => return,
                },
                req = requests.recv() => match req {
                    Some(r) => {
                        let a = answer(&me, &r.data);
                        r.respond(a);
                    }
                    None => return,
                },
                () = me.changed.notified() => {
                    // New subscriptions: join their topics and ask every peer again.
                    asked.clear();
                    refresh(&me, &net, &mut joined, &mut asked).await;
                }
                _ = tick.tick() => {
                    ticks += 1;
                    refresh(&me, &net, &mut joined, &mut asked).await;
                    if let Err(e) = me.flush_refused() {
                        tracing::warn!(error = %e, "cannot save announcement counts");
                    }
                    if ticks % 60 == 1 {
                        match me.store().expire(now_secs().max(0) as u64) {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(expired = n, "expired announcements removed"),
                            Err(e) => tracing::warn!(error = %e, "cannot expire announcements"),
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// Joins the topics subscriptions need (leaving the others) and catches up with peers not asked yet.
async fn refresh(
    me: &Arc<Announcements>,
    net: &Arc<Network>,
    joined: &mut HashSet<LevelHash>,
    asked: &mut HashSet<String>,
) {
    let want: HashSet<LevelHash> = match me.patterns() {
        Ok(p) => p.iter().map(|p| p.first()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read subscriptions");
            return;
        }
    };
    for t in want.difference(joined).copied().collect::<Vec<_>>() {
        match net.join(&wire_topic(&t)).await {
            Ok(_) => {
                joined.insert(t);
            }
            Err(e) => tracing::warn!(error = %e, "cannot join an announcement topic"),
        }
    }
    for t in joined.difference(&want).copied().collect::<Vec<_>>() {
        let _ = net.leave(&wire_topic(&t)).await;
        joined.remove(&t);
    }
    if want.is_empty() {
        return;
    }
    let peers = match net.peers().await {
        Ok(p) => p,
        Err(_) => return,
    };
    // A peer that went away is asked again when it comes back (it may have more by then).
    asked.retain(|a| peers.iter().any(|p| p.peer == *a));
    let topics: Vec<LevelHash> = want.into_iter().collect();
    for p in peers {
        if !asked.insert(p.peer.clone()) {
            continue;
        }
        let (me, net, topics) = (me.clone(), net.clone(), topics.clone());
        tokio::spawn(async move {
            match catch_up(&me, &net, &p.peer, &topics).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(peer = %p.peer, new = n, "caught up on announcements"),
                Err(e) => tracing::debug!(peer = %p.peer, error = %e, "no catch-up from this peer"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::format::tests::{body, key};
    use crate::announce::topic::prefix_hash;

    #[test]
    fn catch_up_answers_hold_the_topics_asked_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let state = crate::state::State::open(d.path()).unwrap();
        let me = Announcements::open(d.path().to_path_buf(), &state, None).unwrap();
        me.subscribe("media/**").unwrap();
        me.subscribe("software").unwrap();
        let k = key(20);
        let now = now_secs() as u64;
        for (i, t) in ["media/books", "media/music", "software"].iter().enumerate() {
            let a = body(&k, t, &format!("t{i}"), i as u8, now - 10 + i as u64)
                .sign(&k)
                .unwrap();
            assert_eq!(me.receive(&a.bytes, None, None, true).unwrap(), Verdict::Accept);
        }
        let ask = |topics: Vec<LevelHash>| {
            let req = CatchupRequest {
                v: 1,
                topics: topics.into_iter().map(serde_bytes::ByteArray::new).collect(),
                since: 0,
            };
            let ans: CatchupAnswer = ciborium::from_reader(&answer(&me, &cbor(&req))[..]).unwrap();
            ans.items
                .iter()
                .map(|b| super::super::Announcement::decode(b).unwrap().body.title)
                .collect::<Vec<_>>()
        };
        assert_eq!(ask(vec![prefix_hash("media")]), ["t1", "t0"]);
        assert_eq!(
            ask(vec![prefix_hash("media"), prefix_hash("software")]),
            ["t2", "t1", "t0"]
        );
        assert!(ask(vec![prefix_hash("docs")]).is_empty());
        let junk: CatchupAnswer = ciborium::from_reader(&answer(&me, b"junk")[..]).unwrap();
        assert!(junk.items.is_empty());
        assert_eq!(
            first_of(&wire_topic(&prefix_hash("media"))),
            Some(prefix_hash("media"))
        );
        assert_eq!(first_of("other/topic"), None);
    }
}
