//! Repository state in LMDB (heed): block records (references, popularity, role), the randomizer sets
//! already used, pins, and the schema version. Every change is one small write transaction.

mod fetched;
mod record;

pub use fetched::FetchedLog;
pub use record::{BlockKind, BlockRecord, PinRecord};

use std::path::{Path, PathBuf};

use heed::types::{Bytes, Str, Unit};
use heed::{Database, Env, EnvOpenOptions};

use crate::block::BlockId;
use crate::error::IoContext;
use crate::{Error, Result};

/// The schema version this code writes and reads. 2: tree records may hold a small file's bytes
/// (`data`), which a version 1 reader would show as an empty file, so it must refuse the state.
pub const SCHEMA_VERSION: u32 = 2;
const SCHEMA_KEY: &str = "schema_version";

/// Changes gathered while storing, applied in one transaction by [`State::apply`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Blocks newly written, with their role.
    pub new_blocks: Vec<(BlockId, BlockKind)>,
    /// One entry per reference a tuple or descriptor makes to a block.
    pub refs: Vec<BlockId>,
    /// One entry per use of a block as a randomizer.
    pub uses: Vec<BlockId>,
    /// Randomizer sets used (see [`crate::pool::set_key`]).
    pub used_sets: Vec<[u8; 32]>,
}

impl Batch {
    /// Whether there is anything to write.
    pub fn is_empty(&self) -> bool {
        self.new_blocks.is_empty()
            && self.refs.is_empty()
            && self.uses.is_empty()
            && self.used_sets.is_empty()
    }
}

/// Totals over the block records.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct BlockTotals {
    pub blocks: u64,
    pub data_blocks: u64,
    pub random_blocks: u64,
    pub descriptor_blocks: u64,
    pub fetched_blocks: u64,
    pub references: u64,
    pub randomizer_uses: u64,
}

/// The open LMDB environment and its databases.
pub struct State {
    path: PathBuf,
    env: Env,
    meta: Database<Str, Bytes>,
    blocks: Database<Bytes, Bytes>,
    used_sets: Database<Bytes, Unit>,
    pins: Database<Str, Bytes>,
}

impl State {
    /// Opens (creating if needed) the state in folder `path`. Refuses a newer schema.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).at(path)?;
        // SAFETY: the repository lock guarantees one process opens this environment, and this process
        // opens it once (the repository owns the only `State`). NO_SYNC: commits reach the page cache
        // (safe against a process crash) and are made durable by `sync` at the points that promise
        // durability (a storing commit, an fsync through the mount, a seal, shutdown, and once a second
        // in the daemon), instead of one fsync per change.
        let env = unsafe {
            let mut opts = EnvOpenOptions::new();
            opts.flags(heed::EnvFlags::NO_SYNC);
            opts.map_size(1 << 40).max_dbs(32).open(path)?
        };
        let mut wtxn = env.write_txn()?;
        let meta: Database<Str, Bytes> = env.create_database(&mut wtxn, Some("meta"))?;
        let blocks = env.create_database(&mut wtxn, Some("blocks"))?;
        let used_sets = env.create_database(&mut wtxn, Some("used_sets"))?;
        let pins = env.create_database(&mut wtxn, Some("pins"))?;
        match meta.get(&wtxn, SCHEMA_KEY)? {
            None => meta.put(&mut wtxn, SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes())?,
            Some(v) => {
                let found = v.try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(Error::SchemaTooNew {
                        path: path.to_path_buf(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    // Each version only adds to the one before: upgrading is recording the new one.
                    meta.put(&mut wtxn, SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes())?;
                }
            }
        }
        wtxn.commit()?;
        Ok(State {
            path: path.to_path_buf(),
            env,
            meta,
            blocks,
            used_sets,
            pins,
        })
    }

    /// Makes every committed change durable (fsync of the environment).
    pub fn sync(&self) -> Result<()> {
        Ok(self.env.force_sync()?)
    }

    /// The LMDB environment, for modules that keep named databases of their own (tree, queue, sync).
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Opens (creating if needed) the named database `name` in this environment.
    pub fn database<K: 'static, V: 'static>(&self, name: &str) -> Result<Database<K, V>> {
        // Opening an existing database needs no write transaction (and no commit to disk).
        let rtxn = self.env.read_txn()?;
        if let Some(db) = self.env.open_database(&rtxn, Some(name))? {
            // The handle outlives the transaction only if it commits.
            rtxn.commit()?;
            return Ok(db);
        }
        drop(rtxn);
        let mut wtxn = self.env.write_txn()?;
        let db = self.env.create_database(&mut wtxn, Some(name))?;
        wtxn.commit()?;
        Ok(db)
    }

    /// The folder this state lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the schema version (tests use it to fake a repository from the future).
    pub fn set_schema_version(&self, v: u32) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.meta.put(&mut wtxn, SCHEMA_KEY, &v.to_le_bytes())?;
        wtxn.commit()?;
        Ok(())
    }

    /// Applies a batch in one transaction.
    pub fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut wtxn = self.env.write_txn()?;
        for (id, kind) in &batch.new_blocks {
            let key = id.to_bytes();
            // A block fetched before and now written here takes the role it was written for.
            let rec = match self.blocks.get(&wtxn, &key)?.map(BlockRecord::decode) {
                None => BlockRecord {
                    kind: *kind,
                    ..BlockRecord::default()
                },
                Some(r) if r.kind == BlockKind::Fetched => BlockRecord {
                    kind: *kind,
                    since: 0,
                    ..r
                },
                Some(_) => continue,
            };
            self.blocks.put(&mut wtxn, &key, &rec.encode())?;
        }
        let mut bump = |id: &BlockId, refs: u64, uses: u64| -> Result<()> {
            let key = id.to_bytes();
            let mut rec = match self.blocks.get(&wtxn, &key)? {
                Some(b) => BlockRecord::decode(b),
                None => BlockRecord::default(),
            };
            rec.refs += refs;
            rec.popularity += uses;
            self.blocks.put(&mut wtxn, &key, &rec.encode())?;
            Ok(())
        };
        for id in &batch.refs {
            bump(id, 1, 0)?;
        }
        for id in &batch.uses {
            bump(id, 0, 1)?;
        }
        for set in &batch.used_sets {
            self.used_sets.put(&mut wtxn, set, &())?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// Whether a randomizer set has been used before.
    pub fn set_used(&self, set: &[u8; 32]) -> Result<bool> {
        let rtxn = self.env.read_txn()?;
        Ok(self.used_sets.get(&rtxn, set)?.is_some())
    }

    /// The record of one block.
    pub fn block(&self, id: &BlockId) -> Result<Option<BlockRecord>> {
        let rtxn = self.env.read_txn()?;
        Ok(self.blocks.get(&rtxn, &id.to_bytes())?.map(BlockRecord::decode))
    }

    /// Every block record.
    pub fn blocks(&self) -> Result<Vec<(BlockId, BlockRecord)>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.blocks.iter(&rtxn)? {
            let (k, v) = item?;
            if let Ok(id) = BlockId::from_bytes(k) {
                out.push((id, BlockRecord::decode(v)));
            }
        }
        Ok(out)
    }

    /// Totals over every block record.
    pub fn totals(&self) -> Result<BlockTotals> {
        let mut t = BlockTotals::default();
        for (_, rec) in self.blocks()? {
            t.blocks += 1;
            t.references += rec.refs;
            t.randomizer_uses += rec.popularity;
            match rec.kind {
                BlockKind::Data => t.data_blocks += 1,
                BlockKind::Random => t.random_blocks += 1,
                BlockKind::Descriptor => t.descriptor_blocks += 1,
                BlockKind::Fetched => t.fetched_blocks += 1,
            }
        }
        Ok(t)
    }

    /// Records blocks fetched from peers as [`BlockKind::Fetched`], arrived at `now` (Unix seconds), in
    /// one transaction. A block that already has a record (written or fetched here before) keeps it.
    pub fn record_fetched(&self, ids: &[BlockId], now: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut wtxn = self.env.write_txn()?;
        for id in ids {
            let key = id.to_bytes();
            if self.blocks.get(&wtxn, &key)?.is_none() {
                let rec = BlockRecord {
                    kind: BlockKind::Fetched,
                    since: now,
                    ..BlockRecord::default()
                };
                self.blocks.put(&mut wtxn, &key, &rec.encode())?;
            }
        }
        wtxn.commit()?;
        Ok(())
    }

    /// Forgets blocks (after the store deleted them) and sets the reference counts of the others to the
    /// counts a full walk found, in one transaction.
    pub fn reconcile(
        &self,
        removed: &[BlockId],
        refs: &std::collections::HashMap<BlockId, u64>,
    ) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for id in removed {
            self.blocks.delete(&mut wtxn, &id.to_bytes())?;
        }
        let all: Vec<(Vec<u8>, BlockRecord)> = self
            .blocks
            .iter(&wtxn)?
            .map(|r| r.map(|(k, v)| (k.to_vec(), BlockRecord::decode(v))))
            .collect::<std::result::Result<_, _>>()?;
        for (k, mut rec) in all {
            let count = BlockId::from_bytes(&k)
                .ok()
                .and_then(|id| refs.get(&id).copied())
                .unwrap_or(0);
            if rec.refs != count {
                rec.refs = count;
                self.blocks.put(&mut wtxn, &k, &rec.encode())?;
            }
        }
        wtxn.commit()?;
        Ok(())
    }

    /// Pins a root so `gc` keeps everything it needs.
    pub fn pin(&self, root: &BlockId, rec: &PinRecord) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.pins.put(&mut wtxn, &root.to_string(), &rec.encode())?;
        wtxn.commit()?;
        Ok(())
    }

    /// Removes a pin; returns whether it existed.
    pub fn unpin(&self, root: &BlockId) -> Result<bool> {
        let mut wtxn = self.env.write_txn()?;
        let existed = self.pins.delete(&mut wtxn, &root.to_string())?;
        wtxn.commit()?;
        Ok(existed)
    }

    /// Every pin.
    pub fn pins(&self) -> Result<Vec<(BlockId, PinRecord)>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.pins.iter(&rtxn)? {
            let (k, v) = item?;
            if let (Ok(id), Some(rec)) = (k.parse(), PinRecord::decode(v)) {
                out.push((id, rec));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pins_and_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let (a, b) = (BlockId::of(b"a"), BlockId::of(b"b"));
        let batch = Batch {
            new_blocks: vec![(a, BlockKind::Data), (b, BlockKind::Random)],
            refs: vec![a, a, b],
            uses: vec![b],
            used_sets: vec![[7; 32]],
        };
        assert!(!batch.is_empty());
        state.apply(&batch).unwrap();
        state.apply(&Batch::default()).unwrap();
        assert_eq!(state.block(&a).unwrap().unwrap().refs, 2);
        let rb = state.block(&b).unwrap().unwrap();
        assert_eq!((rb.refs, rb.popularity, rb.kind), (1, 1, BlockKind::Random));
        assert!(state.set_used(&[7; 32]).unwrap());
        assert!(!state.set_used(&[8; 32]).unwrap());
        let t = state.totals().unwrap();
        assert_eq!(
            (t.blocks, t.data_blocks, t.random_blocks, t.references),
            (2, 1, 1, 3)
        );

        let pin = PinRecord {
            link: "noisefs://x#y".into(),
            name: "f".into(),
            size: 3,
            dir: false,
            created: 1,
        };
        state.pin(&a, &pin).unwrap();
        assert_eq!(state.pins().unwrap(), vec![(a, pin)]);
        assert!(state.unpin(&a).unwrap());
        assert!(!state.unpin(&a).unwrap());

        // Fetched blocks: recorded once with their arrival time; a block with a record keeps it; a
        // fetched block written here later takes its written role.
        let (f, g) = (BlockId::of(b"f"), BlockId::of(b"g"));
        state.record_fetched(&[f, g, a], 1_000).unwrap();
        state.record_fetched(&[f], 2_000).unwrap();
        state.record_fetched(&[], 3_000).unwrap();
        let rf = state.block(&f).unwrap().unwrap();
        assert_eq!((rf.kind, rf.since, rf.refs), (BlockKind::Fetched, 1_000, 0));
        assert_eq!(state.block(&a).unwrap().unwrap().kind, BlockKind::Data);
        assert_eq!(state.totals().unwrap().fetched_blocks, 2);
        state
            .apply(&Batch {
                new_blocks: vec![(g, BlockKind::Descriptor)],
                ..Batch::default()
            })
            .unwrap();
        let rg = state.block(&g).unwrap().unwrap();
        assert_eq!((rg.kind, rg.since), (BlockKind::Descriptor, 0));
        assert_eq!(state.totals().unwrap().fetched_blocks, 1);

        let refs = [(b, 5u64)].into_iter().collect();
        state.reconcile(&[a, f, g], &refs).unwrap();
        assert!(state.block(&a).unwrap().is_none());
        assert_eq!(state.block(&b).unwrap().unwrap().refs, 5);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        State::open(dir.path())
            .unwrap()
            .set_schema_version(SCHEMA_VERSION + 1)
            .unwrap();
        match State::open(dir.path()) {
            Err(Error::SchemaTooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("opened a newer schema"),
        }
    }

    #[test]
    fn an_older_schema_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        State::open(dir.path()).unwrap().set_schema_version(1).unwrap();
        let state = State::open(dir.path()).unwrap();
        let meta: Database<Str, Bytes> = state.database("meta").unwrap();
        let rtxn = state.env().read_txn().unwrap();
        let v = meta.get(&rtxn, SCHEMA_KEY).unwrap().unwrap();
        assert_eq!(u32::from_le_bytes(v.try_into().unwrap()), SCHEMA_VERSION);
    }
}
