//! Unsigned LEB128 varints, as multiformats and protobuf write them (at most 10 bytes for a u64).

/// Appends `v` to `out`.
pub fn encode(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at the start of `bytes`: its value and length, or `None` when truncated or longer
/// than a u64.
pub fn decode(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_vectors() {
        for (v, bytes) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            encode(v, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(decode(&bytes), Some((v, bytes.len())));
        }
        assert_eq!(decode(&[0x80]), None);
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0xff; 10]), None);
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip(v in proptest::num::u64::ANY) {
            let mut out = Vec::new();
            encode(v, &mut out);
            proptest::prop_assert_eq!(decode(&out), Some((v, out.len())));
        }
    }
}
