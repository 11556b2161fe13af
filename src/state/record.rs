//! The records kept in the state databases and their byte encodings.

use serde::{Deserialize, Serialize};

/// The role a block was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// A sealed content block (`seal(data) ⊕ randomizers`).
    #[default]
    Data,
    /// A fresh random block made when the randomizer pool was too small.
    Random,
    /// An encrypted descriptor or manifest node.
    Descriptor,
    /// A block fetched from a peer (not written here); `gc` keeps it `[network] keep_fetched_days`
    /// after it arrived unless something reaches it.
    Fetched,
}

/// What the state knows of one block: `refs(u64 le) | popularity(u64 le) | kind(u8) | since(i64 le)`
/// (`since`: when a fetched block arrived, in Unix seconds; 0 for the others; absent in records written
/// before fetched blocks were recorded, which decode with 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockRecord {
    /// References from tuples and descriptor trees written here (recounted exactly by `gc`).
    pub refs: u64,
    /// Times the block was chosen as a randomizer.
    pub popularity: u64,
    pub kind: BlockKind,
    /// When a fetched block arrived (Unix seconds); 0 for blocks written here.
    pub since: i64,
}

impl BlockRecord {
    /// The 25-byte encoding.
    pub fn encode(&self) -> [u8; 25] {
        let mut out = [0u8; 25];
        out[..8].copy_from_slice(&self.refs.to_le_bytes());
        out[8..16].copy_from_slice(&self.popularity.to_le_bytes());
        out[16] = match self.kind {
            BlockKind::Data => 0,
            BlockKind::Random => 1,
            BlockKind::Descriptor => 2,
            BlockKind::Fetched => 3,
        };
        out[17..].copy_from_slice(&self.since.to_le_bytes());
        out
    }

    /// Decodes a record; short or unknown bytes decode as zeros / a data block.
    pub fn decode(b: &[u8]) -> Self {
        let word = |r: std::ops::Range<usize>| {
            b.get(r)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        BlockRecord {
            refs: word(0..8),
            popularity: word(8..16),
            kind: match b.get(16) {
                Some(1) => BlockKind::Random,
                Some(2) => BlockKind::Descriptor,
                Some(3) => BlockKind::Fetched,
                _ => BlockKind::Data,
            },
            since: word(17..25) as i64,
        }
    }
}

/// A pinned root: what `gc` keeps, and the link (with its key) needed to walk it. Stays in the
/// repository's 0700 folder; never sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    pub link: String,
    pub name: String,
    pub size: u64,
    pub dir: bool,
    pub created: i64,
}

impl PinRecord {
    /// CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        crate::descriptor::node::encode(self)
    }

    /// Decodes a record; `None` when the bytes are not one.
    pub fn decode(b: &[u8]) -> Option<Self> {
        ciborium::from_reader(b).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        for kind in [
            BlockKind::Data,
            BlockKind::Random,
            BlockKind::Descriptor,
            BlockKind::Fetched,
        ] {
            let r = BlockRecord {
                refs: 3,
                popularity: u64::MAX,
                kind,
                since: -5,
            };
            assert_eq!(BlockRecord::decode(&r.encode()), r);
        }
        // A fixed vector: a fetched block with one reference, arrived at 1,700,000,000.
        let fetched = BlockRecord {
            refs: 1,
            popularity: 0,
            kind: BlockKind::Fetched,
            since: 1_700_000_000,
        };
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        want.extend_from_slice(&[0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0]);
        assert_eq!(fetched.encode().to_vec(), want);
        // A record of the 17-byte form (before fetched blocks were recorded) decodes with since 0.
        let old = BlockRecord::decode(&want[..17]);
        assert_eq!((old.refs, old.kind, old.since), (1, BlockKind::Fetched, 0));
        assert_eq!(BlockRecord::decode(b"short"), BlockRecord::default());
        assert!(PinRecord::decode(b"\xff").is_none());
    }
}
