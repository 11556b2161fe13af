//! Cryptography: per-file keys and their sub-keys, the content stream cipher, the descriptor AEAD, and
//! Argon2id password wrapping. Nothing else in NoiseFS touches a cipher directly.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Error, Result};

/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of an Argon2id salt in a password link.
pub const SALT_LEN: usize = 16;

/// A 256-bit key. The link key of a file or folder; never sent to the network.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Key(k)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives a sub-key for one purpose (domain-separated SHA-256 of the purpose and the key).
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"noisefs-v1 ");
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(self.0);
        h.finalize().into()
    }

    /// Derives the key from a password and salt with Argon2id at `cost`.
    pub fn from_password(password: &str, salt: &[u8], cost: KdfCost) -> Result<Self> {
        cost.check().map_err(Error::Crypto)?;
        let params = argon2::Params::new(cost.memory_kib, cost.passes, cost.lanes, Some(32))
            .map_err(|e| Error::Crypto(format!("password key derivation: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(password.as_bytes(), salt, &mut out)
            .map_err(|e| Error::Crypto(format!("password key derivation: {e}")))?;
        Ok(Key(out))
    }
}

/// What deriving a password key with Argon2id costs: recorded in each password link, so links made
/// with older parameters still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes (parallelism).
    pub lanes: u32,
}

impl KdfCost {
    /// What links without parameters (`#argon2id.<salt>`) were made with: 19 MiB, 2 passes, 1 lane.
    pub const LEGACY: KdfCost = KdfCost {
        memory_kib: 19 * 1024,
        passes: 2,
        lanes: 1,
    };
    /// What new password links use: 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: KdfCost = KdfCost {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };
    /// The most memory a link may ask for (a link from a stranger must not exhaust memory).
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// The most passes a link may ask for.
    pub const MAX_PASSES: u32 = 64;
    /// The most lanes a link may ask for.
    pub const MAX_LANES: u32 = 16;

    /// Whether the parameters are ones this version derives a key with; the reason if not.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.lanes == 0 || self.lanes > Self::MAX_LANES {
            return Err(format!(
                "Argon2id lanes {} outside 1..={}",
                self.lanes,
                Self::MAX_LANES
            ));
        }
        if self.passes == 0 || self.passes > Self::MAX_PASSES {
            return Err(format!(
                "Argon2id passes {} outside 1..={}",
                self.passes,
                Self::MAX_PASSES
            ));
        }
        if self.memory_kib < 8 * self.lanes || self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(format!(
                "Argon2id memory {} KiB outside {}..={} KiB",
                self.memory_kib,
                8 * self.lanes,
                Self::MAX_MEMORY_KIB
            ));
        }
        Ok(())
    }
}

/// Why `password` is weak, if it is: a rough guess of its entropy from its length and the kinds of
/// characters in it. Anyone holding a password link can try passwords offline, as fast as Argon2id
/// allows, so a short one falls in hours.
pub fn password_weakness(password: &str) -> Option<String> {
    const COMMON: &[&str] = &[
        "password", "123456", "12345678", "qwerty", "letmein", "admin", "welcome", "iloveyou", "monkey",
        "dragon", "secret", "abc123", "passw0rd", "noisefs",
    ];
    let lower = password.to_lowercase();
    if COMMON.iter().any(|c| lower.contains(c)) {
        return Some("it contains a common password".into());
    }
    let distinct: std::collections::HashSet<char> = password.chars().collect();
    type Kind = (fn(&char) -> bool, f64);
    let kinds: [Kind; 4] = [
        (char::is_ascii_lowercase, 26.0),
        (char::is_ascii_uppercase, 26.0),
        (char::is_ascii_digit, 10.0),
        (|c: &char| !c.is_ascii_alphanumeric(), 33.0),
    ];
    let alphabet: f64 = kinds
        .iter()
        .filter(|(is, _)| password.chars().any(|c| is(&c)))
        .map(|(_, n)| n)
        .sum();
    // Repeated characters add little: count each distinct character fully, repeats at one bit.
    let len = password.chars().count();
    let bits = distinct.len() as f64 * alphabet.max(2.0).log2() + (len - distinct.len()) as f64;
    (bits < 60.0).then(|| {
        format!(
            "{len} characters, about {bits:.0} bits; use 12 or more characters of mixed kinds, or 5 random words"
        )
    })
}

/// The stream cipher applied to content blocks: ChaCha20 under the file's content sub-key with a nonce
/// made from the block index, so block `i` can be sealed or opened on its own.
pub struct ContentCipher {
    key: [u8; 32],
}

impl Drop for ContentCipher {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl ContentCipher {
    /// The content cipher of the file whose link key is `key`.
    pub fn new(key: &Key) -> Self {
        ContentCipher {
            key: key.derive("content"),
        }
    }

    /// Encrypts or decrypts (the same operation) block `index` in place.
    pub fn apply(&self, index: u64, data: &mut [u8]) {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&index.to_le_bytes());
        let mut c = ChaCha20::new(&self.key.into(), &nonce.into());
        c.apply_keystream(data);
    }
}

/// Seals a descriptor payload into exactly `block_len` bytes:
/// `nonce(24) || XChaCha20-Poly1305(len_le32 || payload || random padding)`.
/// The result is indistinguishable from random bytes without the key.
pub fn seal_envelope(key: &Key, payload: &[u8], block_len: usize) -> Result<Vec<u8>> {
    let capacity = envelope_capacity(block_len);
    if payload.len() > capacity {
        return Err(Error::Unsupported {
            what: format!("a descriptor node of {} bytes", payload.len()),
            reason: format!("a block holds at most {capacity}"),
        });
    }
    let mut plain = vec![0u8; block_len - NONCE_LEN - TAG_LEN];
    plain[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    plain[4..4 + payload.len()].copy_from_slice(payload);
    rand::thread_rng().fill_bytes(&mut plain[4 + payload.len()..]);
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(&key.derive("descriptor").into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
        .map_err(|_| Error::Crypto("descriptor encryption".into()))?;
    plain.zeroize();
    let mut out = Vec::with_capacity(block_len);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The largest payload [`seal_envelope`] fits into a block of `block_len` bytes.
pub fn envelope_capacity(block_len: usize) -> usize {
    block_len - NONCE_LEN - TAG_LEN - 4
}

/// Opens an envelope made by [`seal_envelope`]; `None` when the key is wrong or the bytes were changed.
pub fn open_envelope(key: &Key, block: &[u8]) -> Option<Vec<u8>> {
    if block.len() < NONCE_LEN + TAG_LEN + 4 {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(&key.derive("descriptor").into());
    let mut plain = cipher
        .decrypt(XNonce::from_slice(&block[..NONCE_LEN]), &block[NONCE_LEN..])
        .ok()?;
    let len = u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]) as usize;
    let payload = plain.get(4..4 + len).map(<[u8]>::to_vec);
    plain.zeroize();
    payload
}

/// Fills `buf` with fast non-repeating random bytes (padding and fresh randomizer blocks).
pub fn fill_random(buf: &mut [u8]) {
    rand::thread_rng().fill_bytes(buf);
}

/// A fresh random salt for a password link.
pub fn random_salt() -> [u8; SALT_LEN] {
    let mut s = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_cipher_round_trips_and_depends_on_index() {
        let key = Key::from_bytes([7; 32]);
        let c = ContentCipher::new(&key);
        let plain = vec![0x41u8; 4096];
        let mut a = plain.clone();
        c.apply(0, &mut a);
        let mut b = plain.clone();
        c.apply(1, &mut b);
        assert_ne!(a, plain);
        assert_ne!(a, b);
        c.apply(0, &mut a);
        assert_eq!(a, plain);
    }

    /// Fixed vectors (docs/formats.md): the content sub-key of key 0x07 x 32, and the first 16 bytes of
    /// blocks 0 and 1 of zeros sealed under it.
    #[test]
    fn content_cipher_vector() {
        let key = Key::from_bytes([7; 32]);
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
        assert_eq!(
            hex(&key.derive("content")),
            "8aca88b61953bf8c48d84ded97a89f53fe213217238f21bc0445557912b4541a"
        );
        let c = ContentCipher::new(&key);
        let want = [
            "a9f7794bb0745e11adea054fa9357f51",
            "3b8564c94670778749a4382dfe47ee49",
        ];
        for (i, want) in want.iter().enumerate() {
            let mut z = [0u8; 16];
            c.apply(i as u64, &mut z);
            assert_eq!(&hex(&z), want);
        }
        let set = crate::pool::set_key(&[crate::block::BlockId::of(b"a"), crate::block::BlockId::of(b"b")]);
        assert_eq!(
            hex(&set),
            "ecc7d0b8c036bf65333d543e117abbd7033e92f0e3f5bd2a64dd59433a299cab"
        );
    }

    #[test]
    fn envelope_round_trip_and_tamper() {
        let key = Key::random();
        let payload = b"hello descriptor".to_vec();
        let block = seal_envelope(&key, &payload, 4096).unwrap();
        assert_eq!(block.len(), 4096);
        assert_eq!(open_envelope(&key, &block).unwrap(), payload);
        assert!(open_envelope(&Key::random(), &block).is_none());
        let mut bad = block.clone();
        bad[100] ^= 1;
        assert!(open_envelope(&key, &bad).is_none());
        assert!(open_envelope(&key, &block[..10]).is_none());
        let too_big = vec![0u8; envelope_capacity(4096) + 1];
        assert!(seal_envelope(&key, &too_big, 4096).is_err());
        let full = vec![9u8; envelope_capacity(4096)];
        let b = seal_envelope(&key, &full, 4096).unwrap();
        assert_eq!(open_envelope(&key, &b).unwrap(), full);
    }

    proptest::proptest! {
        #[test]
        fn envelopes_round_trip(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4052)) {
            let key = Key::from_bytes([3; 32]);
            let block = seal_envelope(&key, &payload, 4096).unwrap();
            proptest::prop_assert_eq!(block.len(), 4096);
            proptest::prop_assert_eq!(open_envelope(&key, &block).unwrap(), payload);
        }
    }

    #[test]
    fn password_keys_depend_on_salt_password_and_cost() {
        let salt = b"0123456789abcdef";
        let a = Key::from_password("pw", salt, KdfCost::LEGACY).unwrap();
        let b = Key::from_password("pw", salt, KdfCost::LEGACY).unwrap();
        let c = Key::from_password("pw", b"fedcba9876543210", KdfCost::LEGACY).unwrap();
        let d = Key::from_password("pw2", salt, KdfCost::LEGACY).unwrap();
        let e = Key::from_password("pw", salt, KdfCost::DEFAULT).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(a, e);
        assert!(Key::from_password("pw", b"short", KdfCost::LEGACY).is_err());
        assert_eq!(format!("{a:?}"), "Key(..)");
        // Fixed vector: Argon2id("pw", "0123456789abcdef"; m 19456, t 2, p 1) as the legacy links use.
        assert_eq!(
            data_encoding::HEXLOWER.encode(a.as_bytes()),
            "aa11986f53323c413e6844bf08de8d0900cb42b5af9b3c88f960319d7d992e62"
        );
        // Parameters a hostile link could use to exhaust memory or time are refused before any work.
        for bad in [
            KdfCost {
                memory_kib: KdfCost::MAX_MEMORY_KIB + 1,
                ..KdfCost::DEFAULT
            },
            KdfCost {
                memory_kib: 4,
                ..KdfCost::DEFAULT
            },
            KdfCost {
                passes: 0,
                ..KdfCost::DEFAULT
            },
            KdfCost {
                passes: 65,
                ..KdfCost::DEFAULT
            },
            KdfCost {
                lanes: 0,
                ..KdfCost::DEFAULT
            },
            KdfCost {
                lanes: 17,
                ..KdfCost::DEFAULT
            },
        ] {
            let err = Key::from_password("pw", salt, bad).unwrap_err().to_string();
            assert!(err.contains("outside"), "{err}");
        }
    }

    #[test]
    fn weak_passwords_are_named() {
        for weak in [
            "pw",
            "hunter2",
            "correct",
            "Password123!",
            "aaaaaaaaaaaaaaaaaaaa",
            "12345678901",
        ] {
            assert!(password_weakness(weak).is_some(), "{weak}");
        }
        for strong in [
            "correct horse battery staple",
            "x7#Kp2!qLm9@wZ",
            "tulip-orbit-canyon-mellow-frost",
        ] {
            assert!(
                password_weakness(strong).is_none(),
                "{strong}: {:?}",
                password_weakness(strong)
            );
        }
        assert!(password_weakness("pw").unwrap().contains("2 characters"));
    }
}
