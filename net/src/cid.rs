//! Content ids as IPFS writes them, in binary: CIDv0 (a bare sha2-256 multihash, dag-pb) and CIDv1
//! (version, codec, multihash). Only sha2-256 multihashes can be checked here, so only they are
//! accepted: a block whose bytes cannot be verified is never taken from the network.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::varint;

/// The multihash code of sha2-256.
const SHA2_256: u64 = 0x12;
/// The multicodec of dag-pb (the codec a CIDv0 implies).
const DAG_PB: u64 = 0x70;

/// Why bytes are not a CID this node accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("truncated CID")]
    Truncated,
    #[error("CID version {0} is not supported (0 and 1 are)")]
    Version(u64),
    #[error("multihash code {0:#x} is not supported (only sha2-256 can be verified)")]
    Hash(u64),
    #[error("sha2-256 digest of {0} bytes (32 expected)")]
    DigestLength(u64),
    #[error("{0} trailing bytes after the CID")]
    Trailing(usize),
    #[error("not a base32 CIDv1 (`b...`, as IPFS prints them)")]
    Text,
}

/// A verified-format content id: version, codec and a sha2-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    version: u8,
    codec: u64,
    digest: [u8; 32],
}

impl Cid {
    /// A CIDv1 of `codec` over `data`.
    pub fn v1_of(codec: u64, data: &[u8]) -> Cid {
        Cid {
            version: 1,
            codec,
            digest: Sha256::digest(data).into(),
        }
    }

    /// A CIDv1 of `codec` with a sha2-256 `digest` already computed.
    pub fn v1_of_digest(codec: u64, digest: [u8; 32]) -> Cid {
        Cid {
            version: 1,
            codec,
            digest,
        }
    }

    /// Parses a binary CID; the whole input must be the CID.
    pub fn from_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
        let (cid, used) = Self::read(bytes)?;
        if used != bytes.len() {
            return Err(CidError::Trailing(bytes.len() - used));
        }
        Ok(cid)
    }

    /// Reads a CID at the start of `bytes`, returning it and how many bytes it took.
    fn read(bytes: &[u8]) -> Result<(Cid, usize), CidError> {
        // A CIDv0 is a sha2-256 multihash: 0x12 0x20 and 32 bytes.
        if bytes.len() >= 2 && bytes[0] == 0x12 && bytes[1] == 0x20 {
            let digest = bytes.get(2..34).ok_or(CidError::Truncated)?;
            return Ok((
                Cid {
                    version: 0,
                    codec: DAG_PB,
                    digest: digest.try_into().map_err(|_| CidError::Truncated)?,
                },
                34,
            ));
        }
        let mut at = 0;
        let mut next = || -> Result<u64, CidError> {
            let (v, n) = varint::decode(&bytes[at..]).ok_or(CidError::Truncated)?;
            at += n;
            Ok(v)
        };
        let version = next()?;
        if version != 1 {
            return Err(CidError::Version(version));
        }
        let codec = next()?;
        Self::read_multihash_prefix(&mut next)?;
        let digest = bytes.get(at..at + 32).ok_or(CidError::Truncated)?;
        Ok((
            Cid {
                version: 1,
                codec,
                digest: digest.try_into().map_err(|_| CidError::Truncated)?,
            },
            at + 32,
        ))
    }

    fn read_multihash_prefix(next: &mut impl FnMut() -> Result<u64, CidError>) -> Result<(), CidError> {
        let code = next()?;
        if code != SHA2_256 {
            return Err(CidError::Hash(code));
        }
        let len = next()?;
        if len != 32 {
            return Err(CidError::DigestLength(len));
        }
        Ok(())
    }

    /// The CID of `data` under a bitswap block prefix (version, codec, multihash code and length, as
    /// varints): what a peer's payload block claims to be. The digest is computed here, so the result
    /// always matches `data`.
    pub fn from_prefix_and_data(prefix: &[u8], data: &[u8]) -> Result<Cid, CidError> {
        let mut at = 0;
        let mut next = || -> Result<u64, CidError> {
            let (v, n) = varint::decode(&prefix[at..]).ok_or(CidError::Truncated)?;
            at += n;
            Ok(v)
        };
        let version = next()?;
        if version > 1 {
            return Err(CidError::Version(version));
        }
        let codec = next()?;
        Self::read_multihash_prefix(&mut next)?;
        if at != prefix.len() {
            return Err(CidError::Trailing(prefix.len() - at));
        }
        if version == 0 && codec != DAG_PB {
            return Err(CidError::Version(0));
        }
        Ok(Cid {
            version: version as u8,
            codec,
            digest: Sha256::digest(data).into(),
        })
    }

    /// The binary CID.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.version == 0 {
            let mut out = vec![0x12, 0x20];
            out.extend_from_slice(&self.digest);
            return out;
        }
        let mut out = Vec::with_capacity(40);
        varint::encode(1, &mut out);
        varint::encode(self.codec, &mut out);
        out.extend_from_slice(&self.multihash());
        out
    }

    /// The bitswap block prefix of this CID (version, codec, multihash code, digest length).
    pub fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6);
        varint::encode(self.version as u64, &mut out);
        varint::encode(self.codec, &mut out);
        varint::encode(SHA2_256, &mut out);
        varint::encode(32, &mut out);
        out
    }

    /// The multihash (code, length, digest): the key of provider records in the DHT.
    pub fn multihash(&self) -> Vec<u8> {
        let mut out = vec![0x12, 0x20];
        out.extend_from_slice(&self.digest);
        out
    }

    /// The sha2-256 digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The codec (0x55 raw, 0x70 dag-pb, ...).
    pub fn codec(&self) -> u64 {
        self.codec
    }

    /// Whether `data` is the block this CID names.
    pub fn verifies(&self, data: &[u8]) -> bool {
        <[u8; 32]>::from(Sha256::digest(data)) == self.digest
    }
}

impl fmt::Display for Cid {
    /// CIDv1 in base32 (`b...`, as IPFS prints it); a CIDv0 as `v0:` and the hex of its digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.version == 0 {
            return write!(f, "v0:{}", data_encoding::HEXLOWER.encode(&self.digest));
        }
        let mut s = data_encoding::BASE32_NOPAD.encode(&self.to_bytes());
        s.make_ascii_lowercase();
        write!(f, "b{s}")
    }
}

impl std::str::FromStr for Cid {
    type Err = CidError;

    /// A CIDv1 in base32 (`b` then lower-case base32, no padding), the form [`fmt::Display`] writes.
    fn from_str(s: &str) -> Result<Cid, CidError> {
        let body = s.strip_prefix('b').ok_or(CidError::Text)?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| CidError::Text)?;
        Cid::from_bytes(&bytes)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: u64 = 0x55;

    #[test]
    fn fixed_vector_of_an_empty_raw_block() {
        // `ipfs add --raw-leaves --cid-version 1` of empty input.
        let cid = Cid::v1_of(RAW, b"");
        assert_eq!(
            cid.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(Cid::from_bytes(&cid.to_bytes()).unwrap(), cid);
        assert_eq!(cid.to_string().parse::<Cid>().unwrap(), cid);
        assert_eq!("Qmfoo".parse::<Cid>(), Err(CidError::Text));
        assert_eq!("b0189".parse::<Cid>(), Err(CidError::Text));
        assert_eq!("bafkq".parse::<Cid>(), Err(CidError::Truncated));
        assert_eq!(cid.prefix(), vec![0x01, 0x55, 0x12, 0x20]);
        assert!(cid.verifies(b""));
        assert!(!cid.verifies(b"x"));
        assert_eq!(Cid::from_prefix_and_data(&cid.prefix(), b"").unwrap(), cid);
    }

    #[test]
    fn cid_v0_round_trips() {
        let mut b = vec![0x12, 0x20];
        b.extend_from_slice(&[7u8; 32]);
        let cid = Cid::from_bytes(&b).unwrap();
        assert_eq!(cid.to_bytes(), b);
        assert_eq!(cid.codec(), DAG_PB);
        assert!(cid.to_string().starts_with("v0:0707"));
        assert_eq!(cid.multihash(), b);
        assert_eq!(cid.prefix(), vec![0, 0x70, 0x12, 0x20]);
    }

    #[test]
    fn refuses_what_cannot_be_verified_or_parsed() {
        let good = Cid::v1_of(RAW, b"abc").to_bytes();
        assert_eq!(Cid::from_bytes(&good[..10]), Err(CidError::Truncated));
        assert_eq!(Cid::from_bytes(&[]), Err(CidError::Truncated));
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Cid::from_bytes(&long), Err(CidError::Trailing(1)));
        assert_eq!(Cid::from_bytes(&[2, 0x55, 0x12, 0x20]), Err(CidError::Version(2)));
        // blake2b-256 (0xb220) cannot be checked here.
        assert_eq!(
            Cid::from_bytes(&[1, 0x55, 0xa0, 0xe4, 0x02, 0x20]),
            Err(CidError::Hash(0xb220))
        );
        assert_eq!(
            Cid::from_bytes(&[1, 0x55, 0x12, 0x10]),
            Err(CidError::DigestLength(16))
        );
        assert_eq!(Cid::from_bytes(&[1, 0xff]), Err(CidError::Truncated));
        assert!(Cid::from_prefix_and_data(&[1, 0x55, 0x12, 0x20, 0], b"").is_err());
        assert!(Cid::from_prefix_and_data(&[0, 0x55, 0x12, 0x20], b"").is_err());
        assert!(Cid::from_prefix_and_data(&[3, 0x55, 0x12, 0x20], b"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(cid) = Cid::from_bytes(&bytes) {
                proptest::prop_assert_eq!(cid.to_bytes(), bytes.clone());
            }
            let _ = Cid::from_prefix_and_data(&bytes, b"data");
        }
    }
}
