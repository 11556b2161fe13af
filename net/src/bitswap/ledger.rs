//! What one peer wants from us, in the order asked: its want list as it stands after each message
//! (adds, cancels, full replacements), bounded so a peer that floods wants costs a fixed amount of
//! memory, with counts of what was refused, sent and received. No I/O: the server task feeds it
//! messages and takes requests from it.

use std::collections::{HashMap, VecDeque};

use super::message::{Entry, WantType};
use crate::cid::Cid;

/// A request to answer: the CID, whether the block itself is wanted, and whether to say dont-have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub cid: Cid,
    pub want: WantType,
    pub send_dont_have: bool,
}

/// One peer's want list and its counters.
#[derive(Debug)]
pub struct Ledger {
    cap: usize,
    order: VecDeque<Cid>,
    wants: HashMap<Cid, Request>,
    /// Wants dropped because the list was full.
    pub refused: u64,
    pub blocks_sent: u64,
    pub bytes_sent: u64,
}

impl Ledger {
    /// A ledger holding at most `cap` wants.
    pub fn new(cap: usize) -> Ledger {
        Ledger {
            cap,
            order: VecDeque::new(),
            wants: HashMap::new(),
            refused: 0,
            blocks_sent: 0,
            bytes_sent: 0,
        }
    }

    /// Applies a message's want list; returns how many wants were refused because the list is full.
    pub fn apply(&mut self, entries: &[Entry], full: bool) -> usize {
        if full {
            self.order.clear();
            self.wants.clear();
        }
        let mut refused = 0;
        for e in entries {
            if e.cancel {
                self.wants.remove(&e.cid);
                continue;
            }
            let req = Request {
                cid: e.cid,
                want: e.want,
                send_dont_have: e.send_dont_have,
            };
            let full_list = self.wants.len() >= self.cap;
            match self.wants.get_mut(&e.cid) {
                // A want-block supersedes a want-have for the same CID.
                Some(have) => {
                    if e.want == WantType::Block {
                        *have = req;
                    }
                }
                None if full_list => refused += 1,
                None => {
                    self.wants.insert(e.cid, req);
                    self.order.push_back(e.cid);
                }
            }
        }
        self.refused += refused as u64;
        // Cancels leave their CIDs in the order; drop them before they add up.
        if self.order.len() > 2 * self.cap.max(1) {
            let mut seen = std::collections::HashSet::new();
            let wants = &self.wants;
            self.order.retain(|c| wants.contains_key(c) && seen.insert(*c));
        }
        refused
    }

    /// The oldest want still standing, taken off the list.
    pub fn pop(&mut self) -> Option<Request> {
        while let Some(cid) = self.order.pop_front() {
            if let Some(req) = self.wants.remove(&cid) {
                return Some(req);
            }
        }
        None
    }

    /// Wants standing.
    pub fn len(&self) -> usize {
        self.wants.len()
    }

    /// Whether no want stands.
    pub fn is_empty(&self) -> bool {
        self.wants.is_empty()
    }

    /// Records a block sent.
    pub fn sent(&mut self, bytes: usize) {
        self.blocks_sent += 1;
        self.bytes_sent += bytes as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u8) -> Cid {
        Cid::v1_of(0x55, &[i])
    }

    #[test]
    fn keeps_order_cancels_upgrades_and_replaces() {
        let mut l = Ledger::new(10);
        assert_eq!(
            l.apply(
                &[
                    Entry::want(cid(1), WantType::Have),
                    Entry::want(cid(2), WantType::Block),
                    Entry::want(cid(3), WantType::Block),
                    Entry::want(cid(1), WantType::Block),
                    Entry::want(cid(2), WantType::Have),
                ],
                false
            ),
            0
        );
        l.apply(&[Entry::cancel(cid(3))], false);
        assert_eq!(l.len(), 2);
        let a = l.pop().unwrap();
        assert_eq!((a.cid, a.want), (cid(1), WantType::Block));
        let b = l.pop().unwrap();
        assert_eq!(
            (b.cid, b.want),
            (cid(2), WantType::Block),
            "a want-have does not downgrade"
        );
        assert!(l.pop().is_none());
        l.apply(&[Entry::want(cid(4), WantType::Have)], false);
        l.apply(&[Entry::want(cid(5), WantType::Have)], true);
        assert_eq!(l.pop().unwrap().cid, cid(5));
        assert!(l.is_empty());
        l.sent(100);
        assert_eq!((l.blocks_sent, l.bytes_sent), (1, 100));
    }

    #[test]
    fn a_flood_is_bounded_and_counted() {
        let mut l = Ledger::new(4);
        let flood: Vec<Entry> = (0..=255).map(|i| Entry::want(cid(i), WantType::Block)).collect();
        assert_eq!(l.apply(&flood, false), 252);
        assert_eq!(l.len(), 4);
        assert_eq!(l.refused, 252);
        // Cancelled entries leave holes in the order that `next` skips.
        l.apply(&[Entry::cancel(cid(0)), Entry::cancel(cid(1))], false);
        assert_eq!(l.pop().unwrap().cid, cid(2));
        // Wanting and cancelling over and over does not grow the order.
        let mut l = Ledger::new(2);
        for _ in 0..100 {
            l.apply(
                &[Entry::want(cid(9), WantType::Block), Entry::cancel(cid(9))],
                false,
            );
        }
        assert!(l.order.len() <= 5);
        assert!(l.pop().is_none());
    }
}
