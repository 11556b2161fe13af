//! The virtual `/.search` folder. Looking up `.search/<query>` runs the query (tantivy syntax, as in
//! `noisefs search`) and shows a read-only folder whose entries are the hits, as symlinks to their real
//! paths (names made unique with ` (2)`, ` (3)`…), plus `.results`, the ranked list with scores. A query
//! folder is recomputed whenever the tree has changed since it was last computed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use noisefs::search::{Search, SearchRequest};

use crate::virt::{Folder, VNode, SEARCH, TABLE};

/// The inode of `/.search`.
pub const SEARCH_INO: u64 = TABLE[SEARCH].root;
/// Query folders remembered at once; the oldest is forgotten first.
const MAX_QUERIES: usize = 256;
/// Hits shown per query folder.
const MAX_HITS: usize = 1000;
/// The ranked list in each query folder.
pub const RESULTS: &str = ".results";

struct QueryDir {
    query: String,
    /// The tree's change counter when the hits were computed.
    generation: u64,
    /// Hit name -> (inode, symlink target), in rank order.
    hits: Vec<(String, u64, String)>,
    results_ino: u64,
    results: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    by_query: HashMap<String, u64>,
    dirs: HashMap<u64, QueryDir>,
    /// Every hit or `.results` inode -> its query folder.
    owner: HashMap<u64, u64>,
    order: VecDeque<u64>,
    next: u64,
}

/// A query's hits as (name, symlink target) in rank order, and the text of its `.results`.
type Computed = (Vec<(String, String)>, Vec<u8>);

/// The query folders of one mount.
pub struct SearchDirs {
    search: Arc<Search>,
    rt: tokio::runtime::Handle,
    /// The tree path shown as the mount's root (`/` for a whole mount): hits are limited to it.
    prefix: String,
    inner: Mutex<Inner>,
}

impl SearchDirs {
    /// Query folders over `search` for a mount whose root is the tree folder `prefix`.
    pub fn new(search: Arc<Search>, rt: tokio::runtime::Handle, prefix: String) -> SearchDirs {
        SearchDirs {
            search,
            rt,
            prefix,
            inner: Mutex::new(Inner {
                next: TABLE[SEARCH].range.start,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn generation(&self) -> u64 {
        *self.search.tree().subscribe().borrow()
    }

    /// The folder for `query` (computing its hits): its inode, or the errno of a bad query (EINVAL).
    fn lookup_query(&self, query: &str) -> Result<u64, i32> {
        let known = self.lock().by_query.get(query).copied();
        match known {
            Some(ino) => self.fresh(ino).map(|()| ino),
            None => {
                let generation = self.generation();
                let (hits, results) = self.compute(query)?;
                let mut inner = self.lock();
                if let Some(&ino) = inner.by_query.get(query) {
                    return Ok(ino); // another thread made it meanwhile
                }
                let ino = alloc(&mut inner);
                let results_ino = alloc(&mut inner);
                inner.owner.insert(results_ino, ino);
                let dir = QueryDir {
                    query: query.to_string(),
                    generation: 0,
                    hits: Vec::new(),
                    results_ino,
                    results: Vec::new(),
                };
                inner.dirs.insert(ino, dir);
                inner.by_query.insert(query.to_string(), ino);
                inner.order.push_back(ino);
                install(&mut inner, ino, generation, hits, results);
                while inner.order.len() > MAX_QUERIES {
                    if let Some(old) = inner.order.pop_front() {
                        forget(&mut inner, old);
                    }
                }
                Ok(ino)
            }
        }
    }

    /// Recomputes query folder `ino` if the tree changed since.
    fn fresh(&self, ino: u64) -> Result<(), i32> {
        let generation = self.generation();
        let query = {
            let inner = self.lock();
            match inner.dirs.get(&ino) {
                Some(d) if d.generation == generation => return Ok(()),
                Some(d) => d.query.clone(),
                None => return Err(libc::ENOENT),
            }
        };
        let (hits, results) = self.compute(&query)?;
        let mut inner = self.lock();
        if inner.dirs.contains_key(&ino) {
            install(&mut inner, ino, generation, hits, results);
        }
        Ok(())
    }

    /// Runs `query`: the hits as (name, target) in rank order, and the text of `.results`.
    fn compute(&self, query: &str) -> Result<Computed, i32> {
        let mut req = SearchRequest::new(query);
        req.limit = MAX_HITS;
        if self.prefix != "/" {
            req.filters.path = Some(self.prefix.clone());
        }
        let found = self.rt.block_on(self.search.search(&req)).map_err(|e| {
            tracing::debug!(query, error = %e, "search in the mount failed");
            e.errno()
        })?;
        let mut taken: Vec<String> = vec![RESULTS.to_string()];
        let mut hits = Vec::new();
        let mut results = String::new();
        for hit in found.hits {
            let Some(rel) = self.relative(&hit.path) else {
                continue;
            };
            let name = unique(&hit.name, &taken);
            taken.push(name.clone());
            results.push_str(&format!("{:.3}\t/{rel}\n", hit.score.unwrap_or_default()));
            hits.push((name, format!("../../{rel}")));
        }
        Ok((hits, results.into_bytes()))
    }

    /// `path` relative to the mount's root, if it is below it.
    fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = if self.prefix == "/" {
            path.strip_prefix('/')
        } else {
            path.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
        }?;
        (!rest.is_empty()).then_some(rest)
    }

    /// The entry `name` in query folder `dir`.
    fn lookup_in(&self, dir: u64, name: &str) -> Result<(u64, VNode), i32> {
        self.fresh(dir)?;
        let inner = self.lock();
        let d = inner.dirs.get(&dir).ok_or(libc::ENOENT)?;
        if name == RESULTS {
            return Ok((d.results_ino, VNode::File(d.results.len() as u64)));
        }
        d.hits
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, ino, target)| (*ino, VNode::Symlink(target.clone())))
            .ok_or(libc::ENOENT)
    }

    /// The query folders, for listing `/.search`.
    fn queries(&self) -> Vec<(u64, String)> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .filter_map(|ino| inner.dirs.get(ino).map(|d| (*ino, d.query.clone())))
            .collect()
    }

    /// The entries of query folder `dir`: `.results` first, then the hits in rank order.
    fn list_in(&self, dir: u64) -> Result<Vec<(u64, String, VNode)>, i32> {
        self.fresh(dir)?;
        let inner = self.lock();
        let d = inner.dirs.get(&dir).ok_or(libc::ENOENT)?;
        let mut out = vec![(
            d.results_ino,
            RESULTS.to_string(),
            VNode::File(d.results.len() as u64),
        )];
        out.extend(
            d.hits
                .iter()
                .map(|(n, i, t)| (*i, n.clone(), VNode::Symlink(t.clone()))),
        );
        Ok(out)
    }
}

/// `/.search` lists the queries looked up lately; looking a name up in it runs that query.
impl Folder for SearchDirs {
    fn lookup(&self, dir: u64, name: &str) -> Result<(u64, VNode), i32> {
        if dir == SEARCH_INO {
            self.lookup_query(name).map(|ino| (ino, VNode::Dir))
        } else {
            self.lookup_in(dir, name)
        }
    }

    fn node(&self, ino: u64) -> Option<VNode> {
        let inner = self.lock();
        if inner.dirs.contains_key(&ino) {
            return Some(VNode::Dir);
        }
        let d = inner.dirs.get(inner.owner.get(&ino)?)?;
        if d.results_ino == ino {
            return Some(VNode::File(d.results.len() as u64));
        }
        d.hits
            .iter()
            .find(|(_, i, _)| *i == ino)
            .map(|(_, _, t)| VNode::Symlink(t.clone()))
    }

    fn list(&self, dir: u64) -> Result<Vec<(u64, String, VNode)>, i32> {
        if dir == SEARCH_INO {
            Ok(self
                .queries()
                .into_iter()
                .map(|(i, q)| (i, q, VNode::Dir))
                .collect())
        } else {
            self.list_in(dir)
        }
    }

    /// Bytes of a query folder's `.results`.
    fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, i32> {
        let inner = self.lock();
        let d = inner
            .owner
            .get(&ino)
            .and_then(|dir| inner.dirs.get(dir))
            .filter(|d| d.results_ino == ino)
            .ok_or(libc::ENOENT)?;
        let start = (offset as usize).min(d.results.len());
        let end = (start + size as usize).min(d.results.len());
        Ok(d.results[start..end].to_vec())
    }
}

fn alloc(inner: &mut Inner) -> u64 {
    let ino = inner.next;
    inner.next += 1;
    ino
}

/// Puts freshly computed hits into folder `dir`, keeping the inode of every name that stays.
fn install(inner: &mut Inner, dir: u64, generation: u64, hits: Vec<(String, String)>, results: Vec<u8>) {
    let old: HashMap<String, u64> = inner
        .dirs
        .get(&dir)
        .map(|d| d.hits.iter().map(|(n, i, _)| (n.clone(), *i)).collect())
        .unwrap_or_default();
    let mut new = Vec::with_capacity(hits.len());
    for (name, target) in hits {
        let ino = match old.get(&name) {
            Some(i) => *i,
            None => {
                let i = alloc(inner);
                inner.owner.insert(i, dir);
                i
            }
        };
        new.push((name, ino, target));
    }
    let keep: std::collections::HashSet<u64> = new.iter().map(|(_, i, _)| *i).collect();
    for ino in old.values().filter(|i| !keep.contains(i)) {
        inner.owner.remove(ino);
    }
    if let Some(d) = inner.dirs.get_mut(&dir) {
        d.hits = new;
        d.results = results;
        d.generation = generation;
    }
}

fn forget(inner: &mut Inner, dir: u64) {
    if let Some(d) = inner.dirs.remove(&dir) {
        inner.by_query.remove(&d.query);
        inner.owner.remove(&d.results_ino);
        for (_, ino, _) in d.hits {
            inner.owner.remove(&ino);
        }
    }
}

/// `name`, or `stem (2).ext`, `stem (3).ext`… whichever is not taken yet.
fn unique(name: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == name) {
        return name.to_string();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|c| !taken.iter().any(|t| t == c))
        .unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_unique() {
        let taken = vec![
            ".results".to_string(),
            "a.txt".to_string(),
            "a (2).txt".to_string(),
        ];
        assert_eq!(unique("b.txt", &taken), "b.txt");
        assert_eq!(unique("a.txt", &taken), "a (3).txt");
        assert_eq!(unique(".results", &taken), ".results (2)");
        assert_eq!(unique("noext", &["noext".to_string()]), "noext (2)");
    }
}
