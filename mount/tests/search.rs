//! End to end: `/.search/<query>/` in a real mount, and `noisefs search` / `noisefs tag` through the
//! mount's control socket.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn names(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn search_folders_list_hits_as_links_and_follow_changes() {
    let env = Env::new();
    let m = env.mount("");
    let mnt = env.mnt();
    std::fs::create_dir_all(mnt.join("docs/old")).unwrap();
    std::fs::write(mnt.join("docs/report.md"), "# Report\nquarterly revenue grew\n").unwrap();
    std::fs::write(mnt.join("docs/old/report.md"), "last year's revenue\n").unwrap();
    std::fs::write(mnt.join("notes.txt"), "budget meeting").unwrap();
    setxattr(&mnt.join("notes.txt"), "user.noisefs.tags", b"urgent", 0).unwrap();
    let search = mnt.join(".search");

    // Hits are symlinks named after the files, made unique, pointing at the real paths.
    let q = search.join("report");
    assert_eq!(
        names(&q).unwrap(),
        set(&[".results", "report.md", "report (2).md"])
    );
    let mut targets: Vec<String> = ["report.md", "report (2).md"]
        .iter()
        .map(|n| {
            std::fs::read_link(q.join(n))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    targets.sort();
    assert_eq!(targets, ["../../docs/old/report.md", "../../docs/report.md"]);
    let via_link = std::fs::read_to_string(q.join("report.md")).unwrap();
    assert!(via_link.contains("revenue"), "{via_link}");
    assert!(std::fs::symlink_metadata(q.join("report.md"))
        .unwrap()
        .file_type()
        .is_symlink());

    // .results: one ranked line per hit, score and path.
    let results = std::fs::read_to_string(q.join(".results")).unwrap();
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(lines.len(), 2, "{results}");
    for l in &lines {
        let (score, path) = l.split_once('\t').unwrap();
        assert!(score.parse::<f32>().unwrap() > 0.0);
        assert!(path == "/docs/report.md" || path == "/docs/old/report.md", "{l}");
    }

    // Content, fields and tags.
    assert_eq!(
        names(&search.join("quarterly")).unwrap(),
        set(&[".results", "report.md"])
    );
    assert_eq!(
        names(&search.join("tag:urgent")).unwrap(),
        set(&[".results", "notes.txt"])
    );
    assert_eq!(
        names(&search.join("type:text ext:txt")).unwrap(),
        set(&[".results", "notes.txt"])
    );
    assert_eq!(names(&search.join("nothingmatches")).unwrap(), set(&[".results"]));

    // The folder follows the tree without remounting.
    std::fs::write(mnt.join("docs/later.md"), "revenue forecast").unwrap();
    assert_eq!(
        names(&search.join("revenue")).unwrap(),
        set(&[".results", "report.md", "report (2).md", "later.md"])
    );
    std::fs::remove_file(mnt.join("docs/old/report.md")).unwrap();
    std::fs::rename(mnt.join("docs/later.md"), mnt.join("forecast.md")).unwrap();
    assert_eq!(
        names(&search.join("revenue")).unwrap(),
        set(&[".results", "report.md", "forecast.md"])
    );
    assert_eq!(
        std::fs::read_link(search.join("revenue/forecast.md")).unwrap(),
        Path::new("../../forecast.md")
    );
    // Queries looked up are listed in /.search.
    assert!(names(&search).unwrap().contains("revenue"));

    // A malformed query is EINVAL; the virtual folders are read-only.
    let err = std::fs::read_dir(search.join("report AND (")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let err = std::fs::write(search.join("report/new.txt"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = std::fs::write(search.join("report/.results"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = std::fs::remove_file(search.join("revenue/report.md")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = std::fs::create_dir(search.join("report/newdir")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // Every name in /.search is a query folder, so making one says it exists.
    let err = std::fs::create_dir(search.join("newdir")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));

    // The CLI searches and tags through the mount process.
    let out = env.ok(&["search", "revenue", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"], 2, "{out}");
    env.ok(&["tag", "add", "/forecast.md", "Plans", "2027"]);
    assert_eq!(env.ok(&["tag", "ls", "/forecast.md"]), "plans\n2027\n");
    assert_eq!(
        getxattr(&mnt.join("forecast.md"), "user.noisefs.tags").unwrap(),
        b"plans,2027"
    );
    assert_eq!(
        names(&search.join("tag:plans")).unwrap(),
        set(&[".results", "forecast.md"])
    );
    let out = env.ok(&["search", "--tag", "2027", "--json"]);
    assert!(out.contains("/forecast.md"), "{out}");
    m.unmount();
}

#[test]
fn a_subtree_mount_searches_only_its_subtree() {
    let env = Env::new();
    std::fs::write(env.path("a.txt"), "shared word").unwrap();
    env.ok(&["tree", "mkdir", "/inside"]);
    env.ok(&[
        "tree",
        "import",
        env.path("a.txt").to_str().unwrap(),
        "/inside/a.txt",
    ]);
    env.ok(&[
        "tree",
        "import",
        env.path("a.txt").to_str().unwrap(),
        "/outside.txt",
    ]);
    let m = env.mount("root=/inside");
    let q = env.mnt().join(".search/shared");
    assert_eq!(names(&q).unwrap(), set(&[".results", "a.txt"]));
    assert_eq!(
        std::fs::read_link(q.join("a.txt")).unwrap(),
        Path::new("../../a.txt")
    );
    assert_eq!(std::fs::read_to_string(q.join("a.txt")).unwrap(), "shared word");
    m.unmount();
}
