//! The exclusion rule between writers and `gc`. Every operation that stores blocks or adds a reference
//! to blocks (a put, a seal, a share, a receive, a pin, a sync upload, a tree import) holds a [`Hold`]
//! from before it chooses its first randomizer or stores its first block until the reference that keeps
//! those blocks (a pin or a tree record) is committed. `gc` takes the gate exclusively for its whole mark
//! and sweep, so it never sees a block that a running write has stored or chosen and not yet referenced.
//!
//! Holds are taken once per operation at its entry point and passed down as `&Hold`; functions that
//! store blocks take one as a witness, so the compiler checks that no write runs outside a hold. A task
//! must never wait for a second hold while it owns one: the gate is fair, so a waiting `gc` would stop
//! the second one and the first would never be released.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The gate of one repository.
#[derive(Default)]
pub struct Gate {
    lock: Arc<RwLock<()>>,
    holds: Arc<AtomicUsize>,
}

/// Proof that the holder's blocks are safe from `gc` until it is dropped.
pub struct Hold {
    _guard: OwnedRwLockReadGuard<()>,
    holds: Arc<AtomicUsize>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.holds.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

/// Exclusive use of the repository's blocks, for `gc`.
pub struct Exclusive {
    _guard: OwnedRwLockWriteGuard<()>,
}

impl Gate {
    /// A hold for one writing operation; waits while `gc` runs (or waits to run).
    pub async fn hold(&self) -> Hold {
        let guard = self.lock.clone().read_owned().await;
        self.holds.fetch_add(1, Ordering::Relaxed);
        Hold {
            _guard: guard,
            holds: self.holds.clone(),
        }
    }

    /// How many holds are alive now.
    pub fn holds(&self) -> usize {
        self.holds.load(Ordering::Relaxed)
    }

    /// Waits until no hold is alive and takes the gate; new holds wait until it is dropped.
    /// `waiting` is told the number of live holds once if there are any.
    pub async fn exclusive(&self, waiting: &(dyn Fn(usize) + Sync)) -> Exclusive {
        match self.lock.clone().try_write_owned() {
            Ok(guard) => Exclusive { _guard: guard },
            Err(_) => {
                waiting(self.holds());
                Exclusive {
                    _guard: self.lock.clone().write_owned().await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exclusive_waits_for_holds_and_holds_wait_for_exclusive() {
        let gate = Arc::new(Gate::default());
        let h = gate.hold().await;
        assert_eq!(gate.holds(), 1);
        let told = Arc::new(AtomicUsize::new(0));
        let (g, t) = (gate.clone(), told.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ex = tokio::spawn(async move {
            let e = g
                .exclusive(&|n| {
                    t.store(n, Ordering::SeqCst);
                })
                .await;
            let _ = tx.send(());
            // While exclusive, a new hold cannot be had.
            assert!(g.lock.clone().try_read_owned().is_err());
            drop(e);
        });
        // The exclusive side said it waits for one hold before it could finish.
        tokio::task::yield_now().await;
        while told.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(told.load(Ordering::SeqCst), 1);
        drop(h);
        rx.await.unwrap();
        ex.await.unwrap();
        assert_eq!(gate.holds(), 0);
        // No holds: exclusive is immediate and says nothing.
        let e = gate.exclusive(&|_| panic!("no hold to wait for")).await;
        drop(e);
        let _h = gate.hold().await;
    }
}
