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
}

/// What the state knows of one block: `refs(u64 le) | popularity(u64 le) | kind(u8)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockRecord {
    /// References from tuples and descriptor trees written here (recounted exactly by `gc`).
    pub refs: u64,
    /// Times the block was chosen as a randomizer.
    pub popularity: u64,
    pub kind: BlockKind,
}

impl BlockRecord {
    /// The 17-byte encoding.
    pub fn encode(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[..8].copy_from_slice(&self.refs.to_le_bytes());
        out[8..16].copy_from_slice(&self.popularity.to_le_bytes());
        out[16] = match self.kind {
            BlockKind::Data => 0,
            BlockKind::Random => 1,
            BlockKind::Descriptor => 2,
        };
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
                _ => BlockKind::Data,
            },
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
        for kind in [BlockKind::Data, BlockKind::Random, BlockKind::Descriptor] {
            let r = BlockRecord {
                refs: 3,
                popularity: u64::MAX,
                kind,
            };
            assert_eq!(BlockRecord::decode(&r.encode()), r);
        }
        assert_eq!(BlockRecord::decode(b"short"), BlockRecord::default());
        assert!(PinRecord::decode(b"\xff").is_none());
    }
}
