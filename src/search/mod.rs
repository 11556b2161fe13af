//! Search: a tantivy index (in the repository's `index/` folder, local only) of everything the tree
//! holds — path, name, extension, media type, size, modification time, tags and the text of text-like
//! files — and the searches run on it. The index is brought up to date from the tree by [`Search::refresh`]:
//! a walk compares each path's fingerprint with what was indexed (kept in LMDB, `search_docs`) and
//! re-indexes only what changed, in batched commits; a search refreshes first when the tree changed, so
//! hits always reflect the tree. An index of another layout version, or a corrupt one, is rebuilt.

mod extract;
mod query;
mod schema;

pub use extract::{strip_html, MAX_TEXT};
pub use query::{Filters, SearchRequest, Sort};
pub use schema::VERSION;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use heed::types::{Bytes, Str};
use heed::Database;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

use crate::error::IoContext;
use crate::media::is_text;
use crate::tree::{Inode, Kind, Tree, ROOT};
use crate::{Error, Result};
use schema::Fields;

/// The extended attribute holding a file's tags (comma- or newline-separated).
pub const TAGS_XATTR: &str = "user.noisefs.tags";
/// Documents added between commits while refreshing.
const BATCH: usize = 5_000;
/// Memory the index writer may use before it flushes a segment.
const WRITER_BYTES: usize = 50 << 20;
/// Name of the file recording the index's layout version.
const VERSION_FILE: &str = "noisefs-index-version";

/// A text fragment around a content hit, with the byte ranges of matched words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snippet {
    pub text: String,
    pub highlights: Vec<(usize, usize)>,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub path: String,
    pub name: String,
    pub ino: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub modified: i64,
    pub tags: Vec<String>,
    /// Relevance (score order only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<Snippet>,
}

/// The hits of one search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    /// Every match, of which `hits` is the requested page.
    pub total: usize,
    pub hits: Vec<Hit>,
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refreshed {
    pub indexed: usize,
    pub removed: usize,
    /// Entries in the index afterwards.
    pub entries: usize,
}

/// The search index of one tree.
pub struct Search {
    tree: Arc<Tree>,
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: tokio::sync::Mutex<IndexWriter>,
    /// What was indexed per path: the fingerprint of the entry it was made from.
    docs: Database<Str, Bytes>,
    known: Mutex<HashMap<String, [u8; 8]>>,
    /// The tree's change counter at the last refresh (`u64::MAX`: never refreshed).
    seen: AtomicU64,
    /// Why the index was rebuilt when opened, until someone asks.
    rebuilt: Mutex<Option<String>>,
}

impl Search {
    /// Opens the index of `tree` in `<repository>/index`, creating it, or rebuilding it when it is of
    /// another version or corrupt (see [`Search::take_rebuilt`]).
    pub fn open(tree: Arc<Tree>) -> Result<Search> {
        let dir = tree.repo().root().join("index");
        let docs: Database<Str, Bytes> = tree.repo().state().database("search_docs")?;
        let (schema, fields) = Fields::build();
        let (index, rebuilt) = match open_existing(&dir) {
            Ok(Some(index)) => (index, None),
            Ok(None) => (create(&dir, schema)?, None),
            Err(reason) => {
                tracing::warn!(index = %dir.display(), %reason, "rebuilding the search index");
                (create(&dir, schema)?, Some(reason))
            }
        };
        if rebuilt.is_some()
            || index
                .searchable_segment_metas()
                .map_err(|e| index_error(&dir, e))?
                .is_empty()
        {
            // A fresh index: nothing is indexed, whatever the bookkeeping says.
            let mut wtxn = tree.repo().state().env().write_txn()?;
            docs.clear(&mut wtxn)?;
            wtxn.commit()?;
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| index_error(&dir, e))?;
        let writer = index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(|e| index_error(&dir, e))?;
        let mut known = HashMap::new();
        {
            let rtxn = tree.repo().state().env().read_txn()?;
            for item in docs.iter(&rtxn)? {
                let (path, fp) = item?;
                if let Ok(fp) = <[u8; 8]>::try_from(fp) {
                    known.insert(path.to_string(), fp);
                }
            }
        }
        Ok(Search {
            tree,
            dir,
            index,
            reader,
            fields,
            writer: tokio::sync::Mutex::new(writer),
            docs,
            known: Mutex::new(known),
            seen: AtomicU64::new(u64::MAX),
            rebuilt: Mutex::new(rebuilt),
        })
    }

    /// Why the index was rebuilt when it was opened, once (for a message to the user).
    pub fn take_rebuilt(&self) -> Option<String> {
        self.rebuilt.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The tree this index covers.
    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    /// Brings the index up to date with the tree if it changed since the last refresh.
    pub async fn refresh(&self) -> Result<Refreshed> {
        if let Some(same) = self.unchanged() {
            return Ok(same);
        }
        let mut writer = self.writer.lock().await;
        // Read before walking: a change made during the walk is caught by the next refresh.
        let generation = *self.tree.subscribe().borrow();
        if let Some(same) = self.unchanged() {
            return Ok(same); // another caller refreshed while this one waited
        }
        let done = self.update(&mut writer).await?;
        self.seen.store(generation, Ordering::Release);
        Ok(done)
    }

    /// Drops everything indexed and indexes the whole tree again (`noisefs search --reindex`).
    pub async fn reindex(&self) -> Result<Refreshed> {
        let mut writer = self.writer.lock().await;
        let generation = *self.tree.subscribe().borrow();
        writer
            .delete_all_documents()
            .map_err(|e| index_error(&self.dir, e))?;
        writer.commit().map_err(|e| index_error(&self.dir, e))?;
        let mut wtxn = self.tree.repo().state().env().write_txn()?;
        self.docs.clear(&mut wtxn)?;
        wtxn.commit()?;
        self.lock_known().clear();
        self.reader.reload().map_err(|e| index_error(&self.dir, e))?;
        let done = self.update(&mut writer).await?;
        self.seen.store(generation, Ordering::Release);
        Ok(done)
    }

    /// What a refresh reports when the tree has not changed since the last one.
    fn unchanged(&self) -> Option<Refreshed> {
        let generation = *self.tree.subscribe().borrow();
        (self.seen.load(Ordering::Acquire) == generation).then(|| Refreshed {
            entries: self.known_len(),
            ..Refreshed::default()
        })
    }

    fn known_len(&self) -> usize {
        self.lock_known().len()
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u8; 8]>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Indexes what changed and drops what is gone, committing every [`BATCH`] documents.
    async fn update(&self, writer: &mut IndexWriter) -> Result<Refreshed> {
        let entries = self.tree.walk(ROOT)?;
        let mut live = HashSet::with_capacity(entries.len());
        let mut todo = Vec::new();
        {
            let known = self.lock_known();
            for (rel, ino, rec) in entries {
                let path = format!("/{rel}");
                let rec = self.current(ino, rec);
                let fp = fingerprint(ino, &rec);
                if known.get(&path) != Some(&fp) {
                    todo.push((path.clone(), ino, rec, fp));
                }
                live.insert(path);
            }
        }
        let gone: Vec<String> = self
            .lock_known()
            .keys()
            .filter(|p| !live.contains(*p))
            .cloned()
            .collect();
        let mut done = Refreshed {
            removed: gone.len(),
            ..Refreshed::default()
        };
        let searcher = self.reader.searcher();
        let mut batch: Vec<(String, Option<[u8; 8]>)> = gone.into_iter().map(|p| (p, None)).collect();
        for p in &batch {
            writer.delete_term(Term::from_field_text(self.fields.path, &p.0));
        }
        for (path, ino, rec, fp) in todo {
            let doc = self.document(&searcher, &path, ino, &rec).await;
            writer.delete_term(Term::from_field_text(self.fields.path, &path));
            writer.add_document(doc).map_err(|e| index_error(&self.dir, e))?;
            batch.push((path, Some(fp)));
            done.indexed += 1;
            if batch.len() >= BATCH {
                self.commit(writer, std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.commit(writer, batch)?;
        }
        done.entries = self.known_len();
        Ok(done)
    }

    /// Commits the index, then records what it now holds (a crash between the two only makes the next
    /// refresh index those paths again).
    fn commit(&self, writer: &mut IndexWriter, batch: Vec<(String, Option<[u8; 8]>)>) -> Result<()> {
        writer.commit().map_err(|e| index_error(&self.dir, e))?;
        self.reader.reload().map_err(|e| index_error(&self.dir, e))?;
        let mut wtxn = self.tree.repo().state().env().write_txn()?;
        let mut known = self.lock_known();
        for (path, fp) in batch {
            match fp {
                Some(fp) => {
                    self.docs.put(&mut wtxn, &path, &fp)?;
                    known.insert(path, fp);
                }
                None => {
                    self.docs.delete(&mut wtxn, &path)?;
                    known.remove(&path);
                }
            }
        }
        wtxn.commit()?;
        Ok(())
    }

    /// A dirty file's record with its staging file's size and time.
    fn current(&self, ino: u64, mut rec: Inode) -> Inode {
        if rec.dirty {
            if let Ok(attr) = self.tree.getattr(ino) {
                rec.size = attr.size;
                rec.mtime = attr.mtime;
            }
        }
        rec
    }

    /// The document for the entry at `path`. Content that cannot be read (a missing block) is left out
    /// with a warning; the entry is still found by its name and metadata.
    async fn document(
        &self,
        searcher: &tantivy::Searcher,
        path: &str,
        ino: u64,
        rec: &Inode,
    ) -> TantivyDocument {
        let f = &self.fields;
        let name = path.rsplit('/').next().unwrap_or_default();
        let mut doc = TantivyDocument::default();
        doc.add_text(f.path, path);
        for folder in folders(path) {
            doc.add_text(f.folder, &folder);
        }
        doc.add_text(f.name, name);
        doc.add_text(f.name_key, name.to_lowercase());
        if let Some(ext) = extension(name) {
            doc.add_text(f.ext, ext);
        }
        doc.add_u64(f.size, rec.size);
        doc.add_i64(f.mtime, rec.mtime.div_euclid(1_000_000_000));
        doc.add_u64(f.ino, ino);
        for tag in tags_of(rec) {
            doc.add_text(f.tags, tag);
        }
        let (media, text) = match rec.kind {
            Kind::Dir => ("inode/directory".to_string(), None),
            Kind::Symlink => ("inode/symlink".to_string(), None),
            // The freedesktop.org names of special files: found by name, nothing to read.
            k @ (Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice) => {
                (format!("inode/{}", k.name()), None)
            }
            Kind::File => match self.content(searcher, name, ino, rec).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(path, error = %e, "cannot read the file to index its content");
                    (crate::media::by_name(Path::new(name)), None)
                }
            },
        };
        if let Some(top) = media.split('/').next().filter(|t| *t != media) {
            doc.add_text(f.kind, top);
        }
        doc.add_text(f.kind, &media);
        if let Some(text) = text {
            doc.add_text(f.content, text);
        }
        if let Some(link) = rec.link.as_ref().filter(|_| !rec.dirty) {
            doc.add_text(f.content_key, link);
        }
        doc
    }

    /// A file's media type and text: taken from an indexed document of the same sealed content (a
    /// renamed or copied file), else read from the tree.
    async fn content(
        &self,
        searcher: &tantivy::Searcher,
        name: &str,
        ino: u64,
        rec: &Inode,
    ) -> Result<(String, Option<String>)> {
        let f = &self.fields;
        if let Some(link) = rec.link.as_ref().filter(|_| !rec.dirty) {
            let q = TermQuery::new(
                Term::from_field_text(f.content_key, link),
                IndexRecordOption::Basic,
            );
            let found = searcher
                .search(&q, &TopDocs::with_limit(1).order_by_score())
                .map_err(|e| index_error(&self.dir, e))?;
            if let Some((_, addr)) = found.first() {
                let old: TantivyDocument = searcher.doc(*addr).map_err(|e| index_error(&self.dir, e))?;
                let media = full_type(&old, f.kind)
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let text = old
                    .get_first(f.content)
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                return Ok((media, text));
            }
        }
        if rec.size == 0 {
            return Ok((crate::media::sniff(name, &[]), None));
        }
        let head = self.tree.read(ino, 0, extract::HEAD as u64).await?;
        let media = crate::media::sniff(name, &head);
        if !is_text(&media) {
            return Ok((media, None));
        }
        let bytes = if rec.size as usize > head.len() {
            self.tree.read(ino, 0, MAX_TEXT as u64).await?
        } else {
            head
        };
        let text = extract::text(&media, &bytes);
        Ok((media, text))
    }

    /// Runs `req` on the index, refreshing it first if the tree changed.
    pub async fn search(&self, req: &SearchRequest) -> Result<Results> {
        self.refresh().await?;
        let f = &self.fields;
        let query = query::build(&self.index, f, req)?;
        let searcher = self.reader.searcher();
        let err = |e| index_error(&self.dir, e);
        let top = TopDocs::with_limit(req.limit.max(1)).and_offset(req.offset);
        let (total, found): (usize, Vec<(Option<f32>, DocAddress)>) = match req.sort {
            Sort::Score => {
                let (n, docs) = searcher
                    .search(&query, &(Count, top.order_by_score()))
                    .map_err(err)?;
                (n, docs.into_iter().map(|(s, a)| (Some(s), a)).collect())
            }
            Sort::Name => {
                let (n, docs) = searcher
                    .search(
                        &query,
                        &(Count, top.order_by_string_fast_field("name_key", Order::Asc)),
                    )
                    .map_err(err)?;
                (n, docs.into_iter().map(|(_, a)| (None, a)).collect())
            }
            Sort::Size => {
                let (n, docs) = searcher
                    .search(&query, &(Count, top.order_by_u64_field("size", Order::Desc)))
                    .map_err(err)?;
                (n, docs.into_iter().map(|(_, a)| (None, a)).collect())
            }
            Sort::Modified => {
                let (n, docs) = searcher
                    .search(
                        &query,
                        &(Count, top.order_by_fast_field::<i64>("modified", Order::Desc)),
                    )
                    .map_err(err)?;
                (n, docs.into_iter().map(|(_, a)| (None, a)).collect())
            }
        };
        let found = if req.limit == 0 { Vec::new() } else { found };
        let snippets = if req.query.trim().is_empty() {
            None
        } else {
            let mut g = SnippetGenerator::create(&searcher, &*query, f.content).map_err(err)?;
            g.set_max_num_chars(160);
            Some(g)
        };
        let mut hits = Vec::with_capacity(found.len());
        for (score, addr) in found {
            let doc: TantivyDocument = searcher.doc(addr).map_err(err)?;
            let text = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let number = |field| doc.get_first(field).and_then(|v| v.as_u64());
            let snippet = snippets.as_ref().and_then(|g| {
                let s = g.snippet_from_doc(&doc);
                (!s.highlighted().is_empty()).then(|| Snippet {
                    text: s.fragment().to_string(),
                    highlights: s.highlighted().iter().map(|r| (r.start, r.end)).collect(),
                })
            });
            hits.push(Hit {
                path: text(f.path),
                name: text(f.name),
                ino: number(f.ino).unwrap_or_default(),
                kind: full_type(&doc, f.kind).unwrap_or_default().to_string(),
                size: number(f.size).unwrap_or_default(),
                modified: doc
                    .get_first(f.mtime)
                    .and_then(|v| v.as_i64())
                    .unwrap_or_default(),
                tags: doc
                    .get_all(f.tags)
                    .filter_map(|v| v.as_str())
                    .map(str::to_string)
                    .collect(),
                score,
                snippet,
            });
        }
        Ok(Results { total, hits })
    }
}

/// The full media type stored in `doc` (`text/markdown`, not its family `text`).
fn full_type(doc: &TantivyDocument, field: tantivy::schema::Field) -> Option<&str> {
    doc.get_all(field)
        .filter_map(|v| v.as_str())
        .find(|t| t.contains('/'))
}

/// Opens the index in `dir`: `Ok(None)` when there is none yet, `Err(reason)` when it must be rebuilt.
fn open_existing(dir: &Path) -> std::result::Result<Option<Index>, String> {
    let has_files = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if !has_files {
        return Ok(None);
    }
    let version = std::fs::read_to_string(dir.join(VERSION_FILE)).ok();
    match version.as_deref().map(str::trim) {
        Some(v) if v == VERSION.to_string() => {}
        Some(v) => {
            return Err(format!(
                "it was written by another noisefs (index version {v}, this one uses {VERSION})"
            ))
        }
        None => return Err("it has no version mark (written by an older noisefs)".into()),
    }
    let index = Index::open_in_dir(dir).map_err(|e| format!("it is corrupt ({e})"))?;
    match index.validate_checksum() {
        Ok(bad) if bad.is_empty() => Ok(Some(index)),
        Ok(bad) => Err(format!("it is corrupt ({} damaged files)", bad.len())),
        Err(e) => Err(format!("it is corrupt ({e})")),
    }
}

/// Creates an empty index in `dir` (removing whatever is there) and marks its version.
fn create(dir: &Path, schema: tantivy::schema::Schema) -> Result<Index> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).at(dir)?;
    }
    std::fs::create_dir_all(dir).at(dir)?;
    let index = Index::create_in_dir(dir, schema).map_err(|e| index_error(dir, e))?;
    let mark = dir.join(VERSION_FILE);
    std::fs::write(&mark, format!("{VERSION}\n")).at(&mark)?;
    Ok(index)
}

fn index_error(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Index {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    }
}

/// What an index document depends on: the entry's kind, size, time, content and tags.
fn fingerprint(ino: u64, rec: &Inode) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(ino.to_le_bytes());
    h.update([rec.kind as u8, u8::from(rec.dirty)]);
    h.update(rec.size.to_le_bytes());
    h.update(rec.mtime.to_le_bytes());
    h.update(rec.link.as_deref().unwrap_or_default());
    h.update([0]);
    h.update(rec.data.as_deref().map(|d| d.as_slice()).unwrap_or_default());
    h.update([0]);
    h.update(rec.target.as_deref().unwrap_or_default());
    h.update([0]);
    h.update(
        rec.xattrs
            .get(TAGS_XATTR)
            .map(|v| v.as_slice())
            .unwrap_or_default(),
    );
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize()[..8]);
    out
}

/// The tags in `rec`'s tag attribute, lowercased.
pub fn tags_of(rec: &Inode) -> Vec<String> {
    rec.xattrs
        .get(TAGS_XATTR)
        .map(|v| parse_tags(&String::from_utf8_lossy(v)))
        .unwrap_or_default()
}

/// Tags from an attribute value: separated by commas or newlines, trimmed, lowercased, deduplicated.
pub fn parse_tags(value: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for t in value.split([',', '\n']) {
        let t = t.trim().to_lowercase();
        if !t.is_empty() && !tags.contains(&t) {
            tags.push(t);
        }
    }
    tags
}

/// Every folder above `path`: `/a/b/c` -> `/`, `/a`, `/a/b`.
fn folders(path: &str) -> Vec<String> {
    let mut out = vec!["/".to_string()];
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for i in 1..parts.len() {
        out.push(format!("/{}", parts[..i].join("/")));
    }
    out
}

/// The lowercased extension of `name` (none for `.hidden` or `noext`).
fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_lowercase())
}

#[cfg(test)]
mod tests;
