//! The virtual `/.announce` folder: one folder per subscription (its pattern, with `/` shown as `:`,
//! so `media:**`) and per topic of the announcements kept (`media:books`), each listing the public
//! announcements that match it, newest first, by title (made unique with ` (2)`, ` (3)`…): a file
//! announcement is a read-only file, a folder announcement a read-only folder whose content is read
//! through the link as it is browsed (from the local repository or peers), plus `.feed`, the list
//! with time, category, size, publisher and link. `mkdir` in `/.announce` subscribes, `rmdir`
//! unsubscribes. Private announcements (no key) are only in `.feed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use noisefs::announce::{Announcements, Hit, Pattern, Query};
use noisefs::descriptor::node::FileContent;
use noisefs::descriptor::{EntryKind, Link};
use noisefs::store::BlockSource;
use noisefs::transfer::{self, Opened};

use crate::virt::{Folder, VNode, ANNOUNCE, TABLE};

/// The inode of `/.announce`.
pub const ANNOUNCE_INO: u64 = TABLE[ANNOUNCE].root;
/// The list in each topic folder.
pub const FEED: &str = ".feed";
/// Announcements shown per topic folder.
const MAX_SHOWN: usize = 10_000;
/// Inodes remembered before the table is cleared (what the kernel still holds is made again on its
/// next lookup).
const MAX_NODES: usize = 1 << 20;

/// What a topic folder shows.
#[derive(Debug, Clone)]
enum Filter {
    /// A subscription's pattern.
    Pattern(Pattern),
    /// A topic as it is shown (its name, or a known prefix and a hash).
    Topic(String),
}

enum Content {
    /// A link, opened on first read.
    Link(Link, Option<Arc<Opened>>),
    Data(Vec<u8>),
    Opened(Arc<Opened>),
}

enum Node {
    Topic(Filter),
    Feed(Filter),
    File(u64, Mutex<Content>),
    /// A folder of an announced link: its link, and its entries once listed.
    Dir(Link, Mutex<Option<Vec<(String, u64)>>>),
    Symlink(String),
}

#[derive(Default)]
struct Inner {
    next: u64,
    nodes: HashMap<u64, Arc<Node>>,
    by_key: HashMap<String, u64>,
    parents: HashMap<u64, u64>,
}

impl Inner {
    fn ino(&mut self, key: String, parent: u64, make: impl FnOnce() -> Node) -> u64 {
        if let Some(&i) = self.by_key.get(&key) {
            return i;
        }
        if self.nodes.len() >= MAX_NODES {
            self.nodes.clear();
            self.by_key.clear();
            self.parents.clear();
        }
        let i = self.next;
        self.next += 1;
        self.nodes.insert(i, Arc::new(make()));
        self.by_key.insert(key, i);
        self.parents.insert(i, parent);
        i
    }
}

/// The `/.announce` folder of one mount.
pub struct AnnounceDirs {
    ann: Arc<Announcements>,
    store: Arc<dyn BlockSource>,
    rt: tokio::runtime::Handle,
    inner: Mutex<Inner>,
}

/// A topic folder's name for a pattern or topic (`/` shown as `:`), and back.
fn folder_name(topic: &str) -> String {
    topic.replace('/', ":")
}

/// The `.feed` of `hits`, newest first: one line each, tab-separated.
fn feed_text(hits: &[Hit]) -> Vec<u8> {
    let mut text = String::new();
    for h in hits {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            noisefs::fmt::format_time(h.time as i64),
            h.topic,
            h.title,
            if h.folder { "folder" } else { h.category.name() },
            h.publisher,
            h.link.as_deref().unwrap_or("(private)"),
            h.root,
        ));
    }
    text.into_bytes()
}

/// A title as an entry name: no `/` or NUL, not `.`/`..`, not empty.
fn entry_name(title: &str) -> String {
    let n: String = title
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match n.trim() {
        "" | "." | ".." => "_".to_string(),
        t if t == FEED => format!("{t}_"),
        t => t.chars().take(200).collect(),
    }
}

fn eio<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> i32 + '_ {
    move |e| {
        tracing::warn!(error = %e, "{what}");
        libc::EIO
    }
}

impl AnnounceDirs {
    pub fn new(
        ann: Arc<Announcements>,
        store: Arc<dyn BlockSource>,
        rt: tokio::runtime::Handle,
    ) -> AnnounceDirs {
        AnnounceDirs {
            ann,
            store,
            rt,
            inner: Mutex::new(Inner {
                next: TABLE[ANNOUNCE].range.start,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self, ino: u64) -> Option<Arc<Node>> {
        self.lock().nodes.get(&ino).cloned()
    }

    /// The topic folders: subscriptions, then topics kept that no subscription names.
    fn topics(&self) -> Result<Vec<(String, Filter)>, i32> {
        let mut out: Vec<(String, Filter)> = Vec::new();
        for p in self.ann.patterns().map_err(eio("cannot read subscriptions"))? {
            out.push((folder_name(p.as_str()), Filter::Pattern(p)));
        }
        let hits = self.all()?;
        for h in hits {
            let name = folder_name(&h.topic);
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, Filter::Topic(h.topic)));
            }
        }
        Ok(out)
    }

    fn all(&self) -> Result<Vec<Hit>, i32> {
        let q = Query {
            limit: MAX_SHOWN,
            ..Query::default()
        };
        let mut hits = self.ann.discover(&q).map_err(eio("cannot read announcements"))?;
        hits.sort_by(|a, b| b.time.cmp(&a.time).then(a.title.cmp(&b.title)));
        Ok(hits)
    }

    /// The announcements a topic folder shows, newest first.
    fn hits(&self, f: &Filter) -> Result<Vec<Hit>, i32> {
        let names = self.ann.names().map_err(eio("cannot read topics"))?;
        let all = self.all()?;
        Ok(match f {
            Filter::Pattern(p) => {
                let m = names.matcher(p);
                all.into_iter().filter(|h| m.matches(&h.levels)).collect()
            }
            Filter::Topic(t) => all.into_iter().filter(|h| h.topic == *t).collect(),
        })
    }

    fn topic_ino(&self, name: &str, f: Filter) -> u64 {
        self.lock()
            .ino(format!("t:{name}"), ANNOUNCE_INO, || Node::Topic(f))
    }

    fn entries_of_topic(&self, dir: u64, f: &Filter) -> Result<Vec<(u64, String, VNode)>, i32> {
        let hits = self.hits(f)?;
        let mut out = Vec::new();
        let feed = self
            .lock()
            .ino(format!("feed:{dir}"), dir, || Node::Feed(f.clone()));
        out.push((feed, FEED.to_string(), VNode::File(feed_text(&hits).len() as u64)));
        let mut used: HashMap<String, usize> = HashMap::new();
        for h in hits {
            let Some(link) = h.link.as_ref().and_then(|l| l.parse::<Link>().ok()) else {
                continue; // private: in .feed only
            };
            let base = entry_name(&h.title);
            let n = used.entry(base.clone()).or_default();
            *n += 1;
            let name = if *n == 1 { base } else { format!("{base} ({n})") };
            let key = format!("a:{dir}:{}", h.root);
            let size = h.size_below;
            let (ino, node) = {
                let mut inner = self.lock();
                let ino = inner.ino(key, dir, || {
                    if h.folder {
                        Node::Dir(link.clone(), Mutex::new(None))
                    } else {
                        Node::File(u64::MAX, Mutex::new(Content::Link(link.clone(), None)))
                    }
                });
                (ino, inner.nodes.get(&ino).cloned())
            };
            let v = match node.as_deref() {
                Some(Node::File(..)) => VNode::File(self.file_size(ino).unwrap_or(size)),
                _ => VNode::Dir,
            };
            out.push((ino, name, v));
        }
        Ok(out)
    }

    /// The text of a topic folder's `.feed`.
    fn feed(&self, f: &Filter) -> Result<Vec<u8>, i32> {
        Ok(feed_text(&self.hits(f)?))
    }

    /// Opens a link-backed file (fetching its descriptor) and returns its size.
    fn file_size(&self, ino: u64) -> Result<u64, i32> {
        let opened = self.opened(ino)?;
        transfer::geometry(&opened)
            .map(|(size, _)| size)
            .map_err(eio("cannot read an announced file"))
    }

    fn opened(&self, ino: u64) -> Result<Arc<Opened>, i32> {
        let node = self.node(ino).ok_or(libc::ENOENT)?;
        let Node::File(_, content) = &*node else {
            return Err(libc::EISDIR);
        };
        let mut c = content.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *c {
            Content::Opened(o) => Ok(o.clone()),
            Content::Link(_, Some(o)) => Ok(o.clone()),
            Content::Link(link, slot) => {
                let o = Arc::new(
                    self.rt
                        .block_on(transfer::open(&self.store, link, None))
                        .map_err(eio("cannot open an announced link"))?,
                );
                *slot = Some(o.clone());
                Ok(o)
            }
            Content::Data(_) => Err(libc::EINVAL),
        }
    }

    /// The entries of a folder of an announced link, listed once.
    fn entries_of_link(
        &self,
        dir: u64,
        link: &Link,
        cache: &Mutex<Option<Vec<(String, u64)>>>,
    ) -> Result<Vec<(u64, String, VNode)>, i32> {
        let known = cache.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let names = match known {
            Some(n) => n,
            None => {
                let opened = self
                    .rt
                    .block_on(transfer::open(&self.store, link, None))
                    .map_err(eio("cannot open an announced folder"))?;
                let entries = self
                    .rt
                    .block_on(opened.entries())
                    .map_err(eio("cannot list an announced folder"))?;
                let mut names = Vec::new();
                for e in entries {
                    let key = format!("c:{dir}:{}", e.name);
                    let node = match e.kind {
                        EntryKind::Dir => e.link().map(|l| Node::Dir(l, Mutex::new(None))),
                        EntryKind::Symlink => Some(Node::Symlink(e.target.clone().unwrap_or_default())),
                        EntryKind::File => match e.content() {
                            Some(FileContent::Link(l)) => {
                                Some(Node::File(e.size, Mutex::new(Content::Link(l, None))))
                            }
                            Some(FileContent::Data(d)) => {
                                Some(Node::File(d.len() as u64, Mutex::new(Content::Data(d.to_vec()))))
                            }
                            Some(FileContent::Tuples {
                                key,
                                tuples,
                                block_size,
                            }) => {
                                let o = Opened::inline(
                                    &self.store,
                                    opened.root,
                                    key,
                                    &e,
                                    tuples.to_vec(),
                                    block_size,
                                );
                                Some(Node::File(e.size, Mutex::new(Content::Opened(Arc::new(o)))))
                            }
                            None => None,
                        },
                    };
                    if let Some(node) = node {
                        let ino = self.lock().ino(key, dir, || node);
                        names.push((e.name.clone(), ino));
                    }
                }
                *cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(names.clone());
                names
            }
        };
        Ok(names
            .into_iter()
            .filter_map(|(n, i)| self.vnode(i).map(|v| (i, n, v)))
            .collect())
    }

    fn vnode(&self, ino: u64) -> Option<VNode> {
        match &*self.node(ino)? {
            Node::Topic(_) | Node::Dir(..) => Some(VNode::Dir),
            Node::Feed(f) => Some(VNode::File(self.feed(f).ok()?.len() as u64)),
            Node::File(size, _) if *size != u64::MAX => Some(VNode::File(*size)),
            Node::File(..) => self.file_size(ino).ok().map(VNode::File),
            Node::Symlink(t) => Some(VNode::Symlink(t.clone())),
        }
    }
}

impl Folder for AnnounceDirs {
    fn node(&self, ino: u64) -> Option<VNode> {
        self.vnode(ino)
    }

    fn list(&self, dir: u64) -> Result<Vec<(u64, String, VNode)>, i32> {
        if dir == ANNOUNCE_INO {
            return Ok(self
                .topics()?
                .into_iter()
                .map(|(name, f)| (self.topic_ino(&name, f), name, VNode::Dir))
                .collect());
        }
        match self.node(dir).as_deref() {
            Some(Node::Topic(f)) => self.entries_of_topic(dir, f),
            Some(Node::Dir(link, cache)) => self.entries_of_link(dir, link, cache),
            Some(_) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, i32> {
        let node = self.node(ino).ok_or(libc::ENOENT)?;
        let slice = |d: &[u8]| {
            let lo = (offset as usize).min(d.len());
            let hi = (lo + size as usize).min(d.len());
            d[lo..hi].to_vec()
        };
        match &*node {
            Node::Feed(f) => Ok(slice(&self.feed(f)?)),
            Node::File(_, c) => {
                if let Content::Data(d) = &*c.lock().unwrap_or_else(|p| p.into_inner()) {
                    return Ok(slice(d));
                }
                let opened = self.opened(ino)?;
                self.rt
                    .block_on(transfer::read_range(&self.store, &opened, offset, size as u64))
                    .map_err(eio("cannot read an announced file"))
            }
            _ => Err(libc::EISDIR),
        }
    }

    fn parent(&self, ino: u64) -> Option<u64> {
        self.lock().parents.get(&ino).copied()
    }

    fn mkdir(&self, dir: u64, name: &str) -> Result<(u64, VNode), i32> {
        if dir != ANNOUNCE_INO {
            return Err(libc::EROFS);
        }
        let pattern = name.replace(':', "/");
        let (p, _) = self.ann.subscribe(&pattern).map_err(|e| {
            tracing::info!(error = %e, "mkdir in /.announce: not a topic pattern");
            libc::EINVAL
        })?;
        let shown = folder_name(p.as_str());
        if shown != name {
            // Named otherwise once normalized (upper case, say): the kernel would not find it.
            let _ = self.ann.unsubscribe(p.as_str());
            return Err(libc::EINVAL);
        }
        Ok((self.topic_ino(&shown, Filter::Pattern(p)), VNode::Dir))
    }

    fn rmdir(&self, dir: u64, name: &str) -> Result<(), i32> {
        if dir != ANNOUNCE_INO {
            return Err(libc::EROFS);
        }
        match self.ann.unsubscribe(&name.replace(':', "/")) {
            Ok(true) => {
                self.lock().by_key.remove(&format!("t:{name}"));
                Ok(())
            }
            Ok(false) => Err(libc::ENOENT),
            Err(_) => Err(libc::ENOENT),
        }
    }

    fn accepts_mkdir(&self, dir: u64) -> bool {
        dir == ANNOUNCE_INO
    }
}
