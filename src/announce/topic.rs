//! Topic names and subscription patterns. A name is a path of up to [`MAX_DEPTH`] levels
//! (`media/books/scifi`), normalized (lowercase, trimmed, no empty level) before anything is hashed.
//! On the wire a topic is only hashes: an announcement carries one 16-byte hash per level of its
//! name's prefixes ([`levels`]), and travels on the gossipsub topic of its first level
//! ([`wire_topic`]), so a relay learns neither the name nor the deeper levels. A pattern
//! (`media/*/scifi`, `media/**`) is matched against a name when the name is known here (a built-in
//! list, subscriptions, own announcements), and otherwise against the hashes level by level.

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Most levels in a topic name.
pub const MAX_DEPTH: usize = 8;
/// Longest level, in characters.
pub const MAX_LEVEL: usize = 32;
/// A hash of one level's prefix.
pub type LevelHash = [u8; 16];

/// Topics every node knows by name, so hashes of these resolve to names without having been
/// typed here (patterns such as `media/*` list them).
pub const KNOWN: &[&str] = &[
    "media",
    "media/books",
    "media/music",
    "media/video",
    "media/films",
    "media/series",
    "media/podcasts",
    "media/images",
    "media/games",
    "software",
    "software/linux",
    "software/source",
    "software/releases",
    "data",
    "data/datasets",
    "data/maps",
    "data/science",
    "docs",
    "docs/papers",
    "docs/manuals",
    "docs/news",
    "archive",
    "misc",
];

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::Topic {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn check_level(input: &str, level: &str) -> Result<()> {
    if level.chars().count() > MAX_LEVEL {
        return Err(invalid(
            input,
            format!("level {level:?} is longer than {MAX_LEVEL} characters"),
        ));
    }
    if level == "." || level == ".." {
        return Err(invalid(input, "a level cannot be `.` or `..`"));
    }
    if let Some(c) = level
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(
            input,
            format!("{c:?} is not allowed (letters, digits, `-`, `_`, `.`)"),
        ));
    }
    Ok(())
}

fn split(input: &str) -> Result<Vec<String>> {
    let lower = input.trim().to_lowercase();
    let levels: Vec<String> = lower
        .split('/')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if levels.is_empty() {
        return Err(invalid(
            input,
            "a topic needs at least one level, e.g. media/books",
        ));
    }
    if levels.len() > MAX_DEPTH {
        return Err(invalid(input, format!("more than {MAX_DEPTH} levels")));
    }
    Ok(levels)
}

/// The normalized form of topic name `input`.
pub fn normalize(input: &str) -> Result<String> {
    let levels = split(input)?;
    for l in &levels {
        check_level(input, l)?;
    }
    Ok(levels.join("/"))
}

/// The hash of one prefix of a normalized name.
pub fn prefix_hash(prefix: &str) -> LevelHash {
    let mut h = Sha256::new();
    h.update(b"noisefs-topic-v1\0");
    h.update(prefix.as_bytes());
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The hash of every prefix of normalized `name`, shortest first.
pub fn levels(name: &str) -> Vec<LevelHash> {
    let parts: Vec<&str> = name.split('/').collect();
    (1..=parts.len())
        .map(|n| prefix_hash(&parts[..n].join("/")))
        .collect()
}

/// The gossipsub topic announcements whose first level hashes to `first` travel on.
pub fn wire_topic(first: &LevelHash) -> String {
    format!("noisefs/announce/1/{}", data_encoding::HEXLOWER.encode(first))
}

/// A level of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Name(String),
    /// `*`: exactly one level.
    One,
    /// `**`: any number of levels, none included (only last).
    Any,
}

/// A subscription pattern: a topic name whose levels may be `*` (one level) or, last, `**` (any
/// depth, the level above included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Part>,
    /// The hash of each literal prefix before the first wildcard.
    hashes: Vec<LevelHash>,
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Pattern {
    type Err = Error;

    fn from_str(input: &str) -> Result<Pattern> {
        let levels = split(input)?;
        let mut parts = Vec::new();
        for (i, l) in levels.iter().enumerate() {
            parts.push(match l.as_str() {
                "*" => Part::One,
                "**" if i + 1 == levels.len() => Part::Any,
                "**" => return Err(invalid(input, "`**` can only be the last level (media/**)")),
                _ if l.contains('*') => {
                    return Err(invalid(
                        input,
                        "`*` stands for a whole level (media/*), not part of one",
                    ))
                }
                _ => {
                    check_level(input, l)?;
                    Part::Name(l.clone())
                }
            });
        }
        if i_first_wild(&parts) == Some(0) {
            return Err(invalid(
                input,
                "the first level must be a name (media/**, not **)",
            ));
        }
        let mut p = Pattern {
            text: levels.join("/"),
            parts,
            hashes: Vec::new(),
        };
        p.hashes = p.known_prefixes().iter().map(|n| prefix_hash(n)).collect();
        Ok(p)
    }
}

fn i_first_wild(parts: &[Part]) -> Option<usize> {
    parts.iter().position(|p| !matches!(p, Part::Name(_)))
}

impl Pattern {
    /// Whether the pattern is a plain topic name (no wildcard).
    pub fn is_name(&self) -> bool {
        i_first_wild(&self.parts).is_none()
    }

    /// The pattern's text, normalized.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The hash of the first level (what gossipsub topic the pattern listens on).
    pub fn first(&self) -> LevelHash {
        match &self.parts[0] {
            Part::Name(n) => prefix_hash(n),
            // Refused by the parser.
            _ => prefix_hash(""),
        }
    }

    /// The names this pattern's literal levels spell before its first wildcard (each prefix),
    /// so they resolve as known names.
    pub fn known_prefixes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut prefix = String::new();
        for p in &self.parts {
            let Part::Name(n) = p else { break };
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(n);
            out.push(prefix.clone());
        }
        out
    }

    /// Whether normalized topic `name` matches.
    pub fn matches_name(&self, name: &str) -> bool {
        let levels: Vec<&str> = name.split('/').collect();
        let mut i = 0;
        for p in &self.parts {
            match p {
                Part::Any => return true,
                _ if i >= levels.len() => return false,
                Part::One => {}
                Part::Name(n) if n != levels[i] => return false,
                Part::Name(_) => {}
            }
            i += 1;
        }
        i == levels.len()
    }

    /// Whether a topic known only by its level hashes matches: each literal level is checked
    /// against its prefix hash; a literal after a `*` cannot be checked and does not match.
    pub fn matches_levels(&self, levels: &[LevelHash]) -> bool {
        let mut blind = false;
        for (i, p) in self.parts.iter().enumerate() {
            match p {
                Part::Any => return true,
                _ if i >= levels.len() => return false,
                Part::One => blind = true,
                Part::Name(_) if blind => return false,
                Part::Name(_) => {
                    if self.hashes.get(i) != Some(&levels[i]) {
                        return false;
                    }
                }
            }
        }
        self.parts.len() == levels.len()
    }
}

/// What the hashes of an announcement's topic are called here: the full name when it is known,
/// else the longest known prefix followed by `~` and the first hex digits of the unknown rest.
pub fn display(levels: &[LevelHash], known: &dyn Fn(&LevelHash) -> Option<String>) -> String {
    for depth in (1..=levels.len()).rev() {
        if let Some(name) = known(&levels[depth - 1]) {
            if depth == levels.len() {
                return name;
            }
            let rest = data_encoding::HEXLOWER.encode(&levels[levels.len() - 1][..4]);
            return format!("{name}/~{rest}");
        }
    }
    let rest = levels
        .last()
        .map(|l| data_encoding::HEXLOWER.encode(&l[..4]))
        .unwrap_or_default();
    format!("~{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        s.parse().unwrap()
    }

    #[test]
    fn names_normalize_and_bad_ones_are_refused() {
        assert_eq!(normalize(" Media//Books/ ").unwrap(), "media/books");
        assert_eq!(normalize("Médias/Livres").unwrap(), "médias/livres");
        for bad in [
            "",
            "/",
            "a/../b",
            "a b",
            "a/b:c",
            &"x/".repeat(9),
            &"y".repeat(33),
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert!(normalize("a/b:c")
            .unwrap_err()
            .to_string()
            .contains("':' is not allowed"));
        for bad in ["**", "*/x", "a/**/b", "a/b*", "a/:"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad:?}");
        }
        // Fixed vectors (docs/formats.md, announcements).
        assert_eq!(
            data_encoding::HEXLOWER.encode(&prefix_hash("media")),
            data_encoding::HEXLOWER.encode(&Sha256::digest(b"noisefs-topic-v1\0media")[..16])
        );
        assert_eq!(
            levels("media/books"),
            vec![prefix_hash("media"), prefix_hash("media/books")]
        );
        assert!(wire_topic(&prefix_hash("media")).starts_with("noisefs/announce/1/"));
        assert_eq!(
            wire_topic(&[0xab; 16]),
            format!("noisefs/announce/1/{}", "ab".repeat(16))
        );
    }

    #[test]
    fn patterns_match_names_and_hashes_alike() {
        let cases = [
            ("media/books", "media/books", true),
            ("media/books", "media/books/scifi", false),
            ("media/*", "media/books", true),
            ("media/*", "media", false),
            ("media/*", "media/books/scifi", false),
            ("media/**", "media", true),
            ("media/**", "media/books/scifi/old", true),
            ("media/**", "software/linux", false),
            ("media/*/scifi", "media/books/scifi", true),
            ("media/*/scifi", "media/books/poetry", false),
            ("media/books/**", "media/books/scifi", true),
            ("media/books/**", "media/music", false),
        ];
        for (pat, name, want) in cases {
            assert_eq!(p(pat).matches_name(name), want, "{pat} ~ {name}");
            // By hashes: the same, except a literal after `*` cannot be checked blind.
            let blind_ok = !pat.contains("*/scifi");
            assert_eq!(
                p(pat).matches_levels(&levels(name)),
                want && blind_ok,
                "{pat} ~# {name}"
            );
        }
        assert!(p("media/books").is_name() && !p("media/**").is_name());
        assert_eq!(p("Media/Books/*").as_str(), "media/books/*");
        assert_eq!(p("media/books/*").known_prefixes(), vec!["media", "media/books"]);
        assert_eq!(p("media/**").first(), prefix_hash("media"));
    }

    #[test]
    fn unknown_levels_show_as_hashes_under_the_known_prefix() {
        let known = |h: &LevelHash| KNOWN.iter().find(|n| prefix_hash(n) == *h).map(|n| n.to_string());
        assert_eq!(display(&levels("media/books"), &known), "media/books");
        let secret = levels("media/books/secret");
        let tail = data_encoding::HEXLOWER.encode(&secret[2][..4]);
        assert_eq!(display(&secret, &known), format!("media/books/~{tail}"));
        let all = levels("hidden/x");
        assert!(display(&all, &known).starts_with('~'));
        for n in KNOWN {
            assert_eq!(normalize(n).unwrap(), *n);
        }
    }
}
