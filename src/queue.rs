//! The persistent operation queue: work waiting to run (seal a staged file, one step of a folder sync),
//! kept in LMDB so it survives a crash and resumes. Each item has a kind, a key that makes pushing it
//! again idempotent, a payload, the time it may run next, and its attempts and last error for `status`.

use heed::byteorder::BE;
use heed::types::{Bytes, Str, U64};
use heed::{Database, RwTxn};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::clock::now_ms;
use crate::state::State;
use crate::{Error, Result};

/// One queued operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Position in the queue (older first).
    pub seq: u64,
    /// What runs it, e.g. `seal` or `sync`.
    pub kind: String,
    /// Pushing an item whose key is queued replaces that item instead of adding one.
    pub key: String,
    /// The kind's own description of the work.
    pub payload: ByteBuf,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Milliseconds since the epoch before which it does not run.
    pub not_before: i64,
}

/// The queue's databases inside the repository state.
#[derive(Clone)]
pub struct Queue {
    env: heed::Env,
    items: Database<U64<BE>, Bytes>,
    keys: Database<Str, U64<BE>>,
}

/// The key under which the next sequence number is kept (no item key starts with NUL).
const NEXT_SEQ: &str = "\0next";

impl Queue {
    /// Opens the queue in `state`.
    pub fn open(state: &State) -> Result<Queue> {
        Ok(Queue {
            env: state.env().clone(),
            items: state.database("queue_items")?,
            keys: state.database("queue_keys")?,
        })
    }

    /// Queues work of `kind` under `key`, runnable `delay_ms` from now. An item with the same key is
    /// replaced (its attempts start over). Returns the item's sequence number.
    pub fn push(&self, kind: &str, key: &str, payload: &[u8], delay_ms: i64) -> Result<u64> {
        let mut wtxn = self.env.write_txn()?;
        let seq = self.push_in(&mut wtxn, kind, key, payload, delay_ms)?;
        wtxn.commit()?;
        Ok(seq)
    }

    /// [`Queue::push`] inside a caller's transaction.
    pub fn push_in(
        &self,
        wtxn: &mut RwTxn,
        kind: &str,
        key: &str,
        payload: &[u8],
        delay_ms: i64,
    ) -> Result<u64> {
        if let Some(old) = self.keys.get(wtxn, key)? {
            self.items.delete(wtxn, &old)?;
        }
        // Sequence numbers are never reused, so a stale `complete` cannot remove newer work.
        let seq = self.keys.get(wtxn, NEXT_SEQ)?.unwrap_or(1);
        self.keys.put(wtxn, NEXT_SEQ, &(seq + 1))?;
        let item = Item {
            seq,
            kind: kind.to_string(),
            key: key.to_string(),
            payload: ByteBuf::from(payload.to_vec()),
            attempts: 0,
            last_error: None,
            not_before: now_ms() + delay_ms,
        };
        self.items
            .put(wtxn, &seq, &crate::descriptor::node::encode(&item))?;
        self.keys.put(wtxn, key, &seq)?;
        Ok(seq)
    }

    /// Like [`Queue::push_in`], but an identical item already queued under `key` is left as it is, with
    /// its attempts and retry time (planning the same work again does not skip its backoff).
    pub fn offer_in(&self, wtxn: &mut RwTxn, kind: &str, key: &str, payload: &[u8]) -> Result<u64> {
        if let Some(seq) = self.keys.get(wtxn, key)? {
            if let Some(bytes) = self.items.get(wtxn, &seq)? {
                let item = decode(seq, bytes)?;
                if item.kind == kind && item.payload.as_slice() == payload {
                    return Ok(seq);
                }
            }
        }
        self.push_in(wtxn, kind, key, payload, 0)
    }

    /// The keys queued under `prefix` with their sequence numbers, inside a caller's transaction.
    pub fn keys_in(&self, wtxn: &RwTxn, prefix: &str) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for item in self.keys.prefix_iter(wtxn, prefix)? {
            let (k, seq) = item?;
            out.push((k.to_string(), seq));
        }
        Ok(out)
    }

    /// The oldest item of `kind` (any kind when `None`) that may run at `now` (ms).
    pub fn next_ready(&self, kind: Option<&str>, now: i64) -> Result<Option<Item>> {
        let rtxn = self.env.read_txn()?;
        for entry in self.items.iter(&rtxn)? {
            let (seq, bytes) = entry?;
            let item = decode(seq, bytes)?;
            if item.not_before <= now && kind.is_none_or(|k| k == item.kind) {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }

    /// The first item after sequence number `after` for which `ready` holds (a cursor over the queue, so
    /// a run over many items reads each once).
    pub fn next_after(&self, after: u64, ready: impl Fn(&Item) -> bool) -> Result<Option<Item>> {
        let rtxn = self.env.read_txn()?;
        for entry in self.items.range(&rtxn, &(after.saturating_add(1)..))? {
            let (seq, bytes) = entry?;
            let item = decode(seq, bytes)?;
            if ready(&item) {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }

    /// When the earliest waiting item may run (ms), if any is queued.
    pub fn next_due(&self) -> Result<Option<i64>> {
        let rtxn = self.env.read_txn()?;
        let mut due: Option<i64> = None;
        for entry in self.items.iter(&rtxn)? {
            let (seq, bytes) = entry?;
            let t = decode(seq, bytes)?.not_before;
            due = Some(due.map_or(t, |d| d.min(t)));
        }
        Ok(due)
    }

    /// Removes a finished item (an item replaced meanwhile under the same key stays).
    pub fn complete(&self, seq: u64) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.complete_in(&mut wtxn, seq)?;
        wtxn.commit()?;
        Ok(())
    }

    /// [`Queue::complete`] inside a caller's transaction, so the work's effect and its removal from the
    /// queue commit together.
    pub fn complete_in(&self, wtxn: &mut RwTxn, seq: u64) -> Result<()> {
        if let Some(bytes) = self.items.get(wtxn, &seq)? {
            let item = decode(seq, bytes)?;
            if self.keys.get(wtxn, &item.key)? == Some(seq) {
                self.keys.delete(wtxn, &item.key)?;
            }
            self.items.delete(wtxn, &seq)?;
        }
        Ok(())
    }

    /// Records a failed attempt and holds the item back for `retry_ms`.
    pub fn fail(&self, seq: u64, error: &str, retry_ms: i64) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        if let Some(bytes) = self.items.get(&wtxn, &seq)? {
            let mut item = decode(seq, bytes)?;
            item.attempts += 1;
            item.last_error = Some(error.to_string());
            item.not_before = now_ms() + retry_ms;
            self.items
                .put(&mut wtxn, &seq, &crate::descriptor::node::encode(&item))?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// Every queued item, oldest first.
    pub fn list(&self) -> Result<Vec<Item>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for entry in self.items.iter(&rtxn)? {
            let (seq, bytes) = entry?;
            out.push(decode(seq, bytes)?);
        }
        Ok(out)
    }

    /// How many items are queued.
    pub fn len(&self) -> Result<u64> {
        let rtxn = self.env.read_txn()?;
        Ok(self.items.len(&rtxn)?)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

fn decode(seq: u64, bytes: &[u8]) -> Result<Item> {
    ciborium::from_reader(bytes).map_err(|e| Error::Config {
        path: format!("state/queue_items/{seq}").into(),
        reason: format!("unreadable queue item: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_replace_fail_complete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let q = Queue::open(&state).unwrap();
        assert!(q.is_empty().unwrap());
        let a = q.push("seal", "seal/5", b"5", 0).unwrap();
        let b = q.push("sync", "sync/1/x", b"x", 60_000).unwrap();
        assert_eq!(q.len().unwrap(), 2);
        // Only `a` is due now; `b` waits a minute.
        assert_eq!(q.next_ready(None, now_ms()).unwrap().unwrap().seq, a);
        assert!(q.next_ready(Some("sync"), now_ms()).unwrap().is_none());
        assert!(q.next_due().unwrap().unwrap() <= now_ms());
        // Pushing the same key again replaces it and moves it to the back.
        let a2 = q.push("seal", "seal/5", b"5", 0).unwrap();
        assert!(a2 > b);
        assert_eq!(q.len().unwrap(), 2);
        q.fail(a2, "disk full", 0).unwrap();
        let item = q.next_ready(Some("seal"), now_ms()).unwrap().unwrap();
        assert_eq!(
            (item.attempts, item.last_error.as_deref()),
            (1, Some("disk full"))
        );
        // Completing an old sequence number leaves the newer item under the key alone.
        q.complete(a).unwrap();
        assert_eq!(q.len().unwrap(), 2);
        drop(q);
        drop(state);
        // The queue survives a reopen (a crash or restart) with everything in it.
        let state = State::open(dir.path()).unwrap();
        let q = Queue::open(&state).unwrap();
        let items = q.list().unwrap();
        assert_eq!(items.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![b, a2]);
        q.complete(a2).unwrap();
        q.complete(b).unwrap();
        assert!(q.is_empty().unwrap());
        assert!(q.next_due().unwrap().is_none());
        assert!(q.push("seal", "seal/5", b"5", 0).unwrap() > a2);
        // Offering identical work keeps the queued item (and its backoff); different work replaces it.
        let env = state.env().clone();
        let mut w = env.write_txn().unwrap();
        let s1 = q.push_in(&mut w, "sync", "k", b"p", 0).unwrap();
        assert_eq!(q.offer_in(&mut w, "sync", "k", b"p").unwrap(), s1);
        assert!(q.offer_in(&mut w, "sync", "k", b"q").unwrap() > s1);
        w.commit().unwrap();
    }
}
