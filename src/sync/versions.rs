//! Versions that sync replaced or deleted, on either side, kept for `[sync] keep_versions_days`:
//! each is the link of the content it had (already sealed, so keeping it costs only the blocks it
//! holds, which gc keeps) or a small file's bytes themselves, recorded in LMDB `sync_versions` by tree
//! path and time. Listed by
//! `noisefs sync versions`, put back by `noisefs sync restore`.

use heed::types::Bytes;
use heed::Database;
use serde::{Deserialize, Serialize};

use serde_bytes::ByteBuf;

use crate::state::State;
use crate::tree::Content;
use crate::Result;

/// Why a version was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Why {
    /// A newer version took its place.
    Replaced,
    /// It was deleted.
    Deleted,
}

/// One kept version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The tree path it had.
    pub path: String,
    /// When it was replaced or deleted (ms since the epoch).
    pub time: i64,
    pub why: Why,
    /// Its content (a file link, or a small file's bytes).
    #[serde(skip)]
    pub content: Content,
    pub size: u64,
    /// Its modification time (ns since the epoch) and permission bits.
    pub mtime: i64,
    pub mode: u32,
}

#[derive(Serialize, Deserialize)]
struct Record {
    why: Why,
    /// Empty when `data` holds the content.
    #[serde(default)]
    link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<ByteBuf>,
    size: u64,
    mtime: i64,
    mode: u32,
}

/// The `sync_versions` database.
#[derive(Clone)]
pub struct Versions {
    env: heed::Env,
    db: Database<Bytes, Bytes>,
}

fn prefix(path: &str) -> Vec<u8> {
    let mut k = path.as_bytes().to_vec();
    k.push(0);
    k
}

fn key(path: &str, time: i64) -> Vec<u8> {
    let mut k = prefix(path);
    k.extend_from_slice(&time.to_be_bytes());
    k
}

fn decode(k: &[u8], v: &[u8]) -> Result<Version> {
    let r: Record = super::decode("sync_versions", v)?;
    let split = k.len().saturating_sub(9);
    let time = k
        .get(split + 1..)
        .and_then(|t| <[u8; 8]>::try_from(t).ok())
        .map(i64::from_be_bytes)
        .unwrap_or_default();
    Ok(Version {
        path: String::from_utf8_lossy(&k[..split]).into_owned(),
        time,
        why: r.why,
        content: match r.data {
            Some(d) => Content::Data(d.into_vec()),
            None if r.link.is_empty() => Content::Empty,
            None => Content::Link(r.link),
        },
        size: r.size,
        mtime: r.mtime,
        mode: r.mode,
    })
}

impl Versions {
    /// Opens `sync_versions` in `state`.
    pub fn open(state: &State) -> Result<Versions> {
        Ok(Versions {
            env: state.env().clone(),
            db: state.database("sync_versions")?,
        })
    }

    /// Keeps `v` unless the newest kept version of its path already holds the same content.
    pub fn keep(&self, v: &Version) -> Result<()> {
        if self
            .list(&v.path)?
            .first()
            .is_some_and(|n| n.content == v.content)
        {
            return Ok(());
        }
        let rec = Record {
            why: v.why,
            link: v.content.link().unwrap_or_default().to_string(),
            data: match &v.content {
                Content::Data(d) => Some(ByteBuf::from(d.clone())),
                _ => None,
            },
            size: v.size,
            mtime: v.mtime,
            mode: v.mode,
        };
        let mut wtxn = self.env.write_txn()?;
        // Two versions of one path in the same millisecond: the later one takes the next.
        let mut time = v.time;
        while self.db.get(&wtxn, &key(&v.path, time))?.is_some() {
            time += 1;
        }
        self.db.put(
            &mut wtxn,
            &key(&v.path, time),
            &crate::descriptor::node::encode(&rec),
        )?;
        wtxn.commit()?;
        Ok(())
    }

    /// The kept versions of tree path `path`, newest first.
    pub fn list(&self, path: &str) -> Result<Vec<Version>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.prefix_iter(&rtxn, &prefix(path))? {
            let (k, v) = item?;
            out.push(decode(k, v)?);
        }
        out.reverse();
        Ok(out)
    }

    /// Every kept version's link (what gc keeps; versions kept as bytes have none).
    pub fn links(&self) -> Result<Vec<String>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.iter(&rtxn)? {
            let (k, v) = item?;
            if let Content::Link(l) = decode(k, v)?.content {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Forgets the versions kept before `before` (ms since the epoch); returns how many.
    pub fn prune(&self, before: i64) -> Result<usize> {
        let mut wtxn = self.env.write_txn()?;
        let mut old = Vec::new();
        for item in self.db.iter(&wtxn)? {
            let (k, v) = item?;
            if decode(k, v)?.time < before {
                old.push(k.to_vec());
            }
        }
        for k in &old {
            self.db.delete(&mut wtxn, k)?;
        }
        wtxn.commit()?;
        Ok(old.len())
    }
}

/// The file content a tree signature (`<content> <mode>`, or an earlier bare link) names, if any: its
/// link, or `data:<sha256 hex>` for a small file kept in the tree ([`Content::signature`]).
pub fn content_of(tree_sig: &str) -> Option<&str> {
    let c = tree_sig.split(' ').next()?;
    (c.starts_with("noisefs://") || c.starts_with("data:")).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, time: i64, link: &str) -> Version {
        Version {
            path: path.into(),
            time,
            why: Why::Replaced,
            content: Content::Link(link.into()),
            size: 3,
            mtime: 7,
            mode: 0o640,
        }
    }

    #[test]
    fn versions_are_kept_newest_first_once_per_content_and_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state")).unwrap();
        let vs = Versions::open(&state).unwrap();
        vs.keep(&v("/docs/a.txt", 100, "noisefs://one")).unwrap();
        vs.keep(&v("/docs/a.txt", 200, "noisefs://one")).unwrap(); // same content: not again
        vs.keep(&v("/docs/a.txt", 200, "noisefs://two")).unwrap();
        vs.keep(&v("/docs/a.txt", 200, "noisefs://three")).unwrap(); // same millisecond
        vs.keep(&v("/docs/a.txt.bak", 50, "noisefs://other")).unwrap();
        let list = vs.list("/docs/a.txt").unwrap();
        let links: Vec<&str> = list.iter().filter_map(|x| x.content.link()).collect();
        assert_eq!(links, ["noisefs://three", "noisefs://two", "noisefs://one"]);
        assert_eq!((list[0].time, list[1].time, list[2].time), (201, 200, 100));
        assert_eq!(
            (list[0].path.as_str(), list[0].mode, list[0].size),
            ("/docs/a.txt", 0o640, 3)
        );
        assert_eq!(vs.links().unwrap().len(), 4);
        assert_eq!(vs.prune(150).unwrap(), 2);
        assert_eq!(vs.list("/docs/a.txt").unwrap().len(), 2);
        assert!(vs.list("/docs/a.txt.bak").unwrap().is_empty());
        let json = serde_json::to_value(&list[0]).unwrap();
        assert!(
            json.get("link").is_none() && json.get("content").is_none(),
            "keys are not printed"
        );
        assert_eq!(json["why"], "replaced");
        assert_eq!(content_of("noisefs://x#k 644"), Some("noisefs://x#k"));
        assert_eq!(content_of("noisefs://x#k"), Some("noisefs://x#k"));
        assert_eq!(content_of("data:ab12 644"), Some("data:ab12"));
        assert_eq!(content_of("empty 644"), None);
        assert_eq!(content_of("dir 755"), None);
    }

    #[test]
    fn small_files_are_kept_as_their_bytes_and_have_no_link_for_gc() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state")).unwrap();
        let vs = Versions::open(&state).unwrap();
        let small = |time, bytes: &[u8]| Version {
            content: Content::Data(bytes.to_vec()),
            ..v("/a.txt", time, "")
        };
        vs.keep(&small(100, b"one")).unwrap();
        vs.keep(&small(200, b"one")).unwrap(); // same bytes: not again
        vs.keep(&small(300, b"two")).unwrap();
        vs.keep(&v("/a.txt", 400, "noisefs://big")).unwrap();
        let list = vs.list("/a.txt").unwrap();
        let contents: Vec<&Content> = list.iter().map(|x| &x.content).collect();
        assert_eq!(
            contents,
            [
                &Content::Link("noisefs://big".into()),
                &Content::Data(b"two".to_vec()),
                &Content::Data(b"one".to_vec())
            ]
        );
        assert_eq!(vs.links().unwrap(), ["noisefs://big"]);
    }
}
