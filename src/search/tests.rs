//! Indexing and searching a real tree: every filter and sort, incremental updates, rebuilds.

use super::*;
use crate::engine::Engine;
use crate::repo::Repo;
use crate::tree::SetAttr;

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            engine: crate::node::engine(crate::repo::test_repo(dir.path())).unwrap(),
            _dir: dir,
        }
    }

    /// Closes the repository and opens it again, as a new process would (no caches).
    fn reopen(self) -> Fixture {
        let root = self.engine.repo().root().to_path_buf();
        let dir = self._dir;
        drop(self.engine);
        let repo = Arc::new(Repo::open_existing(&root).unwrap());
        Fixture {
            engine: crate::node::engine(repo).unwrap(),
            _dir: dir,
        }
    }

    fn tree(&self) -> &Arc<Tree> {
        self.engine.tree()
    }

    fn mkdirs(&self, path: &str) -> u64 {
        let mut ino = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = match self.tree().lookup(ino, part) {
                Ok(a) => a.ino,
                Err(_) => self.tree().mkdir(ino, part, 0o755, 0, 0).unwrap().ino,
            };
        }
        ino
    }

    /// Writes `data` to `path` (replacing it) and seals it.
    async fn write(&self, path: &str, data: &[u8]) -> u64 {
        let (parent, name) = path.rsplit_once('/').unwrap();
        let dir = self.mkdirs(parent);
        let ino = match self.tree().lookup(dir, name) {
            Ok(a) => a.ino,
            Err(_) => self.tree().create(dir, name, 0o644, 0, 0).unwrap().ino,
        };
        self.tree().open(ino, true, true).await.unwrap();
        self.tree().write(ino, 0, data).await.unwrap();
        self.tree().release(ino, true).unwrap();
        self.engine.drain().await.unwrap();
        ino
    }

    async fn find(&self, req: &SearchRequest) -> Vec<String> {
        let s = self.engine.search().unwrap();
        s.search(req)
            .await
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.path)
            .collect()
    }

    async fn query(&self, q: &str) -> Vec<String> {
        let mut req = SearchRequest::new(q);
        req.limit = 100;
        let mut hits = self.find(&req).await;
        hits.sort();
        hits
    }

    async fn filtered(&self, q: &str, f: impl FnOnce(&mut Filters)) -> Vec<String> {
        let mut req = SearchRequest::new(q);
        req.limit = 100;
        f(&mut req.filters);
        let mut hits = self.find(&req).await;
        hits.sort();
        hits
    }
}

const PNG: &[u8] = &[
    0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
];

async fn sample() -> Fixture {
    let fx = Fixture::new();
    fx.write(
        "/docs/report.md",
        b"# Quarterly report\nRevenue grew in the north region.\n",
    )
    .await;
    fx.write("/docs/notes.txt", b"meeting notes about the budget")
        .await;
    fx.write("/photos/cat.png", PNG).await;
    fx.write("/photos/Report-2024.PDF", b"%PDF-1.7\n binary stuff")
        .await;
    fx.write("/src/main.rs", b"fn main() { println!(\"hello world\"); }")
        .await;
    fx.write(
        "/site/index.html",
        b"<html><script>var secretword = 1;</script><p>Fish &amp; chips</p></html>",
    )
    .await;
    let mut blob = b"report ".repeat(10);
    blob.extend_from_slice(&[0, 1, 2, 3]);
    fx.write("/bin/blob.dat", &blob).await;
    let notes = fx.tree().resolve("/docs/notes.txt").unwrap();
    fx.tree().setxattr(notes, TAGS_XATTR, b"Work, urgent").unwrap();
    let bin = fx.tree().resolve("/bin").unwrap();
    fx.tree()
        .symlink(bin, "shortcut", "../docs/notes.txt", 0, 0)
        .unwrap();
    fx.tree().create(bin, "empty.json", 0o644, 0, 0).unwrap();
    fx
}

#[tokio::test]
async fn finds_by_name_content_type_and_every_filter() {
    let fx = sample().await;
    // Names and content; binary files are not indexed as text; scripts in HTML are not text.
    assert_eq!(
        fx.query("report").await,
        ["/docs/report.md", "/photos/Report-2024.PDF"]
    );
    assert_eq!(fx.query("revenue").await, ["/docs/report.md"]);
    assert_eq!(fx.query("fish chips").await, ["/site/index.html"]);
    assert!(fx.query("secretword").await.is_empty());
    assert_eq!(fx.query("println").await, ["/src/main.rs"]);
    assert_eq!(fx.query("docs").await, ["/docs"]);
    // Every word is required by default; OR widens.
    assert!(fx.query("revenue budget").await.is_empty());
    assert_eq!(fx.query("revenue OR budget").await.len(), 2);
    // Fields in the query text.
    assert_eq!(fx.query("tag:urgent").await, ["/docs/notes.txt"]);
    assert_eq!(fx.query("ext:rs").await, ["/src/main.rs"]);
    assert_eq!(fx.query("name:quarterly").await, Vec::<String>::new());
    assert_eq!(fx.query("content:quarterly").await, ["/docs/report.md"]);

    // Filters.
    assert_eq!(
        fx.filtered("", |f| f.kind = Some("image".into())).await,
        ["/photos/cat.png"]
    );
    assert_eq!(
        fx.filtered("", |f| f.kind = Some("Application/PDF".into())).await,
        ["/photos/Report-2024.PDF"]
    );
    assert_eq!(
        fx.filtered("", |f| f.kind = Some("inode/directory".into())).await,
        ["/bin", "/docs", "/photos", "/site", "/src"]
    );
    assert_eq!(
        fx.filtered("", |f| f.ext = Some(".pdf".into())).await,
        ["/photos/Report-2024.PDF"]
    );
    assert_eq!(
        fx.filtered("", |f| f.tags = vec!["WORK".into()]).await,
        ["/docs/notes.txt"]
    );
    assert!(fx
        .filtered("", |f| f.tags = vec!["work".into(), "nope".into()])
        .await
        .is_empty());
    assert_eq!(
        fx.filtered("", |f| f.path = Some("docs/".into())).await,
        ["/docs", "/docs/notes.txt", "/docs/report.md"]
    );
    assert_eq!(
        fx.filtered("report", |f| f.path = Some("/photos".into())).await,
        ["/photos/Report-2024.PDF"]
    );
    assert_eq!(fx.filtered("", |f| f.path = Some("/".into())).await.len(), 14);
    assert_eq!(
        fx.filtered("", |f| f.name = Some("*.MD".into())).await,
        ["/docs/report.md"]
    );
    assert_eq!(
        fx.filtered("", |f| f.name = Some("REPORT".into())).await,
        ["/docs/report.md", "/photos/Report-2024.PDF"]
    );
    assert_eq!(
        fx.filtered("", |f| f.name = Some("c?t.png".into())).await,
        ["/photos/cat.png"]
    );
    assert_eq!(
        fx.filtered("", |f| {
            f.min_size = Some(50);
            f.max_size = Some(60);
        })
        .await,
        ["/docs/report.md"]
    );
    assert_eq!(
        fx.filtered("", |f| {
            f.min_size = Some(1);
            f.max_size = Some(16);
        })
        .await,
        ["/photos/cat.png"]
    );
    let cat = fx.tree().resolve("/photos/cat.png").unwrap();
    let day = 86_400i64;
    fx.tree()
        .setattr(
            cat,
            SetAttr {
                mtime: Some(1_000 * day * 1_000_000_000),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        fx.filtered("", |f| f.before = Some(1_001 * day)).await,
        ["/photos/cat.png"]
    );
    assert!(fx.filtered("", |f| f.before = Some(1_000 * day)).await.is_empty());
    assert_eq!(
        fx.filtered("", |f| {
            f.after = Some(1_000 * day);
            f.before = Some(1_000 * day + 1);
        })
        .await,
        ["/photos/cat.png"]
    );
    assert!(!fx
        .filtered("", |f| f.after = Some(1_001 * day))
        .await
        .contains(&"/photos/cat.png".to_string()));

    // Symlinks and empty files are entries too; a size bound alone leaves the other side open.
    assert_eq!(
        fx.filtered("", |f| f.kind = Some("inode/symlink".into())).await,
        ["/bin/shortcut"]
    );
    assert_eq!(
        fx.filtered("", |f| f.kind = Some("application/json".into()))
            .await,
        ["/bin/empty.json"]
    );
    assert_eq!(
        fx.filtered("", |f| {
            f.max_size = Some(0);
            f.kind = Some("application".into());
        })
        .await,
        ["/bin/empty.json"]
    );
    assert_eq!(
        fx.filtered("", |f| f.min_size = Some(70)).await,
        ["/bin/blob.dat", "/site/index.html"]
    );
    // The index covers the engine's tree.
    assert!(Arc::ptr_eq(fx.engine.search().unwrap().tree(), fx.tree()));

    // A name pattern that is not a usable expression is a clear error.
    let s = fx.engine.search().unwrap();
    let mut req = SearchRequest::new("");
    req.filters.name = Some("\\".into());
    assert!(s.search(&req).await.is_ok(), "backslash is escaped, not an error");
}

#[tokio::test]
async fn sorts_pages_and_snippets() {
    let fx = sample().await;
    let s = fx.engine.search().unwrap();
    let mut req = SearchRequest::new("");
    req.filters.kind = Some("text".into());
    req.sort = Sort::Name;
    req.limit = 100;
    let names = |r: &Results| r.hits.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    let r = s.search(&req).await.unwrap();
    assert_eq!(names(&r), ["index.html", "main.rs", "notes.txt", "report.md"]);
    assert_eq!(r.total, 4);
    assert!(r.hits.iter().all(|h| h.score.is_none()));
    req.sort = Sort::Size;
    let r = s.search(&req).await.unwrap();
    let sizes: Vec<u64> = r.hits.iter().map(|h| h.size).collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert_eq!(r.hits[0].name, "index.html");
    req.sort = Sort::Modified;
    let ino = fx.tree().resolve("/docs/notes.txt").unwrap();
    fx.tree()
        .setattr(
            ino,
            SetAttr {
                mtime: Some(i64::MAX / 2),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.search(&req).await.unwrap().hits[0].name, "notes.txt");
    // Pages.
    req.sort = Sort::Name;
    req.limit = 2;
    req.offset = 1;
    let r = s.search(&req).await.unwrap();
    assert_eq!(
        (names(&r), r.total),
        (vec!["main.rs".to_string(), "notes.txt".to_string()], 4)
    );
    req.limit = 0;
    let r = s.search(&req).await.unwrap();
    assert_eq!((r.hits.len(), r.total), (0, 4));

    // Score order, with a snippet whose highlights point at the matched word.
    let r = s.search(&SearchRequest::new("revenue")).await.unwrap();
    let hit = &r.hits[0];
    assert!(hit.score.unwrap() > 0.0);
    assert_eq!((hit.kind.as_str(), hit.size), ("text/markdown", 53));
    let snip = hit.snippet.as_ref().unwrap();
    let (a, b) = snip.highlights[0];
    assert_eq!(&snip.text[a..b], "Revenue");
    // A name-only hit has no snippet; tags come back.
    let r = s.search(&SearchRequest::new("notes")).await.unwrap();
    assert_eq!(r.hits[0].tags, ["work", "urgent"]);
    let r = s.search(&SearchRequest::new("cat")).await.unwrap();
    assert_eq!((r.hits[0].name.as_str(), &r.hits[0].snippet), ("cat.png", &None));
}

#[tokio::test]
async fn malformed_queries_name_the_position() {
    let fx = sample().await;
    let s = fx.engine.search().unwrap();
    for (q, pos) in [("report AND (", 12), ("\"unclosed", 9), ("budget nofield:x", 7)] {
        let err = s.search(&SearchRequest::new(q)).await.unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL, "{q}");
        match &err {
            Error::Query { pos: p, query, .. } => assert_eq!((*p, query.as_str()), (pos, q), "{err}"),
            other => panic!("{q}: {other}"),
        }
        assert!(err.to_string().contains("at character"), "{err}");
    }
    // A value of the wrong kind for a field: no position to point at beyond the start.
    match s.search(&SearchRequest::new("size:lots")).await.unwrap_err() {
        Error::Query { pos, reason, .. } => {
            assert_eq!((pos, reason.contains("integer")), (0, true), "{reason}")
        }
        other => panic!("{other}"),
    }
    let err = s.search(&SearchRequest::new("nofield:x")).await.unwrap_err();
    assert!(err.to_string().contains("no field `nofield`"), "{err}");
}

#[tokio::test]
async fn follows_renames_deletes_edits_and_tags() {
    let fx = sample().await;
    let s = fx.engine.search().unwrap();
    let first = s.refresh().await.unwrap();
    assert_eq!(first.entries, 14);
    assert_eq!(
        s.refresh().await.unwrap().indexed,
        0,
        "nothing changed, nothing indexed"
    );

    // A file renamed across folders keeps its content hits under the new path.
    let docs = fx.tree().resolve("/docs").unwrap();
    let photos = fx.tree().resolve("/photos").unwrap();
    fx.tree()
        .rename(docs, "report.md", photos, "summary.md", Default::default())
        .unwrap();
    assert_eq!(fx.query("revenue").await, ["/photos/summary.md"]);
    assert!(fx
        .query("report")
        .await
        .contains(&"/photos/Report-2024.PDF".to_string()));
    // A folder renamed moves everything below it.
    fx.tree()
        .rename(ROOT, "photos", ROOT, "pictures", Default::default())
        .unwrap();
    assert_eq!(fx.query("revenue").await, ["/pictures/summary.md"]);
    assert_eq!(
        fx.filtered("", |f| f.path = Some("/pictures".into())).await,
        [
            "/pictures",
            "/pictures/Report-2024.PDF",
            "/pictures/cat.png",
            "/pictures/summary.md"
        ]
    );
    assert!(fx
        .filtered("", |f| f.path = Some("/photos".into()))
        .await
        .is_empty());
    // Edits replace content.
    fx.write("/pictures/summary.md", b"profits fell").await;
    assert!(fx.query("revenue").await.is_empty());
    assert_eq!(fx.query("profits").await, ["/pictures/summary.md"]);
    // A dirty (written, not yet sealed) file is searchable by its staged bytes.
    let notes = fx.tree().resolve("/docs/notes.txt").unwrap();
    fx.tree().open(notes, true, true).await.unwrap();
    fx.tree().write(notes, 0, b"a staged draft").await.unwrap();
    fx.tree()
        .setattr(
            notes,
            SetAttr {
                mtime: Some(5_000_000_000),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fx.query("draft").await, ["/docs/notes.txt"]);
    fx.tree().release(notes, true).unwrap();
    fx.engine.drain().await.unwrap();
    assert_eq!(fx.query("draft").await, ["/docs/notes.txt"]);
    // Tags change.
    fx.tree().setxattr(notes, TAGS_XATTR, b"home").unwrap();
    assert!(fx.query("tag:work").await.is_empty());
    assert_eq!(fx.query("tag:home").await, ["/docs/notes.txt"]);
    // Deletes.
    fx.tree().unlink(docs, "notes.txt").unwrap();
    assert!(fx.query("draft").await.is_empty());
    let after = s.refresh().await.unwrap();
    assert_eq!(after.entries, 13);
}

#[tokio::test]
async fn rebuilds_a_deleted_corrupt_or_older_index() {
    let fx = sample().await;
    let index_dir = fx.tree().repo().root().join("index");
    let tree = fx.tree().clone();
    let reopen = || async {
        let s = Search::open(tree.clone()).unwrap();
        let hits = s.search(&SearchRequest::new("revenue")).await.unwrap().hits;
        assert_eq!(hits.len(), 1);
        s.take_rebuilt()
    };
    assert_eq!(reopen().await, None);
    assert_eq!(reopen().await, None, "a good index is kept");

    std::fs::remove_dir_all(&index_dir).unwrap();
    assert_eq!(reopen().await, None, "a deleted index is simply built again");

    std::fs::write(index_dir.join(VERSION_FILE), "0\n").unwrap();
    assert!(reopen().await.unwrap().contains("index version 0"));

    std::fs::remove_file(index_dir.join(VERSION_FILE)).unwrap();
    assert!(reopen().await.unwrap().contains("older noisefs"));

    std::fs::write(index_dir.join("meta.json"), b"{ not json").unwrap();
    assert!(reopen().await.unwrap().contains("corrupt"));

    // Damage inside a segment file is caught by its checksum.
    let segment = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "store"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    assert!(reopen().await.unwrap().contains("corrupt"));
    assert_eq!(reopen().await, None);

    // --reindex starts from nothing and finds everything again.
    let s = Search::open(tree.clone()).unwrap();
    let done = s.reindex().await.unwrap();
    assert_eq!((done.indexed, done.entries), (14, 14));
    assert_eq!(s.search(&SearchRequest::new("fish")).await.unwrap().total, 1);
}

#[tokio::test]
async fn huge_and_unreadable_files_are_capped_or_indexed_by_name() {
    let fx = Fixture::new();
    let mut big = b"openingword ".to_vec();
    big.resize(MAX_TEXT + 100, b'x');
    big.extend_from_slice(b" closingword");
    fx.write("/big.txt", &big).await;
    assert_eq!(fx.query("openingword").await, ["/big.txt"]);
    assert!(fx.query("closingword").await.is_empty());

    // A file whose blocks are gone is still found by its name (large enough to be sealed, not kept
    // inline in the tree).
    fx.write("/lost.txt", "unreachable words ".repeat(100).as_bytes())
        .await;
    let blocks = fx.tree().repo().root().join("blocks");
    let ino = fx.tree().resolve("/lost.txt").unwrap();
    let link = fx.tree().inode(ino).unwrap().link.unwrap();
    let root = link
        .trim_start_matches("noisefs://")
        .split('#')
        .next()
        .unwrap()
        .to_string();
    for shard in std::fs::read_dir(&blocks).unwrap() {
        for b in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let p = b.unwrap().path();
            if p.file_name().unwrap().to_str().unwrap() == root {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let fx = fx.reopen();
    std::fs::remove_dir_all(fx.tree().repo().root().join("index")).unwrap();
    assert_eq!(fx.query("lost").await, ["/lost.txt"]);
    assert_eq!(fx.query("openingword").await, ["/big.txt"]);
    assert!(fx.query("unreachable").await.is_empty());
}

#[tokio::test]
async fn small_files_kept_inline_are_indexed_by_content() {
    let fx = Fixture::new();
    fx.write("/note.txt", b"inline marmalade").await;
    let ino = fx.tree().resolve("/note.txt").unwrap();
    assert!(fx.tree().inode(ino).unwrap().data.is_some());
    assert_eq!(fx.query("marmalade").await, ["/note.txt"]);
    // Rewritten in place (still inline): the index follows the new bytes.
    fx.write("/note.txt", b"inline quince!!!").await;
    assert_eq!(fx.query("quince").await, ["/note.txt"]);
    assert!(fx.query("marmalade").await.is_empty());
}

#[test]
fn tags_paths_and_extensions() {
    assert_eq!(parse_tags(" A, b\nb ,,c "), ["a", "b", "c"]);
    assert_eq!(folders("/a/b/c"), ["/", "/a", "/a/b"]);
    assert_eq!(folders("/top"), ["/"]);
    assert_eq!(extension("x.TAR.GZ").as_deref(), Some("gz"));
    assert_eq!(extension(".bashrc"), None);
    assert_eq!(extension("noext"), None);
    assert_eq!(extension("trailing."), None);
}
