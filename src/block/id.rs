//! Block ids: CIDv1 with the raw codec (0x55) and a sha2-256 multihash, written in base32 (`b...`),
//! so any IPFS node can store, serve and verify a NoiseFS block.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The binary prefix of every id: CID version 1, raw codec, sha2-256, 32-byte digest.
const PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];

/// A block id: the sha2-256 digest of the block's bytes, shown as a CIDv1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId([u8; 32]);

impl BlockId {
    /// Length of the binary CID form.
    pub const BINARY_LEN: usize = 36;

    /// Hashes `data` into its id.
    pub fn of(data: &[u8]) -> Self {
        BlockId(Sha256::digest(data).into())
    }

    /// The sha2-256 digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 36-byte binary CID.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..4].copy_from_slice(&PREFIX);
        out[4..].copy_from_slice(&self.0);
        out
    }

    /// Parses a binary CID; only CIDv1 raw sha2-256 ids are accepted.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != Self::BINARY_LEN || bytes[..4] != PREFIX {
            return Err(Error::InvalidBlockId {
                input: data_encoding::HEXLOWER.encode(bytes),
                reason: "not a CIDv1 raw sha2-256 id".into(),
            });
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[4..]);
        Ok(BlockId(digest))
    }

    /// Two lowercase hex digits used to shard block files into folders.
    pub fn shard(&self) -> String {
        format!("{:02x}", self.0[0])
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = BASE32_NOPAD.encode(&self.to_bytes());
        s.make_ascii_lowercase();
        write!(f, "b{s}")
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({self})")
    }
}

impl FromStr for BlockId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidBlockId {
            input: s.chars().take(80).collect(),
            reason: reason.into(),
        };
        let rest = s
            .strip_prefix('b')
            .ok_or_else(|| bad("expected a base32 CIDv1 starting with `b`"))?;
        if rest.len() != 58 {
            return Err(bad("wrong length for a CIDv1 raw sha2-256 id"));
        }
        let bytes = BASE32_NOPAD
            .decode(rest.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad("not valid base32"))?;
        BlockId::from_bytes(&bytes).map_err(|_| bad("not a CIDv1 raw sha2-256 id"))
    }
}

impl serde::Serialize for BlockId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> serde::Deserialize<'de> for BlockId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes: serde_bytes::ByteBuf = serde::Deserialize::deserialize(d)?;
        BlockId::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fixed vector: the CID of the empty byte string, as `ipfs add --raw-leaves` / multiformats give it.
    #[test]
    fn empty_block_cid_matches_ipfs() {
        let id = BlockId::of(b"");
        assert_eq!(
            id.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn hello_cid_vector() {
        // `echo -n hello | ipfs add --cid-version 1 --raw-leaves` gives this id.
        assert_eq!(
            BlockId::of(b"hello").to_string(),
            "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        );
    }

    #[test]
    fn rejects_bad_strings() {
        for bad in [
            "",
            "b",
            "zafkrei",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk1",
            "Qmabc",
        ] {
            assert!(bad.parse::<BlockId>().is_err(), "{bad}");
        }
        // A valid base32 CID with another codec (dag-pb 0x70) is refused.
        let mut bytes = BlockId::of(b"x").to_bytes();
        bytes[1] = 0x70;
        assert!(BlockId::from_bytes(&bytes).is_err());
        assert!(BlockId::from_bytes(&bytes[..10]).is_err());
    }

    #[test]
    fn shard_is_first_digest_byte() {
        let id = BlockId::of(b"");
        assert_eq!(id.shard(), format!("{:02x}", id.digest()[0]));
    }

    proptest! {
        #[test]
        fn string_and_binary_round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let id = BlockId::of(&data);
            prop_assert_eq!(id.to_string().parse::<BlockId>().unwrap(), id);
            prop_assert_eq!(BlockId::from_bytes(&id.to_bytes()).unwrap(), id);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<BlockId>();
        }
    }
}
