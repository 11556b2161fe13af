//! Blocks: fixed-size byte strings named by CIDv1 ids, the XOR that makes tuples, and block sizes.

mod id;
mod size;

pub use id::BlockId;
pub use size::BlockSize;

use bytes::Bytes;

use crate::{Error, Result};

/// The bytes of one block. Cheap to clone (reference counted).
pub type Block = Bytes;

/// Checks that `data` hashes to `id`; the error names both ids.
pub fn verify(id: &BlockId, data: &[u8]) -> Result<()> {
    let actual = BlockId::of(data);
    if &actual == id {
        Ok(())
    } else {
        Err(Error::CorruptBlock { id: *id, actual })
    }
}

/// XORs `src` into `dst` in place. Both must have the same length.
pub fn xor_into(dst: &mut [u8], src: &[u8]) {
    debug_assert_eq!(dst.len(), src.len());
    // Work on u64 words; the compiler vectorizes this loop.
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (a, b) in (&mut d).zip(&mut s) {
        let x = u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]])
            ^ u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        a.copy_from_slice(&x.to_ne_bytes());
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a ^= b;
    }
}

/// XORs equally long blocks into a new buffer in one pass over the output.
pub fn xor_all(parts: &[Block]) -> Vec<u8> {
    match parts {
        [] => Vec::new(),
        [a, b, c] => a
            .iter()
            .zip(b.iter())
            .zip(c.iter())
            .map(|((x, y), z)| x ^ y ^ z)
            .collect(),
        [first, rest @ ..] => {
            let mut out = first.to_vec();
            for r in rest {
                xor_into(&mut out, r);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_is_its_own_inverse() {
        let a: Vec<u8> = (0..1003u32).map(|i| (i * 7) as u8).collect();
        let b: Vec<u8> = (0..1003u32).map(|i| (i * 13 + 5) as u8).collect();
        let mut c = a.clone();
        xor_into(&mut c, &b);
        assert_ne!(c, a);
        assert_eq!(c[1002], a[1002] ^ b[1002]);
        xor_into(&mut c, &b);
        assert_eq!(c, a);
    }

    #[test]
    fn xor_all_matches_pairwise_xor() {
        let parts: Vec<Block> = (0..4u8)
            .map(|s| Block::from(vec![s.wrapping_mul(37) | 1; 100]))
            .collect();
        for n in 0..=4 {
            let mut want = if n == 0 { Vec::new() } else { parts[0].to_vec() };
            for p in parts.iter().take(n).skip(1) {
                xor_into(&mut want, p);
            }
            assert_eq!(xor_all(&parts[..n]), want, "{n} parts");
        }
    }

    #[test]
    fn verify_names_both_ids() {
        let id = BlockId::of(b"one");
        assert!(verify(&id, b"one").is_ok());
        match verify(&id, b"two") {
            Err(Error::CorruptBlock { id: got, actual }) => {
                assert_eq!(got, id);
                assert_eq!(actual, BlockId::of(b"two"));
            }
            other => panic!("expected CorruptBlock, got {other:?}"),
        }
    }
}
