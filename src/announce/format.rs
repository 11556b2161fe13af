//! The announcement format, version 1 (docs/formats.md §14): what a publisher says about a link,
//! signed by its publisher key. On the wire an announcement is a CBOR map `{v: 1, body: bytes,
//! sig: bytes(64)}`; `body` is the CBOR of [`Body`], and the ed25519 signature covers
//! `"noisefs-announce-v1\0" ‖ body` exactly as sent, so no re-encoding is ever needed to verify.
//! Tags travel only in a Bloom filter ([`Tags`]), so relays and stores can test a tag they know
//! but not list the tags. Decoding checks every bound before anything is kept.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::topic::{LevelHash, MAX_DEPTH};
use crate::{Error, Result};

/// The format version written and read.
pub const VERSION: u8 = 1;
/// The largest encoded announcement.
pub const MAX_BYTES: usize = 4096;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest media type.
pub const MAX_MEDIA_TYPE: usize = 100;
/// Most tags a publisher may give.
pub const MAX_TAGS: usize = 16;
/// Size of the tag filter, in bytes.
pub const BLOOM_BYTES: usize = 64;
/// Bits set per tag.
pub const BLOOM_K: usize = 4;
const DOMAIN: &[u8] = b"noisefs-announce-v1\0";

/// What kind of content an announcement points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Video,
    Audio,
    Document,
    Image,
    Software,
    Data,
    Other,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Video,
        Category::Audio,
        Category::Document,
        Category::Image,
        Category::Software,
        Category::Data,
        Category::Other,
    ];

    /// The category's name.
    pub fn name(self) -> &'static str {
        match self {
            Category::Video => "video",
            Category::Audio => "audio",
            Category::Document => "document",
            Category::Image => "image",
            Category::Software => "software",
            Category::Data => "data",
            Category::Other => "other",
        }
    }

    /// The category of a media type (`video/mp4` is video); folders and unknown types are other.
    pub fn of_media_type(mime: &str) -> Category {
        let (top, sub) = mime.split_once('/').unwrap_or((mime, ""));
        match top {
            "video" => Category::Video,
            "audio" => Category::Audio,
            "image" => Category::Image,
            "text" => Category::Document,
            "application" if sub.contains("pdf") || sub.contains("epub") || sub.contains("document") => {
                Category::Document
            }
            "application"
                if sub.contains("executable") || sub.contains("x-sh") || sub.contains("package") =>
            {
                Category::Software
            }
            "application" if sub.contains("json") || sub.contains("csv") || sub.contains("sql") => {
                Category::Data
            }
            _ => Category::Other,
        }
    }
}

impl std::str::FromStr for Category {
    type Err = Error;
    fn from_str(s: &str) -> Result<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.name() == s.trim().to_lowercase())
            .ok_or_else(|| Error::Unsupported {
                what: format!("category {s:?}"),
                reason: "use video, audio, document, image, software, data or other".into(),
            })
    }
}

/// The size class of `bytes`: its bit length (0 for empty; class c holds sizes in [2^(c-1), 2^c)).
pub fn size_class(bytes: u64) -> u8 {
    (64 - bytes.leading_zeros()) as u8
}

/// A Bloom filter of normalized tags ([`BLOOM_BYTES`] bytes, [`BLOOM_K`] bits per tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags(pub [u8; BLOOM_BYTES]);

impl Default for Tags {
    fn default() -> Self {
        Tags([0; BLOOM_BYTES])
    }
}

/// A tag as it is hashed: trimmed and lowercase.
pub fn normalize_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

/// The filter bits of `tag`.
pub fn tag_bits(tag: &str) -> [usize; BLOOM_K] {
    let d = Sha256::digest([b"noisefs-tag-v1\0".as_slice(), normalize_tag(tag).as_bytes()].concat());
    std::array::from_fn(|i| u16::from_le_bytes([d[2 * i], d[2 * i + 1]]) as usize % (BLOOM_BYTES * 8))
}

impl Tags {
    /// The filter of `tags`.
    pub fn of<S: AsRef<str>>(tags: &[S]) -> Tags {
        let mut t = Tags::default();
        for tag in tags {
            for b in tag_bits(tag.as_ref()) {
                t.0[b / 8] |= 1 << (b % 8);
            }
        }
        t
    }

    /// Whether `tag` may be in the filter (false positives are rare; no false negatives).
    pub fn contains(&self, tag: &str) -> bool {
        tag_bits(tag).iter().all(|b| self.0[b / 8] & (1 << (b % 8)) != 0)
    }
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub v: u8,
    /// The publisher's ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub publisher: [u8; 32],
    /// The root block id of the link (always).
    pub root: String,
    /// The whole `noisefs://` link, or none for a private announcement (its key is given out of band).
    pub link: Option<String>,
    pub title: String,
    /// Whether the link is a folder.
    pub folder: bool,
    /// The hash of each prefix of the topic name (see [`super::topic::levels`]).
    pub topic: Vec<serde_bytes::ByteArray<16>>,
    #[serde(with = "serde_bytes")]
    pub tags: [u8; BLOOM_BYTES],
    pub category: Category,
    pub size_class: u8,
    pub media_type: String,
    /// Seconds since the epoch.
    pub time: u64,
    /// Seconds after `time` the announcement stays.
    pub ttl: u32,
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 16],
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    sig: Vec<u8>,
}

/// An announcement that decoded and whose signature holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub body: Body,
    /// The encoded announcement, as received or sent.
    pub bytes: Vec<u8>,
}

fn refused(reason: impl Into<String>) -> Error {
    Error::Announcement(reason.into())
}

impl Body {
    /// The topic's level hashes.
    pub fn levels(&self) -> Vec<LevelHash> {
        self.topic.iter().map(|l| l.into_array()).collect()
    }

    fn check(&self) -> Result<()> {
        if self.v != VERSION {
            return Err(refused(format!(
                "format version {} (this noisefs reads {VERSION})",
                self.v
            )));
        }
        if self.topic.is_empty() || self.topic.len() > MAX_DEPTH {
            return Err(refused(format!("a topic of {} levels", self.topic.len())));
        }
        if self.title.chars().count() > MAX_TITLE || self.title.trim().is_empty() {
            return Err(refused(format!("a title must have 1 to {MAX_TITLE} characters")));
        }
        if self.title.chars().any(|c| c.is_control()) {
            return Err(refused("a title with control characters"));
        }
        if self.media_type.len() > MAX_MEDIA_TYPE {
            return Err(refused("a media type over 100 bytes"));
        }
        if self.root.parse::<crate::block::BlockId>().is_err() {
            return Err(refused(format!("root {:?} is not a block id", self.root)));
        }
        if let Some(link) = &self.link {
            let parsed: crate::descriptor::Link = link.parse().map_err(|_| refused("a malformed link"))?;
            if parsed.root.to_string() != self.root {
                return Err(refused("a link whose root is not the announced root"));
            }
        }
        Ok(())
    }

    /// Signs and encodes, checking the bounds a receiver checks.
    pub fn sign(self, key: &SigningKey) -> Result<Announcement> {
        if self.publisher != key.verifying_key().to_bytes() {
            return Err(refused("the publisher key is not the signing key"));
        }
        self.check()?;
        let body = cbor(&self)?;
        let sig = key.sign(&[DOMAIN, &body].concat()).to_bytes().to_vec();
        let bytes = cbor(&Wire {
            v: VERSION,
            body,
            sig,
        })?;
        if bytes.len() > MAX_BYTES {
            return Err(refused(format!(
                "{} bytes encoded, over the {MAX_BYTES}-byte cap (shorten the title)",
                bytes.len()
            )));
        }
        Ok(Announcement { body: self, bytes })
    }
}

/// `v` as CBOR.
pub(crate) fn cbor<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| refused(format!("cannot encode: {e}")))?;
    Ok(out)
}

impl Announcement {
    /// Decodes `bytes` and verifies the signature and every bound; nothing else is trusted.
    pub fn decode(bytes: &[u8]) -> Result<Announcement> {
        if bytes.len() > MAX_BYTES {
            return Err(refused(format!(
                "{} bytes, over the {MAX_BYTES}-byte cap",
                bytes.len()
            )));
        }
        let wire: Wire = ciborium::from_reader(bytes).map_err(|e| refused(format!("malformed: {e}")))?;
        if wire.v != VERSION {
            return Err(refused(format!(
                "format version {} (this noisefs reads {VERSION})",
                wire.v
            )));
        }
        let body: Body =
            ciborium::from_reader(&wire.body[..]).map_err(|e| refused(format!("malformed body: {e}")))?;
        body.check()?;
        let key =
            VerifyingKey::from_bytes(&body.publisher).map_err(|_| refused("a malformed publisher key"))?;
        let sig: [u8; 64] = wire
            .sig
            .as_slice()
            .try_into()
            .map_err(|_| refused("a signature that is not 64 bytes"))?;
        key.verify_strict(&[DOMAIN, &wire.body].concat(), &Signature::from_bytes(&sig))
            .map_err(|_| refused("a forged signature"))?;
        Ok(Announcement {
            body,
            bytes: bytes.to_vec(),
        })
    }

    /// The announcement's id: SHA-256 of its publisher key and nonce (a replay has the same).
    pub fn id(&self) -> [u8; 32] {
        id_of(&self.body.publisher, &self.body.nonce)
    }

    /// When it expires, seconds since the epoch.
    pub fn expires(&self) -> u64 {
        self.body.time.saturating_add(self.body.ttl as u64)
    }

    /// The publisher key as text (what `publishers` shows and `--publisher` takes).
    pub fn publisher(&self) -> String {
        publisher_text(&self.body.publisher)
    }
}

/// The id of an announcement by `publisher` with `nonce`.
pub fn id_of(publisher: &[u8; 32], nonce: &[u8; 16]) -> [u8; 32] {
    Sha256::digest([publisher.as_slice(), nonce].concat()).into()
}

/// A publisher key as text: `np` and the base32 of the key.
pub fn publisher_text(key: &[u8; 32]) -> String {
    format!("np{}", data_encoding::BASE32_NOPAD.encode(key).to_lowercase())
}

/// The key a publisher text names.
pub fn parse_publisher(text: &str) -> Result<[u8; 32]> {
    let bad = || Error::Unsupported {
        what: format!("publisher {text:?}"),
        reason: "give a key as `noisefs publishers` prints it (np…)".into(),
    };
    let rest = text.trim().strip_prefix("np").ok_or_else(bad)?;
    let bytes = data_encoding::BASE32_NOPAD
        .decode(rest.to_uppercase().as_bytes())
        .map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::announce::topic::levels;

    pub(crate) fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    pub(crate) fn body(key: &SigningKey, topic: &str, title: &str, nonce: u8, time: u64) -> Body {
        let id = crate::block::BlockId::of(b"announced");
        let link = crate::descriptor::Link::new(id, crate::crypto::Key::from_bytes([9; 32]));
        Body {
            v: VERSION,
            publisher: key.verifying_key().to_bytes(),
            link: Some(link.to_string()),
            root: id.to_string(),
            title: title.into(),
            folder: false,
            topic: levels(topic)
                .into_iter()
                .map(serde_bytes::ByteArray::new)
                .collect(),
            tags: Tags::of(&["scifi", "classic"]).0,
            category: Category::Document,
            size_class: size_class(5000),
            media_type: "application/epub+zip".into(),
            time,
            ttl: 3600,
            nonce: [nonce; 16],
        }
    }

    #[test]
    fn announcements_round_trip_and_the_vector_is_fixed() {
        let k = key(1);
        let b = body(&k, "media/books", "Dune", 7, 1_700_000_000);
        let a = b.clone().sign(&k).unwrap();
        let back = Announcement::decode(&a.bytes).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.body.levels(), levels("media/books"));
        assert!(a.bytes.len() < 700, "{}", a.bytes.len());
        // The same body and key sign to the same bytes (ed25519 is deterministic): a fixed vector.
        let again = b.clone().sign(&k).unwrap();
        assert_eq!(again.bytes, a.bytes);
        assert_eq!(&a.bytes[..3], &[0xa3, 0x61, 0x76], "a CBOR map of 3, key \"v\"");
        let digest = data_encoding::HEXLOWER.encode(&Sha256::digest(&a.bytes)[..8]);
        assert_eq!(digest, "5cc00fbad1ab7690");
        // A link whose root differs from the announced root is refused.
        let mut other = b.clone();
        other.root = crate::block::BlockId::of(b"other").to_string();
        assert!(other.sign(&k).unwrap_err().to_string().contains("root"));
        let mut private = b.clone();
        private.link = None;
        assert!(Announcement::decode(&private.sign(&k).unwrap().bytes)
            .unwrap()
            .body
            .link
            .is_none());
        assert_eq!(a.id(), id_of(&k.verifying_key().to_bytes(), &[7; 16]));
        assert_eq!(a.expires(), 1_700_003_600);
        let text = a.publisher();
        assert_eq!(parse_publisher(&text).unwrap(), k.verifying_key().to_bytes());
        assert!(parse_publisher("np!!").is_err() && parse_publisher("xyz").is_err());
    }

    #[test]
    fn forged_oversized_and_malformed_announcements_are_refused() {
        let k = key(2);
        let a = body(&k, "media/books", "Dune", 1, 1).sign(&k).unwrap();
        // Any flipped byte: malformed or a forged signature, never accepted.
        for i in 0..a.bytes.len() {
            let mut bad = a.bytes.clone();
            bad[i] ^= 0x01;
            if let Ok(d) = Announcement::decode(&bad) {
                panic!("byte {i} flipped still decodes: {d:?}");
            }
        }
        let mut wire: Wire = ciborium::from_reader(&a.bytes[..]).unwrap();
        wire.sig = vec![0; 64];
        let forged = cbor(&wire).unwrap();
        assert!(Announcement::decode(&forged)
            .unwrap_err()
            .to_string()
            .contains("forged"));
        assert!(Announcement::decode(&vec![0; MAX_BYTES + 1])
            .unwrap_err()
            .to_string()
            .contains("cap"));
        assert!(Announcement::decode(b"\xff\x00").is_err());
        // Signed by another key than it names.
        assert!(body(&k, "m", "t", 1, 1).sign(&key(3)).is_err());
        // Bounds a publisher cannot exceed.
        let mut long = body(&k, "m", "t", 1, 1);
        long.title = "x".repeat(MAX_TITLE + 1);
        assert!(long.sign(&k).is_err());
        let mut blank = body(&k, "m", "t", 1, 1);
        blank.title = " ".into();
        assert!(blank.sign(&k).is_err());
        let mut ctl = body(&k, "m", "t", 1, 1);
        ctl.title = "a\nb".into();
        assert!(ctl.sign(&k).is_err());
        let mut deep = body(&k, "m", "t", 1, 1);
        deep.topic = vec![serde_bytes::ByteArray::new([0; 16]); MAX_DEPTH + 1];
        assert!(deep.sign(&k).is_err());
        let mut root = body(&k, "m", "t", 1, 1);
        root.root = "nope".into();
        assert!(root.sign(&k).is_err());
        let mut mime = body(&k, "m", "t", 1, 1);
        mime.media_type = "x".repeat(101);
        assert!(mime.sign(&k).is_err());
        let mut v = body(&k, "m", "t", 1, 1);
        v.v = 2;
        assert!(v.sign(&k).unwrap_err().to_string().contains("version 2"));
    }

    #[test]
    fn tags_categories_and_size_classes() {
        let t = Tags::of(&["SciFi ", "classic"]);
        assert!(t.contains("scifi") && t.contains("Classic"));
        let misses = (0..1000).filter(|i| t.contains(&format!("other{i}"))).count();
        assert!(misses < 5, "{misses} false positives in 1000");
        assert!(!Tags::default().contains("scifi"));
        assert_eq!(
            (size_class(0), size_class(1), size_class(1024), size_class(1025)),
            (0, 1, 11, 11)
        );
        assert_eq!(Category::of_media_type("video/mp4"), Category::Video);
        assert_eq!(Category::of_media_type("application/pdf"), Category::Document);
        assert_eq!(Category::of_media_type("text/plain"), Category::Document);
        assert_eq!(Category::of_media_type("audio/ogg"), Category::Audio);
        assert_eq!(Category::of_media_type("image/png"), Category::Image);
        assert_eq!(Category::of_media_type("application/json"), Category::Data);
        assert_eq!(
            Category::of_media_type("application/x-executable"),
            Category::Software
        );
        assert_eq!(Category::of_media_type("inode/directory"), Category::Other);
        for c in Category::ALL {
            assert_eq!(c.name().parse::<Category>().unwrap(), c);
        }
        assert!("films".parse::<Category>().is_err());
    }
}
