//! Resilience around a backend: every call gets a timeout, transient failures are retried with
//! exponential backoff and jitter, and a circuit breaker (closed / open / half-open) stops calling a
//! backend that keeps failing until a probe succeeds. Its state is reported for `noisefs status`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{BlockSource, LocalStore, StoreStats};
use crate::block::{Block, BlockId};
use crate::{Error, Result};

/// Settings of [`ResilientStore`] (`[store]` in `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resilience {
    /// Longest one call may take, in ms.
    pub timeout_ms: u64,
    /// Retries after a transient failure.
    pub retries: u32,
    /// First backoff, doubled per retry, in ms.
    pub backoff_ms: u64,
    /// Longest backoff, in ms.
    pub backoff_max_ms: u64,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting a probe through, in ms.
    pub breaker_open_ms: u64,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            timeout_ms: 30_000,
            retries: 3,
            backoff_ms: 50,
            backoff_max_ms: 2_000,
            breaker_failures: 5,
            breaker_open_ms: 10_000,
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What `status` shows about one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerStatus {
    pub store: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    pub consecutive_failures: u32,
    pub failures: u64,
    pub retries: u64,
    pub last_error: Option<String>,
}

struct Breaker {
    state: State,
    consecutive: u32,
    failures: u64,
    retries: u64,
    last_error: Option<String>,
}

/// A store that makes `inner` resilient: a [`BlockSource`] over a source, a [`LocalStore`] over a local
/// store.
pub struct ResilientStore<S: ?Sized = dyn LocalStore> {
    name: String,
    inner: Arc<S>,
    cfg: Resilience,
    /// Hash what the backend returns (for backends that do not verify, such as the network).
    verify: bool,
    breaker: Mutex<Breaker>,
}

/// How a call ended, for the breaker.
enum Outcome {
    /// The backend answered (even "missing").
    Answered,
    /// Worth another try; counts against the backend.
    Transient,
    /// Worth another try (the bytes were bad); does not count against the backend.
    Retry,
}

fn classify(e: &Error) -> Outcome {
    match e {
        Error::Io { .. } | Error::Task(_) | Error::Unavailable { .. } => Outcome::Transient,
        Error::CorruptBlock { .. } => Outcome::Retry,
        _ => Outcome::Answered,
    }
}

impl<S: ?Sized> ResilientStore<S> {
    /// Wraps `inner`, named `name` in messages and status. With `verify`, every block returned is
    /// checked against its id here too (for backends whose bytes cross a network or a test double);
    /// the disk store verifies on its own.
    pub fn new(name: &str, inner: Arc<S>, cfg: Resilience, verify: bool) -> Self {
        ResilientStore {
            name: name.to_string(),
            inner,
            cfg,
            verify,
            breaker: Mutex::new(Breaker {
                state: State::Closed,
                consecutive: 0,
                failures: 0,
                retries: 0,
                last_error: None,
            }),
        }
    }

    /// The breaker's state and counters.
    pub fn status(&self) -> BreakerStatus {
        let b = self.lock();
        BreakerStatus {
            store: self.name.clone(),
            state: match b.state {
                State::Closed => "closed",
                State::Open { until } if Instant::now() < until => "open",
                State::Open { .. } | State::HalfOpen { .. } => "half-open",
            }
            .into(),
            consecutive_failures: b.consecutive,
            failures: b.failures,
            retries: b.retries,
            last_error: b.last_error.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets a call through, or refuses it while the breaker is open (one probe when half-open).
    fn admit(&self) -> Result<bool> {
        let mut b = self.lock();
        match b.state {
            State::Closed => Ok(false),
            State::Open { until } if Instant::now() < until => Err(self.unavailable(&b)),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                b.state = State::HalfOpen { probing: true };
                Ok(true)
            }
            State::HalfOpen { probing: true } => Err(self.unavailable(&b)),
        }
    }

    fn unavailable(&self, b: &Breaker) -> Error {
        Error::Unavailable {
            store: self.name.clone(),
            reason: format!(
                "circuit breaker open after {} failures; last: {}",
                b.consecutive,
                b.last_error.as_deref().unwrap_or("unknown")
            ),
        }
    }

    fn record(&self, ok: bool, error: Option<String>) {
        let mut b = self.lock();
        if ok {
            b.state = State::Closed;
            b.consecutive = 0;
            return;
        }
        b.consecutive += 1;
        b.failures += 1;
        b.last_error = error;
        let probe_failed = matches!(b.state, State::HalfOpen { .. });
        if probe_failed || b.consecutive >= self.cfg.breaker_failures {
            if b.state == State::Closed || probe_failed {
                tracing::warn!(store = %self.name, failures = b.consecutive, "circuit breaker opened");
            }
            b.state = State::Open {
                until: Instant::now() + Duration::from_millis(self.cfg.breaker_open_ms),
            };
        }
    }

    /// The pause before retry `attempt` (0-based): exponential, capped, with jitter in [0.5, 1.5).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .cfg
            .backoff_ms
            .saturating_mul(1u64 << attempt.min(20))
            .min(self.cfg.backoff_max_ms);
        Duration::from_millis((base as f64 * (0.5 + rand::random::<f64>())) as u64)
    }

    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let probe = self.admit()?;
            let timeout = Duration::from_millis(self.cfg.timeout_ms);
            let result = match tokio::time::timeout(timeout, op()).await {
                Ok(r) => r,
                Err(_) => Err(Error::Unavailable {
                    store: self.name.clone(),
                    reason: format!("{what} timed out after {} ms", self.cfg.timeout_ms),
                }),
            };
            let err = match result {
                Ok(v) => {
                    self.record(true, None);
                    return Ok(v);
                }
                Err(e) => e,
            };
            match classify(&err) {
                Outcome::Answered => {
                    self.record(true, None);
                    return Err(err);
                }
                Outcome::Transient => self.record(false, Some(err.to_string())),
                Outcome::Retry if probe => self.record(true, None),
                Outcome::Retry => {}
            }
            if attempt >= self.cfg.retries {
                return Err(err);
            }
            self.lock().retries += 1;
            tracing::debug!(store = %self.name, what, attempt, error = %err, "retrying");
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }
}

#[async_trait]
impl<S: BlockSource + ?Sized> BlockSource for ResilientStore<S> {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        self.call("get", || async {
            let b = self.inner.get(id).await?;
            if self.verify {
                let actual = BlockId::of(&b);
                if actual != *id {
                    return Err(Error::CorruptBlock { id: *id, actual });
                }
            }
            Ok(b)
        })
        .await
    }

    async fn has(&self, id: &BlockId) -> Result<bool> {
        self.call("has", || self.inner.has(id)).await
    }

    fn verifies(&self) -> bool {
        self.verify || self.inner.verifies()
    }
}

#[async_trait]
impl<S: LocalStore + ?Sized> LocalStore for ResilientStore<S> {
    async fn put(&self, id: BlockId, data: Block) -> Result<()> {
        self.call("put", || self.inner.put(id, data.clone())).await
    }

    async fn delete(&self, id: &BlockId) -> Result<()> {
        self.call("delete", || self.inner.delete(id)).await
    }

    async fn list(&self) -> Result<Vec<BlockId>> {
        self.call("list", || self.inner.list()).await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.call("stats", || self.inner.stats()).await
    }

    async fn flush(&self) -> Result<()> {
        self.call("flush", || self.inner.flush()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FaultyStore, MemoryStore};

    fn quick() -> Resilience {
        Resilience {
            timeout_ms: 200,
            retries: 2,
            backoff_ms: 1,
            backoff_max_ms: 4,
            breaker_failures: 3,
            breaker_open_ms: 60_000,
        }
    }

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let store = ResilientStore::new("memory", Arc::new(MemoryStore::new()), quick(), true);
        crate::store::suite::run(&store).await;
        assert_eq!(store.status().state, "closed");
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let store = ResilientStore::new("faulty", faulty.clone(), quick(), true);
        let b = Block::from(vec![9u8; 4096]);
        let id = BlockId::of(&b);
        faulty.fail_next(2);
        store.put(id, b.clone()).await.unwrap();
        let s = store.status();
        assert_eq!((s.retries, s.failures, s.state.as_str()), (2, 2, "closed"));
        assert!(s.last_error.unwrap().contains("injected"));
        // Corrupt bytes are caught and fetched again; a missing block is an answer, not a failure.
        faulty.corrupt_next(1);
        assert_eq!(store.get(&id).await.unwrap(), b);
        let missing = BlockId::of(b"none");
        assert!(matches!(
            store.get(&missing).await,
            Err(Error::MissingBlock { .. })
        ));
        assert_eq!(store.status().consecutive_failures, 0);
        // Always-corrupt data ends in the corruption error after the retries.
        faulty.corrupt_next(10);
        assert!(matches!(store.get(&id).await, Err(Error::CorruptBlock { .. })));
    }

    #[tokio::test]
    async fn breaker_opens_refuses_and_recovers_through_a_probe() {
        let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let mut cfg = quick();
        cfg.breaker_open_ms = 50;
        let store = ResilientStore::new("faulty", faulty.clone(), cfg, true);
        faulty.set_failing(true);
        let err = store.stats().await.unwrap_err();
        assert!(err.to_string().contains("injected") || err.to_string().contains("breaker"));
        assert_eq!(store.status().state, "open");
        let calls = faulty.calls();
        // While open, calls are refused without reaching the backend.
        let err = store.list().await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
        assert_eq!(err.errno(), libc::EIO);
        assert_eq!(faulty.calls(), calls);
        // After the open period one probe goes through; it fails, so the breaker opens again.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(store.status().state, "half-open");
        assert!(store.list().await.is_err());
        assert_eq!(faulty.calls(), calls + 1);
        assert_eq!(store.status().state, "open");
        // The backend heals: the next probe succeeds and closes the breaker.
        faulty.set_failing(false);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(store.list().await.unwrap().is_empty());
        assert_eq!(store.status().state, "closed");
    }

    #[tokio::test]
    async fn stalls_time_out_and_backoff_grows_with_jitter() {
        let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let mut cfg = quick();
        cfg.timeout_ms = 20;
        cfg.retries = 0;
        let store = ResilientStore::new("slow", faulty.clone(), cfg, true);
        faulty.stall(Duration::from_secs(5));
        let err = store.has(&BlockId::of(b"x")).await.unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        faulty.stall(Duration::ZERO);
        assert!(!store.has(&BlockId::of(b"x")).await.unwrap());
        store.delete(&BlockId::of(b"x")).await.unwrap();
        store.flush().await.unwrap();
        let store = ResilientStore::new("b", faulty, Resilience::default(), true);
        for attempt in 0..8 {
            let d = store.backoff(attempt).as_millis() as u64;
            let base = (50u64 << attempt).min(2000);
            assert!(d >= base / 2 && d < base * 3 / 2 + 1, "attempt {attempt}: {d} ms");
        }
    }
}
