//! Announcement benchmark: `discover` over 100,000 stored announcements (p50/p99 of varied queries:
//! by tags, topic pattern, words of the title, category, and none), against a baseline measured in the
//! same run: one plain pass over the same LMDB records reading their fixed fields (what any query
//! must at least do without an index). Also the cost of checking and storing one announcement.
//!
//! Run: `cargo bench --bench announce` (`-- --quick` for 20,000). The folder is `$NOISEFS_BENCH_DIR`,
//! else the system temporary folder.

use std::time::Instant;

use noisefs::announce::format::{size_class, Body, Category, Tags, VERSION};
use noisefs::announce::{topic, AnnounceStore, Names, Query};
use noisefs::state::State;

const TOPICS: [&str; 6] = [
    "media/books",
    "media/music",
    "media/video",
    "software/linux",
    "docs/papers",
    "data/datasets",
];
const WORDS: [&str; 8] = [
    "dune", "river", "atlas", "winter", "signal", "garden", "kernel", "orbit",
];

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let total: u32 = if quick { 20_000 } else { 100_000 };
    let base = std::env::var_os("NOISEFS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("bench folder");
    let state = State::open(dir.path()).expect("state");
    let store = AnnounceStore::open(&state).expect("store");
    let now = noisefs::clock::now_secs() as u64;
    let keys: Vec<_> = (0..100u8)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]))
        .collect();
    let started = Instant::now();
    for i in 0..total {
        let key = &keys[(i % 100) as usize];
        let t = TOPICS[(i % 6) as usize];
        let w = WORDS[(i % 8) as usize];
        let root = noisefs::block::BlockId::of(&i.to_le_bytes());
        let mut nonce = [0u8; 16];
        nonce[..4].copy_from_slice(&i.to_le_bytes());
        let body = Body {
            v: VERSION,
            publisher: key.verifying_key().to_bytes(),
            root: root.to_string(),
            link: None,
            title: format!("{w} {i} of the collection"),
            folder: i % 10 == 0,
            topic: topic::levels(t)
                .into_iter()
                .map(serde_bytes::ByteArray::new)
                .collect(),
            tags: Tags::of(&[w, WORDS[(i as usize / 8) % 8], "common"]).0,
            category: Category::ALL[(i % 7) as usize],
            size_class: size_class(1 << (10 + i % 20)),
            media_type: "application/octet-stream".into(),
            time: now - (i as u64 % 86_400),
            ttl: 7 * 86_400,
            nonce,
        };
        let a = body.sign(key).expect("sign");
        store.insert(&a, 0, 1_000_000).expect("insert");
    }
    let fill = started.elapsed().as_secs_f64();
    println!(
        "stored {total} announcements in {fill:.1} s ({:.0} per second: sign + check-free insert, one transaction each)",
        total as f64 / fill
    );
    let names = Names::load(&store).expect("names");

    // Baseline: one pass over every record.
    let mut base_ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut n = 0u64;
        store
            .each_view(&mut |e| {
                n += e.time & 1;
                Ok(true)
            })
            .expect("scan");
        std::hint::black_box(n);
        base_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let queries: Vec<(&str, Query)> = vec![
        (
            "no filter (limit 20)",
            Query {
                limit: 20,
                ..Query::default()
            },
        ),
        (
            "tags dune,river",
            Query {
                tags: vec!["dune".into(), "river".into()],
                limit: 20,
                ..Query::default()
            },
        ),
        (
            "topic media/**",
            Query {
                topics: vec!["media/**".parse().expect("pattern")],
                limit: 20,
                ..Query::default()
            },
        ),
        (
            "title word 'atlas'",
            Query {
                words: vec!["atlas".into()],
                limit: 20,
                ..Query::default()
            },
        ),
        (
            "category + since 1h",
            Query {
                category: Some(Category::Video),
                since: Some(now - 3600),
                limit: 20,
                ..Query::default()
            },
        ),
    ];
    let mut all = Vec::new();
    println!("| query | p50 ms | p99 ms | hits |");
    println!("|---|---|---|---|");
    for (label, q) in &queries {
        let mut ms = Vec::new();
        let mut hits = 0;
        for _ in 0..40 {
            let t = Instant::now();
            hits = noisefs::announce::query::discover(&store, &names, q, now)
                .expect("discover")
                .len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        all.extend_from_slice(&ms);
        println!(
            "| {label} | {:.1} | {:.1} | {hits} |",
            percentile(&mut ms.clone(), 0.5),
            percentile(&mut ms, 0.99)
        );
    }
    println!(
        "discover over {total}: p50 {:.1} ms, p99 {:.1} ms (target p99 <= 50 ms); baseline record scan p50 {:.1} ms, p99 {:.1} ms",
        percentile(&mut all.clone(), 0.5),
        percentile(&mut all, 0.99),
        percentile(&mut base_ms.clone(), 0.5),
        percentile(&mut base_ms, 0.99)
    );
}
