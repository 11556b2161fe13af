//! Block sizes: powers of two from 4 KiB to 1 MiB, chosen per repository at `noisefs init`.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A validated block size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct BlockSize(usize);

impl BlockSize {
    /// Smallest allowed block size.
    pub const MIN: usize = 4 * 1024;
    /// Largest allowed block size.
    pub const MAX: usize = 1024 * 1024;
    /// The default: 128 KiB.
    pub const DEFAULT: BlockSize = BlockSize(128 * 1024);

    /// Validates `bytes`.
    pub fn new(bytes: usize) -> Result<Self> {
        if bytes.is_power_of_two() && (Self::MIN..=Self::MAX).contains(&bytes) {
            Ok(BlockSize(bytes))
        } else {
            Err(Error::InvalidBlockSize(bytes))
        }
    }

    /// The size in bytes.
    pub fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<usize> for BlockSize {
    type Error = Error;
    fn try_from(v: usize) -> Result<Self> {
        BlockSize::new(v)
    }
}

impl From<BlockSize> for usize {
    fn from(b: BlockSize) -> usize {
        b.0
    }
}

impl fmt::Display for BlockSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1024 * 1024 {
            write!(f, "{}MiB", self.0 / (1024 * 1024))
        } else {
            write!(f, "{}KiB", self.0 / 1024)
        }
    }
}

impl FromStr for BlockSize {
    type Err = Error;
    /// Accepts `131072`, `128K`, `128KiB`, `1M`, `1MiB` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        let (num, mult) = if let Some(n) = t.strip_suffix("kib").or_else(|| t.strip_suffix('k')) {
            (n, 1024)
        } else if let Some(n) = t.strip_suffix("mib").or_else(|| t.strip_suffix('m')) {
            (n, 1024 * 1024)
        } else {
            (t.as_str(), 1)
        };
        let n: usize = num.trim().parse().map_err(|_| Error::InvalidBlockSize(0))?;
        BlockSize::new(n.checked_mul(mult).ok_or(Error::InvalidBlockSize(usize::MAX))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_powers_of_two_in_range() {
        assert_eq!("128KiB".parse::<BlockSize>().unwrap().get(), 131072);
        assert_eq!("4k".parse::<BlockSize>().unwrap().get(), 4096);
        assert_eq!("1M".parse::<BlockSize>().unwrap().get(), 1 << 20);
        assert_eq!("65536".parse::<BlockSize>().unwrap().get(), 65536);
        assert_eq!(BlockSize::DEFAULT.to_string(), "128KiB");
        assert_eq!(BlockSize::new(1 << 20).unwrap().to_string(), "1MiB");
    }

    #[test]
    fn refuses_others() {
        for bad in ["2k", "2M", "100000", "abc", "", "99999999999999999999M"] {
            assert!(bad.parse::<BlockSize>().is_err(), "{bad}");
        }
        assert!(BlockSize::try_from(3000usize).is_err());
    }
}
