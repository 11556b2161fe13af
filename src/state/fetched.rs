//! Recording blocks fetched from peers: the store stack reports each one ([`FetchObserver`]); this
//! gathers them and writes their records in groups (one transaction per [`GROUP`] blocks, and whatever
//! is left when flushed or dropped), so a fetch at network speed does not cost a commit per block.
//! A record lost in a crash only makes `gc` remove that block sooner: it is fetched again when needed.

use std::sync::{Arc, Mutex};

use super::State;
use crate::block::BlockId;
use crate::store::FetchObserver;
use crate::Result;

/// Blocks per write transaction.
pub const GROUP: usize = 64;

/// The fetched blocks not yet recorded, and the state they go to.
pub struct FetchedLog {
    state: Arc<State>,
    pending: Mutex<Vec<BlockId>>,
}

impl FetchedLog {
    /// A log writing to `state`.
    pub fn new(state: Arc<State>) -> Self {
        FetchedLog {
            state,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Records every block reported so far.
    pub fn flush(&self) -> Result<()> {
        let ids = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        self.state.record_fetched(&ids, crate::clock::now_secs())
    }

    /// [`FetchedLog::flush`] where no caller can take the error: it is logged.
    fn flush_or_warn(&self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "could not record fetched blocks (gc may remove them sooner)");
        }
    }
}

impl FetchObserver for FetchedLog {
    fn fetched(&self, id: &BlockId) {
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.push(*id);
            pending.len() >= GROUP
        };
        if full {
            self.flush_or_warn();
        }
    }
}

impl Drop for FetchedLog {
    fn drop(&mut self) {
        self.flush_or_warn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::BlockKind;

    #[test]
    fn records_in_groups_and_what_is_left_on_flush_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let log = FetchedLog::new(state.clone());
        let ids: Vec<BlockId> = (0..GROUP as u32 + 3)
            .map(|i| BlockId::of(&i.to_le_bytes()))
            .collect();
        for id in &ids[..GROUP - 1] {
            log.fetched(id);
        }
        assert_eq!(
            state.totals().unwrap().fetched_blocks,
            0,
            "not a commit per block"
        );
        log.fetched(&ids[GROUP - 1]);
        assert_eq!(state.totals().unwrap().fetched_blocks, GROUP as u64);
        log.fetched(&ids[GROUP]);
        log.flush().unwrap();
        assert_eq!(state.totals().unwrap().fetched_blocks, GROUP as u64 + 1);
        log.fetched(&ids[GROUP + 1]);
        log.fetched(&ids[GROUP + 2]);
        drop(log);
        let t = state.totals().unwrap();
        assert_eq!((t.blocks, t.fetched_blocks), (GROUP as u64 + 3, GROUP as u64 + 3));
        let rec = state.block(&ids[0]).unwrap().unwrap();
        assert_eq!(rec.kind, BlockKind::Fetched);
        assert!(rec.since > 1_700_000_000);
    }
}
