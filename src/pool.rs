//! The randomizer pool: the blocks a repository holds that may serve as randomizers, and the choice of a
//! tuple's randomizer set, weighted toward popular blocks and never repeating a set.
//!
//! Choice goes in three stages. First, a set drawn from the *hot set*: the most popular blocks, few enough
//! to stay in the block cache, so sealing and reading rarely fetch or rehash a randomizer. When the hot
//! set's combinations run out, one member is drawn from the whole pool instead, and then every member.
//! Whole-pool draws use an urn in which a block appears once more each time it is used, up to a cap.

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
pub struct Pool {
    ids: Vec<BlockId>,
    weights: Vec<u64>,
    urn: Vec<u32>,
    known: HashSet<BlockId>,
    hot: Vec<u32>,
    hot_capacity: usize,
    /// Blocks found missing or corrupt: never chosen again.
    dropped: HashSet<u32>,
}

impl Default for Pool {
    fn default() -> Self {
        Self::new(256)
    }
}

impl Pool {
    /// An empty pool whose hot set holds up to `hot_capacity` blocks. Blocks join the hot set in the order
    /// they are added, so add the most popular first.
    pub fn new(hot_capacity: usize) -> Self {
        Pool {
            ids: Vec::new(),
            weights: Vec::new(),
            urn: Vec::new(),
            known: HashSet::new(),
            hot: Vec::new(),
            hot_capacity,
            dropped: HashSet::new(),
        }
    }

    /// Stops choosing `id` (it turned out missing or corrupt).
    pub fn drop_block(&mut self, id: &BlockId) {
        if let Some(i) = self.ids.iter().position(|x| x == id) {
            self.dropped.insert(i as u32);
        }
    }

    /// Number of blocks in the hot set.
    pub fn hot_len(&self) -> usize {
        self.hot.len()
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
        if self.hot.len() < self.hot_capacity {
            self.hot.push(idx);
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
        // Stage k draws n - k members from the hot set and k from the whole pool.
        for from_pool in 0..=n {
            if self.hot.len() < n - from_pool {
                continue;
            }
            for _ in 0..ATTEMPTS {
                let Some(picked) = self.draw(n, from_pool, rng) else {
                    continue;
                };
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
        }
        None
    }

    /// Draws `n` distinct blocks, `from_pool` of them from the weighted urn and the rest from the hot set.
    fn draw(&self, n: usize, from_pool: usize, rng: &mut impl Rng) -> Option<Vec<u32>> {
        let mut picked: Vec<u32> = Vec::with_capacity(n);
        let mut tries = 0;
        while picked.len() < n && tries < 8 * n {
            tries += 1;
            let idx = if picked.len() < n - from_pool {
                self.hot[rng.gen_range(0..self.hot.len())]
            } else {
                self.urn[rng.gen_range(0..self.urn.len())]
            };
            if !picked.contains(&idx) && !self.dropped.contains(&idx) {
                picked.push(idx);
            }
        }
        (picked.len() == n).then_some(picked)
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
        let mut pool = Pool::default();
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
        let mut pool = Pool::new(0);
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

    #[test]
    fn dropped_blocks_are_never_chosen() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut pool = Pool::new(8);
        for i in 0..3 {
            pool.add(id(i), 0);
        }
        pool.drop_block(&id(1));
        pool.drop_block(&id(99));
        for _ in 0..2 {
            let set = pool.choose(2, &mut rng, |_| false).unwrap();
            assert!(!set.contains(&id(1)), "{set:?}");
        }
        pool.drop_block(&id(0));
        assert!(pool.choose(2, &mut rng, |_| false).is_none());
    }

    #[test]
    fn prefers_the_hot_set_until_its_sets_run_out() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut pool = Pool::new(4);
        for i in 0..100 {
            pool.add(id(i), 0);
        }
        assert_eq!(pool.hot_len(), 4);
        let hot: Vec<BlockId> = (0..4).map(id).collect();
        let mut used = HashSet::new();
        // The 4 hot blocks make 6 pairs: those come first, then pairs with one cold member.
        for round in 0..20 {
            let set = pool.choose(2, &mut rng, |k| used.contains(k)).unwrap();
            assert!(used.insert(set_key(&set)));
            let hot_members = set.iter().filter(|b| hot.contains(b)).count();
            if round < 6 {
                assert_eq!(hot_members, 2, "round {round}: {set:?}");
            } else {
                assert!(hot_members >= 1, "round {round}: {set:?}");
            }
        }
    }
}
