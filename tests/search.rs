//! End to end: `noisefs search` and `noisefs tag` with and without a daemon: text and JSON output,
//! filters from the command line (human sizes, dates), syntax errors with positions, and rebuilding a
//! deleted, older or corrupt index.

mod common;

use common::Env;

fn sample(env: &Env) {
    std::fs::create_dir_all(env.path("src/docs")).unwrap();
    std::fs::write(
        env.path("src/docs/report.md"),
        "# Report\nquarterly revenue grew\n",
    )
    .unwrap();
    std::fs::write(env.path("src/docs/notes.txt"), "budget meeting notes").unwrap();
    std::fs::write(env.path("src/big.bin"), vec![0u8; 300_000]).unwrap();
    env.ok(&["tree", "import", env.path("src").to_str().unwrap(), "/work"]);
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn paths(v: &serde_json::Value) -> Vec<String> {
    let mut p: Vec<String> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

#[test]
fn searches_from_the_cli_with_filters_and_outputs() {
    let env = Env::new(Some("4K"));
    sample(&env);

    // Text output: path, facts, snippet; the count on stderr.
    let out = env.run(&["search", "revenue"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("/work/docs/report.md\n"), "{text}");
    assert!(text.contains("text/markdown") && text.contains("score"), "{text}");
    assert!(text.contains("…# Report quarterly revenue grew…"), "{text}");
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "1 hit\n");

    // JSON with highlights, filters, sorts and pages.
    let v = json(&env.ok(&["search", "revenue", "--json"]));
    assert_eq!(v["total"], 1);
    let hit = &v["hits"][0];
    let (a, b) = (
        hit["snippet"]["highlights"][0][0].as_u64().unwrap(),
        hit["snippet"]["highlights"][0][1].as_u64().unwrap(),
    );
    assert_eq!(
        &hit["snippet"]["text"].as_str().unwrap()[a as usize..b as usize],
        "revenue"
    );
    let v = json(&env.ok(&["search", "--min-size", "200K", "--json"]));
    assert_eq!(paths(&v), ["/work/big.bin"]);
    let v = json(&env.ok(&["search", "--max-size", "1k", "--type", "text", "--json"]));
    assert_eq!(paths(&v), ["/work/docs/notes.txt", "/work/docs/report.md"]);
    let v = json(&env.ok(&["search", "--ext", "md", "--path", "/work/docs", "--json"]));
    assert_eq!(paths(&v), ["/work/docs/report.md"]);
    let v = json(&env.ok(&["search", "--name", "*.TXT", "--json"]));
    assert_eq!(paths(&v), ["/work/docs/notes.txt"]);
    let v = json(&env.ok(&[
        "search",
        "--modified-after",
        "1d",
        "--type",
        "inode/directory",
        "--json",
    ]));
    assert_eq!(paths(&v), ["/work", "/work/docs"]);
    let v = json(&env.ok(&["search", "--modified-before", "2000-01-01", "--json"]));
    assert_eq!(v["total"], 0);
    let v = json(&env.ok(&[
        "search", "--path", "/work", "--sort", "size", "--limit", "1", "--json",
    ]));
    assert_eq!(
        (v["total"].as_u64(), paths(&v)),
        (Some(5), vec!["/work/big.bin".to_string()])
    );
    let out = env.run(&[
        "search", "--path", "/work", "--sort", "name", "--limit", "2", "--offset", "1",
    ]);
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "5 hits, showing 2-3 (--offset 3 for more)\n"
    );
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("/work/docs\n"));

    // Tags.
    env.ok(&["tag", "add", "/work/docs/notes.txt", "Urgent", "q3"]);
    env.ok(&["tag", "add", "/work/docs/notes.txt", "urgent"]);
    assert_eq!(env.ok(&["tag", "ls", "/work/docs/notes.txt"]), "urgent\nq3\n");
    let v = json(&env.ok(&["search", "--tag", "urgent", "--json"]));
    assert_eq!(paths(&v), ["/work/docs/notes.txt"]);
    assert_eq!(v["hits"][0]["tags"], serde_json::json!(["urgent", "q3"]));
    env.ok(&["tag", "rm", "/work/docs/notes.txt", "urgent", "q3"]);
    assert_eq!(env.ok(&["tag", "ls", "/work/docs/notes.txt", "--json"]), "[]\n");
    assert!(env
        .fails(&["tag", "add", "/work/docs/notes.txt", "a,b"])
        .contains("no commas"));
    assert!(env.fails(&["tag", "add", "/nope", "x"]).contains("/nope"));

    // Bad input: a clear message with the position; bad sizes and dates name the value.
    let err = env.fails(&["search", "report AND ("]);
    assert!(
        err.contains("invalid search query \"report AND (\" at character 12"),
        "{err}"
    );
    let err = env.fails(&["search", "colour:red"]);
    assert!(
        err.contains("at character 0") && err.contains("no field `colour`"),
        "{err}"
    );
    assert!(env
        .fails(&["search", "--min-size", "lots"])
        .contains("not a size"));
    assert!(env
        .fails(&["search", "--modified-after", "someday"])
        .contains("not a date"));
    let out = env.run(&["search", "nothingmatches"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "no hits\n");
}

#[test]
fn the_daemon_keeps_the_index_current_and_rebuilds_a_bad_one() {
    let env = Env::new(Some("4K"));
    sample(&env);
    let d = env.daemon();
    let v = json(&env.ok(&["search", "revenue", "--json"]));
    assert_eq!(paths(&v), ["/work/docs/report.md"]);
    // Changes made through the daemon are found at once.
    std::fs::write(env.path("new.txt"), "revenue forecast").unwrap();
    env.ok(&[
        "tree",
        "import",
        env.path("new.txt").to_str().unwrap(),
        "/work/forecast.txt",
    ]);
    env.ok(&["tree", "mv", "/work/docs", "/archive"]);
    let v = json(&env.ok(&["search", "revenue", "--json"]));
    assert_eq!(paths(&v), ["/archive/report.md", "/work/forecast.txt"]);
    env.ok(&["tree", "rm", "/work/forecast.txt"]);
    let v = json(&env.ok(&["search", "revenue", "--json"]));
    assert_eq!(paths(&v), ["/archive/report.md"]);
    // --reindex through the daemon.
    let out = env.run(&["search", "--reindex"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "indexed 5 entries\n");
    d.stop();

    // A deleted index is built again; an older or corrupt one is rebuilt with a note.
    let index = env.repo().join("index");
    std::fs::remove_dir_all(&index).unwrap();
    assert_eq!(
        paths(&json(&env.ok(&["search", "revenue", "--json"]))),
        ["/archive/report.md"]
    );
    std::fs::write(index.join("noisefs-index-version"), "0\n").unwrap();
    let out = env.run(&["search", "revenue"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("note: the search index was rebuilt from the tree: it was written by another noisefs"),
        "{err}"
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("/archive/report.md"));
    std::fs::write(index.join("meta.json"), "garbage").unwrap();
    let err = String::from_utf8(env.run(&["search", "revenue"]).stderr).unwrap();
    assert!(err.contains("rebuilt") && err.contains("corrupt"), "{err}");
}
