//! A file of 1 GiB streams through `put` and `cat` with memory that stays bounded.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;

use common::Env;
use sha2::{Digest, Sha256};

/// Peak resident memory of finished child processes, in KiB.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    }
}

#[test]
fn one_gib_streams_with_bounded_memory() {
    let env = Env::new(None);
    let size: u64 = 1 << 30;
    let src = env.path("big.bin");
    let mut hasher = Sha256::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let chunk = common::pseudo_random(1 << 20, 42);
        for i in 0..(size >> 20) {
            let mut c = chunk.clone();
            c[..8].copy_from_slice(&i.to_le_bytes());
            hasher.update(&c);
            f.write_all(&c).unwrap();
        }
        f.flush().unwrap();
    }
    let want = hasher.finalize();

    let link = env.put(&src);
    std::fs::remove_file(&src).unwrap();
    let mut child = env.cmd(&["cat", &link]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(total, size);
    assert_eq!(hasher.finalize(), want);
    let rss_mib = children_max_rss_kib() / 1024;
    assert!(rss_mib < 256, "a child used {rss_mib} MiB streaming 1 GiB");
}
