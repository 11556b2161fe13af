//! Links: `noisefs://<root-cid>#<key>` names a file or folder and carries the key that opens it;
//! `noisefs://<root-cid>#argon2id.m<KiB>.t<passes>.p<lanes>.<salt>` carries only the Argon2id cost and a
//! salt, and the key comes from a password (`#argon2id.<salt>`: the legacy cost, 19 MiB and 2 passes).

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE64URL_NOPAD;

use crate::block::BlockId;
use crate::crypto::{KdfCost, Key, SALT_LEN};
use crate::{Error, Result};

/// The URL scheme prefix of every link.
pub const SCHEME: &str = "noisefs://";
const PASSWORD_TAG: &str = "argon2id.";

/// What the fragment of a link holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkSecret {
    /// The descriptor key itself.
    Key(Key),
    /// An Argon2id salt and cost: the key is derived from a password with them.
    Password { salt: [u8; SALT_LEN], cost: KdfCost },
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
            LinkSecret::Password { .. } => None,
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
            LinkSecret::Password { salt, cost } => {
                write!(f, "{SCHEME}{}#{PASSWORD_TAG}", self.root)?;
                if *cost != KdfCost::LEGACY {
                    write!(f, "m{}.t{}.p{}.", cost.memory_kib, cost.passes, cost.lanes)?;
                }
                f.write_str(&BASE64URL_NOPAD.encode(salt))
            }
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
        let secret = if let Some(rest) = frag.strip_prefix(PASSWORD_TAG) {
            let (cost, salt) = match rest.rsplit_once('.') {
                None => (KdfCost::LEGACY, rest),
                Some((params, salt)) => (parse_cost(params).map_err(|r| bad(&r))?, salt),
            };
            let bytes = BASE64URL_NOPAD
                .decode(salt.as_bytes())
                .map_err(|_| bad("the password salt is not base64url"))?;
            let salt: [u8; SALT_LEN] = bytes
                .try_into()
                .map_err(|_| bad("the password salt has the wrong length"))?;
            LinkSecret::Password { salt, cost }
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

/// Parses `m<KiB>.t<passes>.p<lanes>` (that order, each once) and checks the cost is one we derive with.
fn parse_cost(params: &str) -> std::result::Result<KdfCost, String> {
    let parts: Vec<&str> = params.split('.').collect();
    let [m, t, p] = parts[..] else {
        return Err("the password parameters are not m<KiB>.t<passes>.p<lanes>".into());
    };
    let num = |part: &str, tag: char| -> std::result::Result<u32, String> {
        part.strip_prefix(tag)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("the password parameter {part:?} is not {tag}<number>"))
    };
    let cost = KdfCost {
        memory_kib: num(m, 'm')?,
        passes: num(t, 't')?,
        lanes: num(p, 'p')?,
    };
    cost.check()?;
    Ok(cost)
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
        let legacy = Link {
            root: BlockId::of(b""),
            secret: LinkSecret::Password {
                salt: [1; SALT_LEN],
                cost: KdfCost::LEGACY,
            },
        };
        assert_eq!(
            legacy.to_string(),
            "noisefs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku#argon2id.AQEBAQEBAQEBAQEBAQEBAQ"
        );
        assert_eq!(legacy.to_string().parse::<Link>().unwrap(), legacy);
        assert!(legacy.key().is_none());
        let pw = Link {
            root: BlockId::of(b""),
            secret: LinkSecret::Password {
                salt: [1; SALT_LEN],
                cost: KdfCost::DEFAULT,
            },
        };
        assert_eq!(
            pw.to_string(),
            "noisefs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku#argon2id.m65536.t3.p1.AQEBAQEBAQEBAQEBAQEBAQ"
        );
        assert_eq!(pw.to_string().parse::<Link>().unwrap(), pw);
    }

    #[test]
    fn errors_hide_the_key_and_say_what_is_wrong() {
        let good = Link::new(BlockId::of(b"x"), Key::from_bytes([1; 32])).to_string();
        let truncated = &good[..good.len() - 3];
        let err = truncated.parse::<Link>().unwrap_err().to_string();
        assert!(err.contains("wrong length"), "{err}");
        assert!(!err.contains(&good[good.len() - 20..good.len() - 3]), "{err}");
        // A link asking for more memory than a key derivation may take says so.
        let greedy = format!(
            "{}#argon2id.m4194304.t3.p1.AQEBAQEBAQEBAQEBAQEBAQ",
            good.split('#').next().unwrap()
        );
        let err = greedy.parse::<Link>().unwrap_err().to_string();
        assert!(err.contains("memory 4194304 KiB outside"), "{err}");
        for bad in [
            "",
            "http://x",
            "noisefs://",
            "noisefs://abc#def",
            &good.replace('#', ""),
            &format!("{}#argon2id.!!", good.split('#').next().unwrap()),
            &format!("{}#argon2id.AQEB", good.split('#').next().unwrap()),
            &format!(
                "{}#argon2id.m65536.t3.AQEBAQEBAQEBAQEBAQEBAQ",
                good.split('#').next().unwrap()
            ),
            &format!(
                "{}#argon2id.t3.m65536.p1.AQEBAQEBAQEBAQEBAQEBAQ",
                good.split('#').next().unwrap()
            ),
            &format!(
                "{}#argon2id.m.t3.p1.AQEBAQEBAQEBAQEBAQEBAQ",
                good.split('#').next().unwrap()
            ),
            &format!(
                "{}#argon2id.m+5.t3.p1.AQEBAQEBAQEBAQEBAQEBAQ",
                good.split('#').next().unwrap()
            ),
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
        fn password_links_round_trip(
            salt in any::<[u8; SALT_LEN]>(),
            m in 8u32..=KdfCost::MAX_MEMORY_KIB,
            t in 1u32..=KdfCost::MAX_PASSES,
        ) {
            let link = Link {
                root: BlockId::of(&salt),
                secret: LinkSecret::Password { salt, cost: KdfCost { memory_kib: m, passes: t, lanes: 1 } },
            };
            prop_assert_eq!(link.to_string().parse::<Link>().unwrap(), link);
        }

        #[test]
        fn parse_never_panics(s in "noisefs://\\PC{0,120}") {
            let _ = s.parse::<Link>();
        }
    }
}
