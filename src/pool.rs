//! The randomizer pool: the blocks a repository holds that may serve as randomizers, and the choice of a
//! tuple's randomizer set, weighted toward popular blocks (an urn in which a block appears once more each
//! time it is used, up to a cap) and never repeating a set.

use std::collections::HashSet;

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::block::BlockId;

/// How many urn entries one block can have: the most a popular block outweighs a new one.
pub const WEIGHT_CAP: u64 = 32;
/// Draws tried before the pool is declared too small for a new set.
const ATTEMPTS: usize = 24;

/// The identity of a randomizer set: SHA-256 over its ids in sorted order, so order does not matter.
pub fn set_key(ids: &[BlockId]) -> [u8; 32] {
    let mut sorted: Vec<&BlockId> = ids.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    h.update(b"noisefs-v1 randomizer set");
    for id in sorted {
        h.update(id.digest());
    }
    h.finalize().into()
}

/// Blocks available as randomizers, with popularity weights.
#[derive(Default)]
pub struct Pool {
    ids: Vec<BlockId>,
    weights: Vec<u64>,
    urn: Vec<u32>,
    known: HashSet<BlockId>,
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct blocks.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the pool holds no block.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a block with its popularity so far. Adding a block twice does nothing.
    pub fn add(&mut self, id: BlockId, popularity: u64) {
        if !self.known.insert(id) {
            return;
        }
        let idx = self.ids.len() as u32;
        let weight = (1 + popularity).min(WEIGHT_CAP);
        self.ids.push(id);
        self.weights.push(weight);
        for _ in 0..weight {
            self.urn.push(idx);
        }
    }

    /// Chooses `n` distinct blocks whose set `is_used` rejects neither now nor earlier, and counts the use.
    /// `None` when the pool is too small to find a fresh set: the caller then adds a fresh random block.
    pub fn choose(
        &mut self,
        n: usize,
        rng: &mut impl Rng,
        is_used: impl Fn(&[u8; 32]) -> bool,
    ) -> Option<Vec<BlockId>> {
        if self.ids.len() < n {
            return None;
        }
        for _ in 0..ATTEMPTS {
            let mut picked: Vec<u32> = Vec::with_capacity(n);
            let mut tries = 0;
            while picked.len() < n && tries < 8 * n {
                tries += 1;
                let idx = self.urn[rng.gen_range(0..self.urn.len())];
                if !picked.contains(&idx) {
                    picked.push(idx);
                }
            }
            if picked.len() < n {
                continue;
            }
            let set: Vec<BlockId> = picked.iter().map(|&i| self.ids[i as usize]).collect();
            if is_used(&set_key(&set)) {
                continue;
            }
            for &i in &picked {
                let w = &mut self.weights[i as usize];
                if *w < WEIGHT_CAP {
                    *w += 1;
                    self.urn.push(i);
                }
            }
            return Some(set);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn id(i: u32) -> BlockId {
        BlockId::of(&i.to_le_bytes())
    }

    #[test]
    fn set_key_ignores_order() {
        assert_eq!(set_key(&[id(1), id(2)]), set_key(&[id(2), id(1)]));
        assert_ne!(set_key(&[id(1), id(2)]), set_key(&[id(1), id(3)]));
    }

    #[test]
    fn too_small_pools_refuse() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut pool = Pool::new();
        assert!(pool.is_empty());
        assert!(pool.choose(2, &mut rng, |_| false).is_none());
        pool.add(id(1), 0);
        pool.add(id(1), 0);
        assert_eq!(pool.len(), 1);
        assert!(pool.choose(2, &mut rng, |_| false).is_none());
        pool.add(id(2), 0);
        let set = pool.choose(2, &mut rng, |_| false).unwrap();
        assert_eq!(set.len(), 2);
        assert_ne!(set[0], set[1]);
        // The only possible set is used: the pool is too small.
        assert!(pool.choose(2, &mut rng, |_| true).is_none());
    }

    #[test]
    fn never_repeats_a_set_and_favours_popular_blocks() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut pool = Pool::new();
        for i in 0..50 {
            pool.add(id(i), if i == 0 { 100 } else { 0 });
        }
        let mut used = HashSet::new();
        let mut hot = 0;
        for _ in 0..300 {
            let set = pool
                .choose(2, &mut rng, |k| used.contains(k))
                .expect("50 blocks give 1225 sets");
            assert!(used.insert(set_key(&set)));
            if set.contains(&id(0)) {
                hot += 1;
            }
        }
        // A uniform choice would include block 0 in about 12 of 300 sets; starting at the cap weight it
        // must be chosen at least twice as often.
        assert!(hot > 24, "popular block chosen {hot} times of 300");
    }
}
