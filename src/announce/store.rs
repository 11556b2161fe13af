//! Announcements, subscriptions, publishers and known topic names in the repository's LMDB state.
//! An announcement is kept under its id (publisher key and nonce) as a fixed-layout record of the
//! fields queries filter on (its bytes in a database apart, so a scan reads little); indexes by topic and time
//! (the per-topic cap evicts the oldest) and by expiry (expired ones are removed), and a replay guard
//! that outlives eviction until the announcement would have expired. Every change is one transaction.

use heed::types::{Bytes, Str, Unit};
use heed::{Database, Env};
use serde::Serialize;

use super::check::{Counts, Refusal};
use super::format::{publisher_text, Announcement, Category, BLOOM_BYTES};
use super::topic::LevelHash;
use crate::state::State;
use crate::{Error, Result};

/// What a publisher is to this repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    Unknown,
    Trusted,
    Blocked,
}

/// A known publisher.
#[derive(Debug, Clone, Serialize)]
pub struct Publisher {
    pub key: String,
    pub trust: Trust,
    /// Announcements stored from it, all told.
    pub announcements: u64,
    /// Its latest announcement's time, seconds since the epoch.
    pub last: u64,
}

/// A stored announcement's fields, as queries see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: [u8; 32],
    pub time: u64,
    pub expires: u64,
    pub received_ms: i64,
    pub category: Category,
    pub size_class: u8,
    pub folder: bool,
    pub levels: Vec<LevelHash>,
    pub tags: [u8; BLOOM_BYTES],
    pub publisher: [u8; 32],
    pub title: String,
    /// The announcement as received.
    pub bytes: Vec<u8>,
}

/// What [`AnnounceStore::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored; `evicted` older ones of its topic made room.
    New { evicted: u64 },
    /// Seen before (a replay or a copy from another peer): nothing changed.
    Replay,
}

fn encode(a: &Announcement, received_ms: i64) -> Vec<u8> {
    let b = &a.body;
    let levels = b.levels();
    let mut v = Vec::with_capacity(160 + b.title.len() + a.bytes.len());
    v.extend_from_slice(&b.time.to_le_bytes());
    v.extend_from_slice(&a.expires().to_le_bytes());
    v.extend_from_slice(&received_ms.to_le_bytes());
    v.push(Category::ALL.iter().position(|c| *c == b.category).unwrap_or(6) as u8);
    v.push(b.size_class);
    v.push(b.folder as u8);
    v.push(levels.len() as u8);
    for l in &levels {
        v.extend_from_slice(l);
    }
    v.extend_from_slice(&b.tags);
    v.extend_from_slice(&b.publisher);
    v.extend_from_slice(&(b.title.len() as u16).to_le_bytes());
    v.extend_from_slice(b.title.as_bytes());
    v
}

fn corrupt() -> Error {
    Error::Announcement("a stored announcement record is corrupt; run `noisefs repo verify`".into())
}

/// Reads `n` bytes at `*at`.
fn take<'a>(v: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8]> {
    let s = v.get(*at..*at + n).ok_or_else(corrupt)?;
    *at += n;
    Ok(s)
}

fn u64_at(v: &[u8], at: &mut usize) -> Result<u64> {
    Ok(u64::from_le_bytes(
        take(v, at, 8)?.try_into().map_err(|_| corrupt())?,
    ))
}

fn decode(id: &[u8], v: &[u8], bytes: &[u8]) -> Result<Entry> {
    let mut at = 0;
    let time = u64_at(v, &mut at)?;
    let expires = u64_at(v, &mut at)?;
    let received_ms = u64_at(v, &mut at)? as i64;
    let head = take(v, &mut at, 4)?;
    let category = *Category::ALL.get(head[0] as usize).ok_or_else(corrupt)?;
    let mut levels = Vec::with_capacity(head[3] as usize);
    for _ in 0..head[3] {
        levels.push(take(v, &mut at, 16)?.try_into().map_err(|_| corrupt())?);
    }
    let tags = take(v, &mut at, BLOOM_BYTES)?.try_into().map_err(|_| corrupt())?;
    let publisher = take(v, &mut at, 32)?.try_into().map_err(|_| corrupt())?;
    let n = u16::from_le_bytes(take(v, &mut at, 2)?.try_into().map_err(|_| corrupt())?) as usize;
    let title = String::from_utf8(take(v, &mut at, n)?.to_vec()).map_err(|_| corrupt())?;
    Ok(Entry {
        id: id.try_into().map_err(|_| corrupt())?,
        time,
        expires,
        received_ms,
        category,
        size_class: head[1],
        folder: head[2] != 0,
        levels,
        tags,
        publisher,
        title,
        bytes: bytes.to_vec(),
    })
}

/// A stored announcement's fixed fields, borrowed from the record (what a scan filters on without
/// copying anything).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub id: &'a [u8],
    pub time: u64,
    pub expires: u64,
    pub category: Category,
    pub size_class: u8,
    /// The level hashes, 16 bytes each.
    pub levels: &'a [u8],
    pub tags: &'a [u8],
    pub publisher: &'a [u8],
    pub title: &'a str,
}

impl View<'_> {
    /// The level hashes, at most [`super::topic::MAX_DEPTH`] of them.
    pub fn level_hashes(&self) -> impl Iterator<Item = LevelHash> + '_ {
        self.levels
            .chunks_exact(16)
            .map(|c| c.try_into().unwrap_or([0; 16]))
    }

    /// The announcement's id.
    pub fn id(&self) -> Result<[u8; 32]> {
        self.id.try_into().map_err(|_| corrupt())
    }
}

fn view<'a>(id: &'a [u8], v: &'a [u8]) -> Result<View<'a>> {
    let mut at = 0;
    let time = u64_at(v, &mut at)?;
    let expires = u64_at(v, &mut at)?;
    at += 8;
    let head = take(v, &mut at, 4)?;
    let category = *Category::ALL.get(head[0] as usize).ok_or_else(corrupt)?;
    let levels = take(v, &mut at, 16 * head[3] as usize)?;
    let tags = take(v, &mut at, BLOOM_BYTES)?;
    let publisher = take(v, &mut at, 32)?;
    let n = u16::from_le_bytes(take(v, &mut at, 2)?.try_into().map_err(|_| corrupt())?) as usize;
    let title = std::str::from_utf8(take(v, &mut at, n)?).map_err(|_| corrupt())?;
    Ok(View {
        id,
        time,
        expires,
        category,
        size_class: head[1],
        levels,
        tags,
        publisher,
        title,
    })
}

fn topic_key(last: &LevelHash, time: u64, id: &[u8; 32]) -> Vec<u8> {
    [last.as_slice(), &time.to_be_bytes(), id].concat()
}

fn expiry_key(expires: u64, id: &[u8; 32]) -> Vec<u8> {
    [expires.to_be_bytes().as_slice(), id].concat()
}

/// The announcement databases of one repository.
pub struct AnnounceStore {
    env: Env,
    ann: Database<Bytes, Bytes>,
    raw: Database<Bytes, Bytes>,
    by_topic: Database<Bytes, Unit>,
    by_expiry: Database<Bytes, Unit>,
    seen: Database<Bytes, Bytes>,
    counts: Database<Bytes, Bytes>,
    refused: Database<Str, Bytes>,
    subs: Database<Str, Bytes>,
    publishers: Database<Bytes, Bytes>,
    topics: Database<Str, Unit>,
}

impl AnnounceStore {
    /// Opens (creating) the databases in `state`.
    pub fn open(state: &State) -> Result<AnnounceStore> {
        Ok(AnnounceStore {
            env: state.env().clone(),
            ann: state.database("announcements")?,
            raw: state.database("announcements_raw")?,
            by_topic: state.database("announcements_by_topic")?,
            by_expiry: state.database("announcements_by_expiry")?,
            seen: state.database("announcements_seen")?,
            counts: state.database("announcements_per_topic")?,
            refused: state.database("announcements_refused")?,
            subs: state.database("subscriptions")?,
            publishers: state.database("publishers")?,
            topics: state.database("topics")?,
        })
    }

    /// Stores `a` unless its id was seen before; past `cap` announcements on its topic, the oldest
    /// go. Counts it for its publisher.
    pub fn insert(&self, a: &Announcement, received_ms: i64, cap: u64) -> Result<Inserted> {
        let id = a.id();
        let mut w = self.env.write_txn()?;
        if self.seen.get(&w, &id)?.is_some() {
            return Ok(Inserted::Replay);
        }
        let levels = a.body.levels();
        let last = *levels.last().ok_or_else(corrupt)?;
        self.seen.put(&mut w, &id, &a.expires().to_be_bytes())?;
        self.ann.put(&mut w, &id, &encode(a, received_ms))?;
        self.raw.put(&mut w, &id, &a.bytes)?;
        self.by_topic
            .put(&mut w, &topic_key(&last, a.body.time, &id), &())?;
        self.by_expiry.put(&mut w, &expiry_key(a.expires(), &id), &())?;
        let mut count = self
            .counts
            .get(&w, &last)?
            .and_then(|v| v.try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0)
            + 1;
        let mut evicted = 0;
        while count > cap {
            let oldest = self
                .by_topic
                .prefix_iter(&w, &last)?
                .next()
                .transpose()?
                .map(|(k, _)| k.to_vec());
            let Some(k) = oldest else { break };
            let old: [u8; 32] = k[24..].try_into().map_err(|_| corrupt())?;
            self.remove(&mut w, &old)?;
            count -= 1;
            evicted += 1;
        }
        self.counts.put(&mut w, &last, &count.to_le_bytes())?;
        let mut p = self.publisher_raw(&w, &a.body.publisher)?;
        p.1 += 1;
        p.2 = p.2.max(a.body.time);
        self.put_publisher(&mut w, &a.body.publisher, p)?;
        w.commit()?;
        Ok(Inserted::New { evicted })
    }

    /// Removes announcement `id` and its index entries (not its replay guard).
    fn remove(&self, w: &mut heed::RwTxn, id: &[u8; 32]) -> Result<bool> {
        let Some(v) = self.ann.get(w, id)? else {
            return Ok(false);
        };
        let e = decode(id, v, &[])?;
        let last = *e.levels.last().ok_or_else(corrupt)?;
        self.ann.delete(w, id)?;
        self.raw.delete(w, id)?;
        self.by_topic.delete(w, &topic_key(&last, e.time, id))?;
        self.by_expiry.delete(w, &expiry_key(e.expires, id))?;
        if let Some(c) = self
            .counts
            .get(w, &last)?
            .and_then(|v| v.try_into().ok().map(u64::from_le_bytes))
        {
            self.counts.put(w, &last, &c.saturating_sub(1).to_le_bytes())?;
        }
        Ok(true)
    }

    /// Removes what expired at `now` (seconds), and replay guards past their time; returns how many
    /// announcements went.
    pub fn expire(&self, now: u64) -> Result<u64> {
        let mut w = self.env.write_txn()?;
        let due: Vec<[u8; 32]> = self
            .by_expiry
            .iter(&w)?
            .map_while(|r| match r {
                Ok((k, _))
                    if k.len() == 40 && u64::from_be_bytes(k[..8].try_into().unwrap_or([0xff; 8])) <= now =>
                {
                    k[8..].try_into().ok()
                }
                _ => None,
            })
            .collect();
        let mut n = 0;
        for id in &due {
            n += self.remove(&mut w, id)? as u64;
        }
        let stale: Vec<Vec<u8>> = self
            .seen
            .iter(&w)?
            .filter_map(|r| r.ok())
            .filter(|(_, v)| v.len() == 8 && u64::from_be_bytes((*v).try_into().unwrap_or([0; 8])) <= now)
            .map(|(k, _)| k.to_vec())
            .collect();
        for k in stale {
            self.seen.delete(&mut w, &k)?;
        }
        w.commit()?;
        Ok(n)
    }

    /// The announcement `id`.
    pub fn get(&self, id: &[u8; 32]) -> Result<Option<Entry>> {
        let r = self.env.read_txn()?;
        let Some(v) = self.ann.get(&r, id)? else {
            return Ok(None);
        };
        let bytes = self.raw.get(&r, id)?.ok_or_else(corrupt)?;
        decode(id, v, bytes).map(Some)
    }

    /// Calls `f` with every stored announcement (in id order), stopping when it returns false.
    pub fn each(&self, f: &mut dyn FnMut(Entry) -> bool) -> Result<()> {
        let r = self.env.read_txn()?;
        for item in self.ann.iter(&r)? {
            let (k, v) = item?;
            let bytes = self.raw.get(&r, k)?.ok_or_else(corrupt)?;
            if !f(decode(k, v, bytes)?) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` with a view of every stored announcement (in id order), stopping when it returns
    /// false; nothing is copied unless `f` copies it.
    pub fn each_view(&self, f: &mut dyn FnMut(View) -> Result<bool>) -> Result<()> {
        let r = self.env.read_txn()?;
        for item in self.ann.iter(&r)? {
            let (k, v) = item?;
            if !f(view(k, v)?)? {
                break;
            }
        }
        Ok(())
    }

    /// How many announcements are stored.
    pub fn len(&self) -> Result<u64> {
        let r = self.env.read_txn()?;
        Ok(self.ann.len(&r)?)
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Adds a subscription; false when it was there.
    pub fn subscribe(&self, pattern: &str, now_ms: i64) -> Result<bool> {
        let mut w = self.env.write_txn()?;
        if self.subs.get(&w, pattern)?.is_some() {
            return Ok(false);
        }
        self.subs.put(&mut w, pattern, &now_ms.to_le_bytes())?;
        w.commit()?;
        Ok(true)
    }

    /// Removes a subscription; false when there was none.
    pub fn unsubscribe(&self, pattern: &str) -> Result<bool> {
        let mut w = self.env.write_txn()?;
        let gone = self.subs.delete(&mut w, pattern)?;
        w.commit()?;
        Ok(gone)
    }

    /// The subscriptions with the time each was made (ms).
    pub fn subscriptions(&self) -> Result<Vec<(String, i64)>> {
        let r = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.subs.iter(&r)? {
            let (k, v) = item?;
            out.push((k.to_string(), v.try_into().map(i64::from_le_bytes).unwrap_or(0)));
        }
        Ok(out)
    }

    fn publisher_raw(&self, r: &heed::RoTxn, key: &[u8; 32]) -> Result<(Trust, u64, u64)> {
        Ok(match self.publishers.get(r, key)? {
            Some(v) if v.len() == 17 => (
                match v[0] {
                    1 => Trust::Trusted,
                    2 => Trust::Blocked,
                    _ => Trust::Unknown,
                },
                u64::from_le_bytes(v[1..9].try_into().map_err(|_| corrupt())?),
                u64::from_le_bytes(v[9..17].try_into().map_err(|_| corrupt())?),
            ),
            _ => (Trust::Unknown, 0, 0),
        })
    }

    fn put_publisher(&self, w: &mut heed::RwTxn, key: &[u8; 32], p: (Trust, u64, u64)) -> Result<()> {
        let t = match p.0 {
            Trust::Unknown => 0u8,
            Trust::Trusted => 1,
            Trust::Blocked => 2,
        };
        let v = [[t].as_slice(), &p.1.to_le_bytes(), &p.2.to_le_bytes()].concat();
        Ok(self.publishers.put(w, key, &v)?)
    }

    /// What publisher `key` is here.
    pub fn trust(&self, key: &[u8; 32]) -> Result<Trust> {
        let r = self.env.read_txn()?;
        Ok(self.publisher_raw(&r, key)?.0)
    }

    /// Trusts or blocks publisher `key` (blocking also removes what it announced); returns how many
    /// of its announcements were removed.
    pub fn set_trust(&self, key: &[u8; 32], trust: Trust) -> Result<u64> {
        let mut w = self.env.write_txn()?;
        let mut p = self.publisher_raw(&w, key)?;
        p.0 = trust;
        self.put_publisher(&mut w, key, p)?;
        let mut removed = 0;
        if trust == Trust::Blocked {
            let theirs: Vec<[u8; 32]> = self
                .ann
                .iter(&w)?
                .filter_map(|r| r.ok())
                .filter_map(|(k, v)| decode(k, v, &[]).ok())
                .filter(|e| e.publisher == *key)
                .map(|e| e.id)
                .collect();
            for id in theirs {
                removed += self.remove(&mut w, &id)? as u64;
            }
        }
        w.commit()?;
        Ok(removed)
    }

    /// Every publisher known, most announcements first.
    pub fn publishers(&self) -> Result<Vec<Publisher>> {
        let r = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.publishers.iter(&r)? {
            let (k, _) = item?;
            let key: [u8; 32] = k.try_into().map_err(|_| corrupt())?;
            let (trust, announcements, last) = self.publisher_raw(&r, &key)?;
            out.push(Publisher {
                key: publisher_text(&key),
                trust,
                announcements,
                last,
            });
        }
        out.sort_by(|a, b| b.announcements.cmp(&a.announcements).then(a.key.cmp(&b.key)));
        Ok(out)
    }

    /// Remembers topic `name` (normalized) so its hash resolves to it.
    pub fn learn_topic(&self, name: &str) -> Result<()> {
        let mut w = self.env.write_txn()?;
        self.topics.put(&mut w, name, &())?;
        w.commit()?;
        Ok(())
    }

    /// The topic names learned here.
    pub fn learned_topics(&self) -> Result<Vec<String>> {
        let r = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.topics.iter(&r)? {
            out.push(item?.0.to_string());
        }
        Ok(out)
    }

    /// Adds refusals to the persisted counts.
    pub fn add_refused(&self, counts: &Counts) -> Result<()> {
        if counts.values().all(|n| *n == 0) {
            return Ok(());
        }
        let mut w = self.env.write_txn()?;
        for (r, n) in counts {
            let old = self
                .refused
                .get(&w, r.name())?
                .and_then(|v| v.try_into().ok().map(u64::from_le_bytes))
                .unwrap_or(0);
            self.refused.put(&mut w, r.name(), &(old + n).to_le_bytes())?;
        }
        w.commit()?;
        Ok(())
    }

    /// The refusals counted so far.
    pub fn refused(&self) -> Result<Counts> {
        let r = self.env.read_txn()?;
        let mut out = Counts::new();
        for reason in Refusal::ALL {
            if let Some(v) = self.refused.get(&r, reason.name())? {
                out.insert(reason, v.try_into().map(u64::from_le_bytes).unwrap_or(0));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::format::tests::{body, key};

    fn store() -> (tempfile::TempDir, State, AnnounceStore) {
        let d = tempfile::tempdir().unwrap();
        let state = State::open(d.path()).unwrap();
        let s = AnnounceStore::open(&state).unwrap();
        (d, state, s)
    }

    #[test]
    fn insert_replay_cap_and_expiry() {
        let (_d, _state, s) = store();
        let k = key(7);
        let a: Vec<_> = (0..4u8)
            .map(|i| {
                body(&k, "media/books", &format!("book {i}"), i, 1000 + i as u64)
                    .sign(&k)
                    .unwrap()
            })
            .collect();
        assert!(s.is_empty().unwrap());
        assert_eq!(s.insert(&a[0], 5, 3).unwrap(), Inserted::New { evicted: 0 });
        assert_eq!(s.insert(&a[0], 6, 3).unwrap(), Inserted::Replay);
        let e = s.get(&a[0].id()).unwrap().unwrap();
        assert_eq!(
            (e.title.as_str(), e.time, e.received_ms, e.bytes.clone()),
            ("book 0", 1000, 5, a[0].bytes.clone())
        );
        assert_eq!(e.levels, a[0].body.levels());
        assert_eq!(
            (e.category, e.folder, e.expires),
            (a[0].body.category, false, 4600)
        );
        s.insert(&a[1], 7, 3).unwrap();
        s.insert(&a[2], 8, 3).unwrap();
        // The fourth on the topic evicts the oldest; the evicted one cannot come back as a replay.
        assert_eq!(s.insert(&a[3], 9, 3).unwrap(), Inserted::New { evicted: 1 });
        assert_eq!(s.len().unwrap(), 3);
        assert!(s.get(&a[0].id()).unwrap().is_none());
        assert_eq!(s.insert(&a[0], 10, 3).unwrap(), Inserted::Replay);
        let p = &s.publishers().unwrap()[0];
        assert_eq!((p.announcements, p.last, p.trust), (4, 1003, Trust::Unknown));
        // Expiry: 1001+3600 and 1002+3600 have passed at 4602, 1003+3600 not.
        assert_eq!(s.expire(4602).unwrap(), 2);
        assert_eq!(s.len().unwrap(), 1);
        assert_eq!(s.expire(10_000).unwrap(), 1);
        // Replay guards past their time go too: what expired is refused by time instead.
        assert_eq!(s.insert(&a[0], 11, 3).unwrap(), Inserted::New { evicted: 0 });
        let mut all = Vec::new();
        s.each(&mut |e| {
            all.push(e.title);
            true
        })
        .unwrap();
        assert_eq!(all, ["book 0"]);
    }

    #[test]
    fn subscriptions_publishers_topics_and_refusals_persist() {
        let (d, state, s) = store();
        assert!(s.subscribe("media/**", 1).unwrap());
        assert!(!s.subscribe("media/**", 2).unwrap());
        assert_eq!(s.subscriptions().unwrap(), vec![("media/**".to_string(), 1)]);
        let k = key(8);
        let pk = k.verifying_key().to_bytes();
        let a = body(&k, "media", "x", 1, 1).sign(&k).unwrap();
        s.insert(&a, 1, 10).unwrap();
        assert_eq!(s.set_trust(&pk, Trust::Trusted).unwrap(), 0);
        assert_eq!(s.trust(&pk).unwrap(), Trust::Trusted);
        assert_eq!(
            s.set_trust(&pk, Trust::Blocked).unwrap(),
            1,
            "blocking removes its announcements"
        );
        assert!(s.is_empty().unwrap());
        s.learn_topic("secret/club").unwrap();
        let mut c = Counts::new();
        c.insert(Refusal::Forged, 3);
        s.add_refused(&c).unwrap();
        s.add_refused(&c).unwrap();
        s.add_refused(&Counts::new()).unwrap();
        drop((s, state));
        let state = State::open(d.path()).unwrap();
        let s = AnnounceStore::open(&state).unwrap();
        assert_eq!(s.refused().unwrap()[&Refusal::Forged], 6);
        assert_eq!(s.learned_topics().unwrap(), ["secret/club"]);
        assert_eq!(s.trust(&pk).unwrap(), Trust::Blocked);
        assert!(s.unsubscribe("media/**").unwrap() && !s.unsubscribe("media/**").unwrap());
        assert_eq!(s.trust(&[0; 32]).unwrap(), Trust::Unknown);
    }
}
