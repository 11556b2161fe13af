//! Memory of want lists (scripts/bench-net.sh): what 1,000 connected peers' ledgers cost when every peer
//! floods wants (twice the cap each, half of them refused), measured as the growth of this process's
//! resident set. Prints `{"peers":N,"wants_per_peer":W,"rss_growth_bytes":B,"bytes_per_want":X}`.
//!
//!     cargo run --release -p noisefs-net --example want_memory -- 1000

use noisefs_net::bitswap::ledger::Ledger;
use noisefs_net::bitswap::message::{Entry, WantType};
use noisefs_net::Cid;

/// The default want-list cap of a node (`Config::ledger_cap`).
const CAP: usize = 1024;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn main() {
    let peers: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let before = rss();
    let mut ledgers = Vec::with_capacity(peers);
    let mut refused = 0;
    for p in 0..peers {
        let mut l = Ledger::new(CAP);
        // Eight messages of 256 wants: 2,048 wants against a cap of 1,024.
        for m in 0..8u32 {
            let entries: Vec<Entry> = (0..256u32)
                .map(|i| {
                    let n = ((p as u64) << 32) | u64::from(m * 256 + i);
                    Entry::want(Cid::v1_of(0x55, &n.to_le_bytes()), WantType::Block)
                })
                .collect();
            refused += l.apply(&entries, false);
        }
        ledgers.push(l);
    }
    let held: usize = ledgers.iter().map(|l| l.len()).sum();
    let growth = rss().saturating_sub(before);
    assert_eq!(held, peers * CAP, "every ledger holds exactly its cap");
    assert_eq!(refused, peers * CAP, "the rest was refused");
    println!(
        "{{\"peers\":{peers},\"wants_per_peer\":{CAP},\"refused\":{refused},\"rss_growth_bytes\":{growth},\"bytes_per_want\":{:.1}}}",
        growth as f64 / held as f64
    );
}
