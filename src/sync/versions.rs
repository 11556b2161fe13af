//! Versions that sync replaced or deleted, on either side, kept for `[sync] keep_versions_days`:
//! each is the link of the content it had (already sealed, so keeping it costs only the blocks it
//! holds, which gc keeps), recorded in LMDB `sync_versions` by tree path and time. Listed by
//! `noisefs sync versions`, put back by `noisefs sync restore`.

use heed::types::Bytes;
use heed::Database;
use serde::{Deserialize, Serialize};

use crate::state::State;
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
    /// Its content (a file link).
    #[serde(skip_serializing)]
    pub link: String,
    pub size: u64,
    /// Its modification time (ns since the epoch) and permission bits.
    pub mtime: i64,
    pub mode: u32,
}

#[derive(Serialize, Deserialize)]
struct Record {
    why: Why,
    link: String,
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
        link: r.link,
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
        if self.list(&v.path)?.first().is_some_and(|n| n.link == v.link) {
            return Ok(());
        }
        let rec = Record {
            why: v.why,
            link: v.link.clone(),
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

    /// Every kept version's link (what gc keeps).
    pub fn links(&self) -> Result<Vec<String>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.iter(&rtxn)? {
            let (k, v) = item?;
            out.push(decode(k, v)?.link);
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

/// The file link in a tree signature (`<link> <mode>`, or an earlier bare link), if it has one.
pub fn link_of(tree_sig: &str) -> Option<&str> {
    let link = tree_sig.split(' ').next()?;
    link.starts_with("noisefs://").then_some(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, time: i64, link: &str) -> Version {
        Version {
            path: path.into(),
            time,
            why: Why::Replaced,
            link: link.into(),
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
        let links: Vec<&str> = list.iter().map(|x| x.link.as_str()).collect();
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
        assert!(json.get("link").is_none(), "keys are not printed");
        assert_eq!(json["why"], "replaced");
        assert_eq!(link_of("noisefs://x#k 644"), Some("noisefs://x#k"));
        assert_eq!(link_of("noisefs://x#k"), Some("noisefs://x#k"));
        assert_eq!(link_of("empty 644"), None);
        assert_eq!(link_of("dir 755"), None);
    }
}
