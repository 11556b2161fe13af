//! Announcements: a publisher says "this link, under this topic, with these tags", signed by a
//! publisher key; subscribers receive them live over gossipsub and, after being offline, by asking
//! connected peers (catch-up); `discover` searches what was received. Module map: [`topic`] (names,
//! patterns, hashes), [`format`] (the signed CBOR message), [`check`] (checks without I/O),
//! [`store`] (LMDB), [`query`] (discover), [`keys`] (publisher keys), [`service`] (the owner's task
//! on the network). [`Announcements`] is the front the CLI and the mount use.

pub mod check;
pub mod format;
pub mod keys;
pub mod query;
pub mod service;
pub mod store;
pub mod topic;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::{now_ms, now_secs};
use crate::network::Network;
use crate::state::State;
use crate::{Error, Result};

pub use check::{Checker, Counts, Limits, Refusal};
pub use format::{Announcement, Body, Category};
pub use query::{Hit, Names, Query};
pub use store::{AnnounceStore, Inserted, Publisher, Trust};
pub use topic::Pattern;

/// Longest TTL a publisher may ask for, in seconds (the receivers' bound).
pub const MAX_TTL: u32 = 30 * 86_400;

/// What a publisher announces.
#[derive(Debug, Clone)]
pub struct Draft {
    pub link: crate::descriptor::Link,
    pub title: String,
    pub topic: String,
    pub tags: Vec<String>,
    pub ttl: u32,
    /// Leave the key out (give it out of band).
    pub private: bool,
    pub folder: bool,
    pub size: u64,
    pub media_type: String,
    pub category: Option<Category>,
    /// The pseudonym to sign as.
    pub publisher: String,
}

/// What `status` shows of announcements.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub stored: u64,
    pub subscriptions: usize,
    pub refused: std::collections::BTreeMap<&'static str, u64>,
}

/// The announcements of one repository: the store, the checks, and (when the network is on) the
/// service that receives and serves them.
pub struct Announcements {
    root: PathBuf,
    store: AnnounceStore,
    checker: Mutex<Checker>,
    network: Option<Arc<Network>>,
    /// New announcements stored, for `subscribe --follow` and the mount.
    arrivals: tokio::sync::broadcast::Sender<[u8; 32]>,
    /// Woken when subscriptions change, so the service joins and catches up.
    changed: tokio::sync::Notify,
    service: tokio::sync::OnceCell<()>,
}

impl Announcements {
    /// Opens the announcements of the repository at `root` with state `state`.
    pub fn open(root: PathBuf, state: &State, network: Option<Arc<Network>>) -> Result<Announcements> {
        Ok(Announcements {
            root,
            store: AnnounceStore::open(state)?,
            checker: Mutex::new(Checker::new(Limits::default())),
            network,
            arrivals: tokio::sync::broadcast::channel(1024).0,
            changed: tokio::sync::Notify::new(),
            service: tokio::sync::OnceCell::new(),
        })
    }

    /// The store.
    pub fn store(&self) -> &AnnounceStore {
        &self.store
    }

    fn checker(&self) -> std::sync::MutexGuard<'_, Checker> {
        self.checker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Topic names known here.
    pub fn names(&self) -> Result<Names> {
        Names::load(&self.store)
    }

    /// Subscribes to `pattern`; false when subscribed already.
    pub fn subscribe(&self, pattern: &str) -> Result<(Pattern, bool)> {
        let p: Pattern = pattern.parse()?;
        let new = self.store.subscribe(p.as_str(), now_ms())?;
        self.changed.notify_one();
        Ok((p, new))
    }

    /// Unsubscribes from `pattern`; false when not subscribed.
    pub fn unsubscribe(&self, pattern: &str) -> Result<bool> {
        let p: Pattern = pattern.parse()?;
        let gone = self.store.unsubscribe(p.as_str())?;
        self.changed.notify_one();
        Ok(gone)
    }

    /// The subscriptions, parsed (a stored pattern that no longer parses is left out).
    pub fn patterns(&self) -> Result<Vec<Pattern>> {
        Ok(self
            .store
            .subscriptions()?
            .into_iter()
            .filter_map(|(s, _)| s.parse().ok())
            .collect())
    }

    /// Whether a stored announcement's topic matches a subscription.
    fn wanted(&self, levels: &[topic::LevelHash]) -> Result<bool> {
        let names = self.names()?;
        let patterns = self.patterns()?;
        Ok(patterns.iter().any(|p| names.matcher(p).matches(levels)))
    }

    /// Checks and stores `bytes` forwarded by `peer` on the topic of first level `wire` (`live` by
    /// gossipsub, else by catch-up); the verdict says whether to forward it.
    pub fn receive(
        &self,
        bytes: &[u8],
        peer: Option<&str>,
        wire: Option<&topic::LevelHash>,
        live: bool,
    ) -> Result<crate::network::Verdict> {
        use crate::network::Verdict;
        let blocked = |k: &[u8; 32]| matches!(self.store.trust(k), Ok(Trust::Blocked));
        let admitted = self
            .checker()
            .admit(bytes, peer.map(str::as_bytes), wire, live, now_ms(), &blocked);
        let a = match admitted {
            Ok(a) => a,
            Err(r) if r.is_invalid() => return Ok(Verdict::Reject),
            Err(_) => return Ok(Verdict::Ignore),
        };
        if !self.wanted(&a.body.levels())? {
            // Valid but not followed here: passed on, not kept.
            return Ok(Verdict::Accept);
        }
        let cap = self.checker().limits.per_topic;
        match self.store.insert(&a, now_ms(), cap)? {
            Inserted::Replay => {
                // Catch-up answers overlap (several peers, asked again after a reconnect): only a
                // replay on the live topic is a refusal.
                if live {
                    self.checker().refuse(Refusal::Replay);
                }
                Ok(Verdict::Ignore)
            }
            Inserted::New { .. } => {
                let _ = self.arrivals.send(a.id());
                Ok(Verdict::Accept)
            }
        }
    }

    /// Makes, signs and stores an announcement of `d`, then publishes it when the network is on
    /// (waiting up to `wait` for a peer that follows its topic). Returns it and whether peers got it.
    pub async fn announce(&self, d: Draft, wait: std::time::Duration) -> Result<(Announcement, bool)> {
        let name = topic::normalize(&d.topic)?;
        if d.ttl < check::Limits::default().min_ttl || d.ttl > MAX_TTL {
            return Err(Error::Unsupported {
                what: format!("a TTL of {} s", d.ttl),
                reason: "give from 1m to 30d".into(),
            });
        }
        if d.tags.len() > format::MAX_TAGS {
            return Err(Error::Unsupported {
                what: format!("{} tags", d.tags.len()),
                reason: format!("at most {}", format::MAX_TAGS),
            });
        }
        let key = keys::key(&self.root, &d.publisher)?;
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let body = Body {
            v: format::VERSION,
            publisher: key.verifying_key().to_bytes(),
            root: d.link.root.to_string(),
            link: (!d.private).then(|| d.link.to_string()),
            title: d.title.trim().to_string(),
            folder: d.folder,
            topic: topic::levels(&name)
                .into_iter()
                .map(serde_bytes::ByteArray::new)
                .collect(),
            tags: format::Tags::of(&d.tags).0,
            category: d.category.unwrap_or_else(|| {
                if d.folder {
                    Category::Other
                } else {
                    Category::of_media_type(&d.media_type)
                }
            }),
            size_class: format::size_class(d.size),
            media_type: d.media_type.clone(),
            time: now_secs().max(0) as u64,
            ttl: d.ttl,
            nonce,
        };
        let a = body.sign(&key)?;
        self.store.learn_topic(&name)?;
        self.store.insert(&a, now_ms(), self.checker().limits.per_topic)?;
        let _ = self.arrivals.send(a.id());
        let published = match &self.network {
            Some(net) => service::publish(net, &a, wait).await,
            None => false,
        };
        Ok((a, published))
    }

    /// The announcements `q` asks for.
    pub fn discover(&self, q: &Query) -> Result<Vec<Hit>> {
        query::discover(&self.store, &self.names()?, q, now_secs().max(0) as u64)
    }

    /// Ids of announcements stored from now on.
    pub fn arrivals(&self) -> tokio::sync::broadcast::Receiver<[u8; 32]> {
        self.arrivals.subscribe()
    }

    /// The hit of stored announcement `id`, when it is still there.
    pub fn hit(&self, id: &[u8; 32]) -> Result<Option<Hit>> {
        let names = self.names()?;
        self.store.get(id)?.map(|e| Hit::of(&e, &names, 0)).transpose()
    }

    /// Refusals counted, stored and in memory, and what is kept.
    pub fn status(&self) -> Result<Status> {
        let mut refused = self.store.refused()?;
        for (r, n) in &self.checker().refused {
            *refused.entry(*r).or_default() += n;
        }
        Ok(Status {
            stored: self.store.len()?,
            subscriptions: self.store.subscriptions()?.len(),
            refused: refused.into_iter().map(|(r, n)| (r.name(), n)).collect(),
        })
    }

    /// Moves the refusals counted in memory to the store.
    pub fn flush_refused(&self) -> Result<()> {
        let counts = std::mem::take(&mut self.checker().refused);
        self.store.add_refused(&counts)
    }

    /// Starts the service on the network (once; a no-op when the network is off): joins the
    /// subscriptions' topics, judges what arrives, answers and asks for catch-up.
    pub async fn start(self: &Arc<Self>) -> Result<bool> {
        let Some(net) = self.network.clone() else {
            return Ok(false);
        };
        let me = self.clone();
        self.service
            .get_or_try_init(|| async move { service::spawn(me, net).await })
            .await?;
        Ok(true)
    }
}
