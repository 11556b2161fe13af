//! The checks an announcement passes before it is stored, without I/O: size, the forwarding peer's
//! rate, format and signature, time (not in the future beyond [`Limits::skew_secs`], not expired),
//! TTL bounds, the topic it travelled on, a blocked publisher, the publisher's rate. Rates are token
//! buckets per peer and per publisher, kept for a bounded number of keys. Every refusal is counted by
//! its [`Refusal`]; replays and the per-topic cap are the store's part ([`super::store`]).

use std::collections::HashMap;

use serde::Serialize;

use super::format::{Announcement, MAX_BYTES};
use super::topic::LevelHash;
use crate::Error;

/// Why an announcement was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    Oversized,
    Malformed,
    Forged,
    Future,
    Expired,
    Ttl,
    WrongTopic,
    Blocked,
    PublisherRate,
    PeerRate,
    Replay,
}

impl Refusal {
    pub const ALL: [Refusal; 11] = [
        Refusal::Oversized,
        Refusal::Malformed,
        Refusal::Forged,
        Refusal::Future,
        Refusal::Expired,
        Refusal::Ttl,
        Refusal::WrongTopic,
        Refusal::Blocked,
        Refusal::PublisherRate,
        Refusal::PeerRate,
        Refusal::Replay,
    ];

    /// Its name in `status` and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Oversized => "oversized",
            Refusal::Malformed => "malformed",
            Refusal::Forged => "forged",
            Refusal::Future => "future",
            Refusal::Expired => "expired",
            Refusal::Ttl => "ttl",
            Refusal::WrongTopic => "wrong_topic",
            Refusal::Blocked => "blocked",
            Refusal::PublisherRate => "publisher_rate",
            Refusal::PeerRate => "peer_rate",
            Refusal::Replay => "replay",
        }
    }

    /// Whether the sender broke the protocol (the peer is penalized), rather than the message
    /// only not being wanted here.
    pub fn is_invalid(self) -> bool {
        matches!(
            self,
            Refusal::Oversized | Refusal::Malformed | Refusal::Forged | Refusal::Ttl | Refusal::WrongTopic
        )
    }

    /// The refusal a decoding error stands for.
    fn of_decode(e: &Error) -> Refusal {
        let text = e.to_string();
        if text.contains("forged") {
            Refusal::Forged
        } else if text.contains("-byte cap") {
            Refusal::Oversized
        } else {
            Refusal::Malformed
        }
    }
}

/// The bounds announcements are held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How far in the future an announcement's time may be.
    pub skew_secs: u64,
    pub min_ttl: u32,
    pub max_ttl: u32,
    /// Announcements one publisher may make: a burst, then this many per minute.
    pub publisher_burst: f64,
    pub publisher_per_min: f64,
    /// Announcements one peer may forward: a burst, then this many per second.
    pub peer_burst: f64,
    pub peer_per_sec: f64,
    /// Announcements kept per topic; the oldest go first.
    pub per_topic: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            skew_secs: 300,
            min_ttl: 60,
            max_ttl: 30 * 86_400,
            publisher_burst: 30.0,
            publisher_per_min: 10.0,
            peer_burst: 500.0,
            peer_per_sec: 50.0,
            per_topic: 10_000,
        }
    }
}

/// Most keys a bucket table keeps; past it, full (idle) buckets are forgotten.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Token buckets by key.
#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<Vec<u8>, Bucket>,
}

impl Buckets {
    /// Takes a token for `key` (refilled at `per_ms`, holding at most `burst`); false when empty.
    fn take(&mut self, key: &[u8], now_ms: i64, burst: f64, per_ms: f64) -> bool {
        if self.map.len() >= MAX_BUCKETS && !self.map.contains_key(key) {
            self.map
                .retain(|_, b| b.tokens + (now_ms - b.at_ms).max(0) as f64 * per_ms < burst);
            if self.map.len() >= MAX_BUCKETS {
                return false; // every known key is busy: a new one waits
            }
        }
        let b = self.map.entry(key.to_vec()).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        b.tokens = (b.tokens + (now_ms - b.at_ms).max(0) as f64 * per_ms).min(burst);
        b.at_ms = now_ms;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }
}

/// Refusals counted by reason.
pub type Counts = std::collections::BTreeMap<Refusal, u64>;

/// The checks and their state.
#[derive(Debug, Default)]
pub struct Checker {
    pub limits: Limits,
    peers: Buckets,
    publishers: Buckets,
    pub refused: Counts,
}

impl Checker {
    pub fn new(limits: Limits) -> Checker {
        Checker {
            limits,
            ..Checker::default()
        }
    }

    /// Counts a refusal and returns it.
    pub fn refuse(&mut self, r: Refusal) -> Refusal {
        *self.refused.entry(r).or_default() += 1;
        r
    }

    /// Checks `bytes` forwarded by `peer` (none for our own) on the topic of first level `wire`, at
    /// `now_ms`; `live` when it came by gossipsub (a publisher's rate applies to what it publishes
    /// now, not to what a peer kept from the past week); `blocked` says whether a publisher is blocked.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        bytes: &[u8],
        peer: Option<&[u8]>,
        wire: Option<&LevelHash>,
        live: bool,
        now_ms: i64,
        blocked: &dyn Fn(&[u8; 32]) -> bool,
    ) -> Result<Announcement, Refusal> {
        if bytes.len() > MAX_BYTES {
            return Err(self.refuse(Refusal::Oversized));
        }
        let l = self.limits;
        if let Some(p) = peer {
            if !self.peers.take(p, now_ms, l.peer_burst, l.peer_per_sec / 1000.0) {
                return Err(self.refuse(Refusal::PeerRate));
            }
        }
        let a = match Announcement::decode(bytes) {
            Ok(a) => a,
            Err(e) => return Err(self.refuse(Refusal::of_decode(&e))),
        };
        let now = (now_ms.max(0) / 1000) as u64;
        if a.body.ttl < l.min_ttl || a.body.ttl > l.max_ttl {
            return Err(self.refuse(Refusal::Ttl));
        }
        if a.body.time > now + l.skew_secs {
            return Err(self.refuse(Refusal::Future));
        }
        if a.expires() <= now {
            return Err(self.refuse(Refusal::Expired));
        }
        if let Some(w) = wire {
            if a.body.levels().first() != Some(w) {
                return Err(self.refuse(Refusal::WrongTopic));
            }
        }
        if blocked(&a.body.publisher) {
            return Err(self.refuse(Refusal::Blocked));
        }
        if peer.is_some()
            && live
            && !self.publishers.take(
                &a.body.publisher,
                now_ms,
                l.publisher_burst,
                l.publisher_per_min / 60_000.0,
            )
        {
            return Err(self.refuse(Refusal::PublisherRate));
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::format::tests::{body, key};
    use crate::announce::topic::prefix_hash;

    const NOW: i64 = 1_700_000_000_000;

    fn none(_: &[u8; 32]) -> bool {
        false
    }

    #[test]
    fn each_check_refuses_and_counts() {
        let mut c = Checker::new(Limits::default());
        let k = key(5);
        let t = (NOW / 1000) as u64;
        let good = body(&k, "media/books", "Dune", 1, t).sign(&k).unwrap();
        let media = prefix_hash("media");
        assert!(c
            .admit(&good.bytes, Some(b"p"), Some(&media), true, NOW, &none)
            .is_ok());
        assert_eq!(
            c.admit(
                &good.bytes,
                Some(b"p"),
                Some(&prefix_hash("software")),
                true,
                NOW,
                &none
            ),
            Err(Refusal::WrongTopic)
        );
        let mut forged = good.bytes.clone();
        let n = forged.len();
        forged[n - 1] ^= 1;
        assert_eq!(
            c.admit(&forged, None, None, true, NOW, &none),
            Err(Refusal::Forged)
        );
        assert_eq!(
            c.admit(b"junk", None, None, true, NOW, &none),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            c.admit(&[0; MAX_BYTES + 1], None, None, true, NOW, &none),
            Err(Refusal::Oversized)
        );
        let future = body(&k, "media", "x", 2, t + 301).sign(&k).unwrap();
        assert_eq!(
            c.admit(&future.bytes, None, None, true, NOW, &none),
            Err(Refusal::Future)
        );
        let skewed = body(&k, "media", "x", 2, t + 299).sign(&k).unwrap();
        assert!(c.admit(&skewed.bytes, None, None, true, NOW, &none).is_ok());
        let old = body(&k, "media", "x", 3, t - 3600).sign(&k).unwrap();
        assert_eq!(
            c.admit(&old.bytes, None, None, true, NOW, &none),
            Err(Refusal::Expired)
        );
        let mut long = body(&k, "media", "x", 4, t);
        long.ttl = 31 * 86_400;
        let long = long.sign(&k).unwrap();
        assert_eq!(
            c.admit(&long.bytes, None, None, true, NOW, &none),
            Err(Refusal::Ttl)
        );
        assert_eq!(
            c.admit(&good.bytes, None, None, true, NOW, &|_| true),
            Err(Refusal::Blocked)
        );
        for r in [
            Refusal::WrongTopic,
            Refusal::Forged,
            Refusal::Malformed,
            Refusal::Oversized,
        ] {
            assert_eq!(c.refused[&r], 1, "{r:?}");
            assert!(r.is_invalid());
        }
        assert!(!Refusal::Replay.is_invalid() && !Refusal::PeerRate.is_invalid());
        assert_eq!(
            Refusal::ALL.len(),
            Refusal::ALL
                .iter()
                .map(|r| r.name())
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
    }

    #[test]
    fn rates_are_token_buckets_per_peer_and_per_publisher() {
        let limits = Limits {
            peer_burst: 5.0,
            peer_per_sec: 1.0,
            publisher_burst: 3.0,
            publisher_per_min: 60.0,
            ..Limits::default()
        };
        let mut c = Checker::new(limits);
        let t = (NOW / 1000) as u64;
        let k = key(6);
        let msgs: Vec<_> = (0..6u8)
            .map(|i| body(&k, "media", "x", i, t).sign(&k).unwrap().bytes)
            .collect();
        // One publisher: 3, then refused until a second has passed (1 per second).
        let got: Vec<_> = msgs
            .iter()
            .map(|m| c.admit(m, Some(b"a"), None, true, NOW, &none).is_ok())
            .collect();
        assert_eq!(got, [true, true, true, false, false, false]);
        assert_eq!(
            c.refused[&Refusal::PublisherRate],
            2,
            "the 6th hit the peer's rate first"
        );
        assert_eq!(c.refused[&Refusal::PeerRate], 1);
        assert!(c
            .admit(&msgs[5], Some(b"b"), None, true, NOW + 1000, &none)
            .is_ok());
        // What a peer kept from the past (catch-up) is not held to the publisher's live rate.
        assert!(c
            .admit(&msgs[3], Some(b"b"), None, false, NOW + 1000, &none)
            .is_ok());
        // Our own (no peer) are not rate-limited.
        for m in &msgs {
            assert!(c.admit(m, None, None, true, NOW, &none).is_ok());
        }
        // The bucket table stays bounded: a full table forgets idle keys.
        let mut b = Buckets::default();
        for i in 0..MAX_BUCKETS as u32 {
            assert!(b.take(&i.to_le_bytes(), 0, 2.0, 0.001));
        }
        assert!(b.take(b"new", 10_000, 2.0, 0.001), "idle buckets are forgotten");
        assert!(b.map.len() <= MAX_BUCKETS);
    }
}
