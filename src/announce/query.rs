//! What `discover` and the mount ask of the stored announcements: filters (topic pattern, tags,
//! category, time, publisher, words of the title, size) over the fixed fields of each record, ranked
//! by how many asked tags match, then newest first; only the hits shown are decoded in full.

use std::collections::HashSet;

use serde::Serialize;

use super::format::{publisher_text, Announcement, Category};
use super::store::{AnnounceStore, Entry};
use super::topic::{display, prefix_hash, LevelHash, Pattern, KNOWN};
use crate::Result;

/// Topic names known here, by the hash of each.
#[derive(Debug, Default, Clone)]
pub struct Names {
    by_hash: std::collections::HashMap<LevelHash, String>,
}

impl Names {
    /// The built-in names, those learned by the store and the literal prefixes of subscriptions.
    pub fn load(store: &AnnounceStore) -> Result<Names> {
        let mut n = Names::default();
        for k in KNOWN {
            n.add(k);
        }
        for t in store.learned_topics()? {
            n.add(&t);
        }
        for (s, _) in store.subscriptions()? {
            if let Ok(p) = s.parse::<Pattern>() {
                for pre in p.known_prefixes() {
                    n.add(&pre);
                }
            }
        }
        Ok(n)
    }

    /// Adds normalized `name` and its prefixes.
    pub fn add(&mut self, name: &str) {
        let parts: Vec<&str> = name.split('/').collect();
        for i in 1..=parts.len() {
            let pre = parts[..i].join("/");
            self.by_hash.insert(prefix_hash(&pre), pre);
        }
    }

    /// The name of a level hash, when known.
    pub fn name(&self, h: &LevelHash) -> Option<String> {
        self.by_hash.get(h).cloned()
    }

    /// What a topic's hashes are called here.
    pub fn show(&self, levels: &[LevelHash]) -> String {
        display(levels, &|h| self.name(h))
    }

    /// A matcher for `pattern`: the known names it matches, and its structural match.
    pub fn matcher<'a>(&self, pattern: &'a Pattern) -> Matcher<'a> {
        let full: HashSet<LevelHash> = self
            .by_hash
            .iter()
            .filter(|(_, n)| pattern.matches_name(n))
            .map(|(h, _)| *h)
            .collect();
        Matcher { pattern, full }
    }
}

/// Matches announcements' topics against one pattern.
pub struct Matcher<'a> {
    pattern: &'a Pattern,
    full: HashSet<LevelHash>,
}

impl Matcher<'_> {
    pub fn matches(&self, levels: &[LevelHash]) -> bool {
        levels.last().is_some_and(|l| self.full.contains(l)) || self.pattern.matches_levels(levels)
    }
}

/// A `discover` question; every field set narrows it.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub topics: Vec<Pattern>,
    pub tags: Vec<String>,
    pub category: Option<Category>,
    /// Only announcements made at or after this time (seconds).
    pub since: Option<u64>,
    pub publisher: Option<[u8; 32]>,
    /// Words every one of which the title must contain (case-insensitive).
    pub words: Vec<String>,
    /// Size classes allowed (see [`super::format::size_class`]), inclusive.
    pub size_classes: Option<(u8, u8)>,
    pub limit: usize,
}

/// One announcement found.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    #[serde(skip)]
    pub id: [u8; 32],
    pub title: String,
    pub topic: String,
    /// The link, or none for a private announcement.
    pub link: Option<String>,
    pub root: String,
    pub folder: bool,
    pub category: Category,
    /// The size's upper bound (the size class's), bytes.
    pub size_below: u64,
    pub media_type: String,
    pub publisher: String,
    pub time: u64,
    pub expires: u64,
    /// How many asked tags it has.
    pub tags_matched: usize,
    /// The topic's level hashes (for matching patterns).
    #[serde(skip)]
    pub levels: Vec<LevelHash>,
}

impl Hit {
    /// The hit of a stored entry (decoding its announcement in full).
    pub fn of(e: &Entry, names: &Names, tags_matched: usize) -> Result<Hit> {
        let a = Announcement::decode(&e.bytes)?;
        Ok(Hit {
            id: e.id,
            title: e.title.clone(),
            topic: names.show(&e.levels),
            link: a.body.link,
            root: a.body.root,
            folder: e.folder,
            category: e.category,
            size_below: 1u64.checked_shl(e.size_class as u32).unwrap_or(u64::MAX),
            media_type: a.body.media_type,
            publisher: publisher_text(&e.publisher),
            time: e.time,
            expires: e.expires,
            tags_matched,
            levels: e.levels.clone(),
        })
    }
}

/// How a hit ranks: tags matched, then time, then (lowest first) id.
type Rank = (usize, u64, std::cmp::Reverse<Vec<u8>>);

/// The announcements `q` asks for, best first, at most `q.limit` (0: no limit); expired ones
/// (at `now`, seconds) are left out. One pass over the records' fixed fields; only the best
/// `limit` are copied and decoded.
pub fn discover(store: &AnnounceStore, names: &Names, q: &Query, now: u64) -> Result<Vec<Hit>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let matchers: Vec<Matcher> = q.topics.iter().map(|p| names.matcher(p)).collect();
    let words: Vec<String> = q.words.iter().map(|w| w.to_lowercase()).collect();
    let tag_bits: Vec<[usize; super::format::BLOOM_K]> =
        q.tags.iter().map(|t| super::format::tag_bits(t)).collect();
    let publisher = q.publisher.as_ref().map(|p| p.as_slice());
    // The best so far, worst on top.
    let mut best: BinaryHeap<Reverse<Rank>> = BinaryHeap::new();
    let mut levels = [[0u8; 16]; super::topic::MAX_DEPTH];
    store.each_view(&mut |e| {
        if e.expires <= now
            || q.since.is_some_and(|s| e.time < s)
            || q.category.is_some_and(|c| c != e.category)
            || publisher.is_some_and(|p| p != e.publisher)
            || q.size_classes
                .is_some_and(|(lo, hi)| e.size_class < lo || e.size_class > hi)
        {
            return Ok(true);
        }
        if !matchers.is_empty() {
            let mut n = 0;
            for l in e.level_hashes().take(levels.len()) {
                levels[n] = l;
                n += 1;
            }
            if !matchers.iter().any(|m| m.matches(&levels[..n])) {
                return Ok(true);
            }
        }
        if !words.is_empty() {
            let title = e.title.to_lowercase();
            if !words.iter().all(|w| title.contains(w.as_str())) {
                return Ok(true);
            }
        }
        let matched = tag_bits
            .iter()
            .filter(|b| b.iter().all(|b| e.tags[b / 8] & (1 << (b % 8)) != 0))
            .count();
        if !tag_bits.is_empty() && matched == 0 {
            return Ok(true);
        }
        let rank = (matched, e.time, Reverse(e.id.to_vec()));
        if q.limit > 0 && best.len() >= q.limit {
            match best.peek() {
                Some(Reverse(worst)) if rank <= *worst => return Ok(true),
                _ => {}
            }
            best.pop();
        }
        best.push(Reverse(rank));
        Ok(true)
    })?;
    let mut ranked: Vec<Rank> = best.into_iter().map(|Reverse(r)| r).collect();
    ranked.sort_by(|a, b| b.cmp(a));
    let mut out = Vec::with_capacity(ranked.len());
    for (m, _, Reverse(id)) in ranked {
        let id: [u8; 32] = id.as_slice().try_into().unwrap_or([0; 32]);
        if let Some(e) = store.get(&id)? {
            out.push(Hit::of(&e, names, m));
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::format::tests::{body, key};
    use crate::announce::format::Tags;
    use crate::state::State;

    #[test]
    fn discover_filters_and_ranks_by_tags_then_recency() {
        let d = tempfile::tempdir().unwrap();
        let state = State::open(d.path()).unwrap();
        let s = AnnounceStore::open(&state).unwrap();
        let (k1, k2) = (key(10), key(11));
        let mut b = body(&k1, "media/books", "Dune Messiah", 1, 100);
        b.tags = Tags::of(&["scifi"]).0;
        s.insert(&b.sign(&k1).unwrap(), 0, 100).unwrap();
        let mut b = body(&k1, "media/books/secret", "Dune", 2, 200);
        b.tags = Tags::of(&["scifi", "classic"]).0;
        s.insert(&b.sign(&k1).unwrap(), 0, 100).unwrap();
        let mut b = body(&k2, "software/linux", "Debian 13", 3, 300);
        b.category = Category::Software;
        b.size_class = 30;
        b.tags = Tags::of(&["linux"]).0;
        s.insert(&b.sign(&k2).unwrap(), 0, 100).unwrap();
        let names = Names::load(&s).unwrap();
        let q = |f: &dyn Fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            discover(&s, &names, &q, 150)
                .unwrap()
                .into_iter()
                .map(|h| h.title)
                .collect::<Vec<_>>()
        };
        assert_eq!(q(&|_| {}), ["Debian 13", "Dune", "Dune Messiah"]);
        assert_eq!(
            q(&|q| q.tags = vec!["classic".into(), "scifi".into()]),
            ["Dune", "Dune Messiah"]
        );
        assert_eq!(
            q(&|q| q.topics = vec!["media/**".parse().unwrap()]),
            ["Dune", "Dune Messiah"]
        );
        assert_eq!(
            q(&|q| q.topics = vec!["media/books".parse().unwrap()]),
            ["Dune Messiah"]
        );
        assert_eq!(
            q(&|q| q.topics = vec!["software/*".parse().unwrap()]),
            ["Debian 13"]
        );
        assert_eq!(q(&|q| q.category = Some(Category::Software)), ["Debian 13"]);
        assert_eq!(q(&|q| q.since = Some(150)), ["Debian 13", "Dune"]);
        assert_eq!(
            q(&|q| q.publisher = Some(k2.verifying_key().to_bytes())),
            ["Debian 13"]
        );
        assert_eq!(q(&|q| q.words = vec!["MESSIAH".into()]), ["Dune Messiah"]);
        assert_eq!(q(&|q| q.size_classes = Some((20, 40))), ["Debian 13"]);
        assert_eq!(q(&|q| q.limit = 1), ["Debian 13"]);
        let hits = discover(&s, &names, &Query::default(), 3_750).unwrap();
        assert_eq!(hits.len(), 2, "the first expired at 3700");
        let secret = hits.iter().find(|h| h.title == "Dune").unwrap();
        assert!(secret.topic.starts_with("media/books/~"), "{}", secret.topic);
        assert_eq!(secret.tags_matched, 0);
        assert!(secret.link.is_some() && secret.publisher.starts_with("np"));
    }
}
