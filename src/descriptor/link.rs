//! Links: `noisefs://<root-cid>#<key>` names a file or folder and carries the key that opens it;
//! `noisefs://<root-cid>#argon2id.<salt>` carries only a salt, and the key comes from a password.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE64URL_NOPAD;

use crate::block::BlockId;
use crate::crypto::{Key, SALT_LEN};
use crate::{Error, Result};

/// The URL scheme prefix of every link.
pub const SCHEME: &str = "noisefs://";
const PASSWORD_TAG: &str = "argon2id.";

/// What the fragment of a link holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkSecret {
    /// The descriptor key itself.
    Key(Key),
    /// An Argon2id salt: the key is derived from a password and this salt.
    Password([u8; SALT_LEN]),
}

/// A parsed link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The root descriptor block.
    pub root: BlockId,
    /// How to obtain the key.
    pub secret: LinkSecret,
}

impl Link {
    /// A link that carries its key.
    pub fn new(root: BlockId, key: Key) -> Self {
        Link {
            root,
            secret: LinkSecret::Key(key),
        }
    }

    /// The key, if the link carries one.
    pub fn key(&self) -> Option<&Key> {
        match &self.secret {
            LinkSecret::Key(k) => Some(k),
            LinkSecret::Password(_) => None,
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.secret {
            LinkSecret::Key(k) => write!(
                f,
                "{SCHEME}{}#{}",
                self.root,
                BASE64URL_NOPAD.encode(k.as_bytes())
            ),
            LinkSecret::Password(s) => write!(
                f,
                "{SCHEME}{}#{PASSWORD_TAG}{}",
                self.root,
                BASE64URL_NOPAD.encode(s)
            ),
        }
    }
}

impl FromStr for Link {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidLink {
            input: redact(s),
            reason: reason.into(),
        };
        let s = s.trim();
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with noisefs://"))?;
        let (cid, frag) = rest
            .split_once('#')
            .ok_or_else(|| bad("the #key part is missing (was the link cut when copied?)"))?;
        let root: BlockId = cid
            .parse()
            .map_err(|_| bad("the block id before # is not a valid CID"))?;
        let secret = if let Some(salt) = frag.strip_prefix(PASSWORD_TAG) {
            let bytes = BASE64URL_NOPAD
                .decode(salt.as_bytes())
                .map_err(|_| bad("the password salt is not base64url"))?;
            let salt: [u8; SALT_LEN] = bytes
                .try_into()
                .map_err(|_| bad("the password salt has the wrong length"))?;
            LinkSecret::Password(salt)
        } else {
            if frag.len() != 43 {
                return Err(bad("the key has the wrong length (truncated link?)"));
            }
            let bytes = BASE64URL_NOPAD
                .decode(frag.as_bytes())
                .map_err(|_| bad("the key is not base64url"))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("the key has the wrong length (truncated link?)"))?;
            LinkSecret::Key(Key::from_bytes(key))
        };
        Ok(Link { root, secret })
    }
}

/// Shortens a link for error messages and hides its key.
fn redact(s: &str) -> String {
    let head = s.split('#').next().unwrap_or_default();
    let head: String = head.chars().take(100).collect();
    if s.contains('#') {
        format!("{head}#…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_vector() {
        let link = Link::new(BlockId::of(b""), Key::from_bytes([0xab; 32]));
        let s = link.to_string();
        assert_eq!(
            s,
            "noisefs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku#q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s"
        );
        assert_eq!(s.parse::<Link>().unwrap(), link);
        let pw = Link {
            root: BlockId::of(b""),
            secret: LinkSecret::Password([1; SALT_LEN]),
        };
        assert_eq!(
            pw.to_string(),
            "noisefs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku#argon2id.AQEBAQEBAQEBAQEBAQEBAQ"
        );
        assert_eq!(pw.to_string().parse::<Link>().unwrap(), pw);
        assert!(pw.key().is_none());
    }

    #[test]
    fn errors_hide_the_key_and_say_what_is_wrong() {
        let good = Link::new(BlockId::of(b"x"), Key::from_bytes([1; 32])).to_string();
        let truncated = &good[..good.len() - 3];
        let err = truncated.parse::<Link>().unwrap_err().to_string();
        assert!(err.contains("wrong length"), "{err}");
        assert!(!err.contains(&good[good.len() - 20..good.len() - 3]), "{err}");
        for bad in [
            "",
            "http://x",
            "noisefs://",
            "noisefs://abc#def",
            &good.replace('#', ""),
            &format!("{}#argon2id.!!", good.split('#').next().unwrap()),
            &format!("{}#argon2id.AQEB", good.split('#').next().unwrap()),
            &format!("{}#@@@", good.split('#').next().unwrap()),
        ] {
            assert!(bad.parse::<Link>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(key in any::<[u8; 32]>(), data in any::<Vec<u8>>()) {
            let link = Link::new(BlockId::of(&data), Key::from_bytes(key));
            prop_assert_eq!(link.to_string().parse::<Link>().unwrap(), link);
        }

        #[test]
        fn parse_never_panics(s in "noisefs://\\PC{0,120}") {
            let _ = s.parse::<Link>();
        }
    }
}
