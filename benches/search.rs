//! Search benchmark: indexes a generated tree of 100k entries (1,000 folders; one file in ten holds 1-3
//! KiB of text, the rest are empty files with generated names) and reports indexing files/s, the cost of a
//! refresh with nothing or 100 entries changed, and query latency p50/p99 for name, full-text and filtered
//! queries, in process and through the CLI against a running daemon. Baseline in the same run: the same
//! files in a plain folder searched with `grep -rlw` (content) and `find -iname` (names), what one would do
//! without an index.
//!
//! Run: `cargo bench --bench search` (`-- --quick` for 20k entries). The folder is `$NOISEFS_BENCH_DIR`,
//! else the system temporary folder. The repository uses 4 KiB blocks to keep the disk use small.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use noisefs::block::BlockSize;
use noisefs::repo::{Config, Repo};
use noisefs::search::{SearchRequest, Sort};
use noisefs::tree::ROOT;

const FILES_PER_FOLDER: usize = 100;
const QUERIES: usize = 200;
const CLI_QUERIES: usize = 100;
const EXTS: [&str; 8] = ["pdf", "jpg", "png", "docx", "mp3", "zip", "odt", "mkv"];

/// xorshift64*: deterministic, so every run indexes the same tree.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed toward small values, like word frequencies.
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(n);
        a * b / n
    }
}

fn vocabulary() -> Vec<String> {
    const SYL: [&str; 24] = [
        "ka", "lo", "mi", "ren", "tas", "vo", "qui", "ber", "don", "sul", "fa", "gri", "hel", "jun", "mor",
        "nix", "pa", "rut", "sem", "tor", "ul", "wen", "yar", "zo",
    ];
    let mut words = Vec::new();
    for a in SYL {
        for b in SYL {
            for c in ["", "na", "ter", "ix", "o"] {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(label: &str, mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    println!(
        "  {label:<44} p50 {p50:>8.2} ms   p99 {p99:>8.2} ms   ({} runs)",
        times.len()
    );
    (p50, p99)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let total: usize = if quick { 20_000 } else { 100_000 };
    let base = std::env::var_os("NOISEFS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("bench folder");
    let root = dir.path().join("repo");
    let plain = dir.path().join("plain");
    let words = vocabulary();
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // The tree, and the same files in a plain folder.
    let cfg = Config {
        block_size: BlockSize::new(4096).expect("block size"),
        writeback_delay_ms: 0,
        ..Config::default()
    };
    let repo = Arc::new(Repo::init(&root, cfg).expect("repository"));
    let engine = noisefs::node::engine(repo).expect("engine");
    let tree = engine.tree().clone();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = Instant::now();
    let mut folder = ROOT;
    let mut folder_path = plain.clone();
    let mut folders = Vec::new();
    for i in 0..total {
        if i % FILES_PER_FOLDER == 0 {
            let name = format!("{}-{}", words[rng.below(words.len())], i / FILES_PER_FOLDER);
            folder = tree.mkdir(ROOT, &name, 0o755, 0, 0).expect("mkdir").ino;
            folder_path = plain.join(&name);
            std::fs::create_dir_all(&folder_path).expect("plain folder");
            folders.push(name);
        }
        let stem = format!(
            "{}-{}-{i}",
            words[rng.skewed(words.len())],
            words[rng.below(words.len())]
        );
        if i % 10 == 0 {
            let name = format!("{stem}.{}", if i % 20 == 0 { "txt" } else { "md" });
            let len = 1024 + rng.below(2048);
            let mut text = String::with_capacity(len + 16);
            while text.len() < len {
                text.push_str(&words[rng.skewed(words.len())]);
                text.push(if rng.below(12) == 0 { '\n' } else { ' ' });
            }
            let ino = tree.create(folder, &name, 0o644, 0, 0).expect("create").ino;
            rt.block_on(async {
                tree.open(ino, true, false).await.expect("open");
                tree.write(ino, 0, text.as_bytes()).await.expect("write");
                tree.release(ino, true).expect("release");
            });
            std::fs::write(folder_path.join(&name), &text).expect("plain file");
            if i % 1000 == 0 {
                rt.block_on(engine.drain()).expect("seal");
            }
        } else {
            let name = format!("{stem}.{}", EXTS[rng.below(EXTS.len())]);
            tree.create(folder, &name, 0o644, 0, 0).expect("create");
            std::fs::File::create(folder_path.join(&name)).expect("plain file");
        }
    }
    rt.block_on(engine.drain()).expect("seal");
    println!(
        "search benchmark: {total} entries in {} folders, {} with text ({:.1} s to build)",
        folders.len(),
        total / 10,
        start.elapsed().as_secs_f64()
    );

    // Indexing.
    let search = engine.search().expect("index");
    let t = Instant::now();
    let done = rt.block_on(search.reindex()).expect("reindex");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  index from scratch: {} entries in {secs:.2} s = {:.0} entries/s",
        done.indexed,
        done.indexed as f64 / secs
    );
    // A refresh with nothing changed (the walk), then with 100 entries changed.
    let t = Instant::now();
    tree.setxattr(ROOT, "user.bench", b"x").expect("touch"); // moves the change counter only
    rt.block_on(search.refresh()).expect("refresh");
    println!(
        "  refresh, nothing changed: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let f0 = tree.resolve(&format!("/{}", folders[0])).expect("folder");
    let names: Vec<String> = tree
        .readdir(f0)
        .expect("readdir")
        .into_iter()
        .map(|e| e.name)
        .collect();
    let t = Instant::now();
    for n in &names {
        let ino = tree.lookup(f0, n).expect("lookup").ino;
        tree.setxattr(ino, "user.noisefs.tags", b"bench").expect("tag");
    }
    let changed = rt.block_on(search.refresh()).expect("refresh");
    println!(
        "  refresh, {} entries tagged: {:.1} ms",
        changed.indexed,
        t.elapsed().as_secs_f64() * 1000.0
    );

    // Queries in process.
    let mut qrng = Rng(42);
    let make = |kind: usize, qrng: &mut Rng| -> SearchRequest {
        let w = &words[qrng.below(words.len())];
        let w2 = &words[qrng.skewed(words.len())];
        match kind {
            0 => SearchRequest::new(&format!("name:{w}")),
            1 => SearchRequest::new(&format!("{w} {w2}")),
            _ => {
                let mut r = SearchRequest::new(w2);
                r.filters.ext = Some("txt".into());
                r.filters.min_size = Some(1500);
                r.filters.path = Some(format!("/{}", folders[qrng.below(folders.len())]));
                r.sort = Sort::Modified;
                r
            }
        }
    };
    let kinds = [
        "name (name:<word>)",
        "full text (<word> <word>)",
        "filtered (word + ext + size + path)",
    ];
    println!("  in process:");
    for (k, label) in kinds.iter().enumerate() {
        let mut times = Vec::new();
        for _ in 0..QUERIES {
            let req = make(k, &mut qrng);
            let t = Instant::now();
            rt.block_on(search.search(&req)).expect("search");
            times.push(t.elapsed());
        }
        report(label, times);
    }
    drop(search);
    drop(tree);
    drop(engine);

    // Through the CLI against a running daemon.
    let bin = env!("CARGO_BIN_EXE_noisefs");
    let mut daemon = Command::new(bin)
        .args(["daemon", "-q"])
        .env("NOISEFS_HOME", &root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let sock = root.join("daemon.sock");
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cli = |args: &[String]| {
        let out = Command::new(bin)
            .arg("search")
            .args(args)
            .arg("--json")
            .env("NOISEFS_HOME", &root)
            .stderr(Stdio::null())
            .output()
            .expect("noisefs search");
        assert!(out.status.success(), "noisefs search {args:?}");
    };
    cli(&["warmup".to_string()]);
    println!("  through the CLI and the daemon (each a new noisefs process):");
    let mut worst = 0.0f64;
    for (k, label) in kinds.iter().enumerate() {
        let mut times = Vec::new();
        for _ in 0..CLI_QUERIES {
            let req = make(k, &mut qrng);
            let mut args = vec![req.query.clone()];
            if let Some(e) = &req.filters.ext {
                args.extend(["--ext".into(), e.clone()]);
                args.extend(["--min-size".into(), "1500".into()]);
                args.extend(["--path".into(), req.filters.path.clone().unwrap_or_default()]);
                args.extend(["--sort".into(), "modified".into()]);
            }
            let t = Instant::now();
            cli(&args);
            times.push(t.elapsed());
        }
        worst = worst.max(report(label, times).1);
    }
    // SAFETY: kill with a valid pid and signal number has no memory effects.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    println!("  worst CLI p99: {worst:.2} ms (target <= 50 ms)");

    // Baseline: no index.
    println!("  baseline without an index (plain folder, page cache warm):");
    let mut brng = Rng(7);
    for (label, tool) in [
        ("grep -rlw <word> (content)", "grep"),
        ("find -iname '*<word>*' (names)", "find"),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let w = &words[brng.below(words.len())];
            let mut c = match tool {
                "grep" => {
                    let mut c = Command::new("grep");
                    c.arg("-rlw").arg(w).arg(&plain);
                    c
                }
                _ => {
                    let mut c = Command::new("find");
                    c.arg(&plain).arg("-iname").arg(format!("*{w}*"));
                    c
                }
            };
            let t = Instant::now();
            c.stdout(Stdio::null()).status().expect("baseline tool");
            times.push(t.elapsed());
        }
        report(label, times);
    }
}
