//! Progress bars for long CLI work (hidden when standard error is not a terminal, or with `-q`).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::network::Network;
use crate::transfer::Progress;

/// Keeps a bar's message saying how many peers are connected and what came from them, while the
/// command's node runs (it starts on the first block the repository lacks). Stops when dropped.
pub struct PeerTicker(Option<tokio::task::JoinHandle<()>>);

impl PeerTicker {
    /// Updates `bar`'s message (`base`, then the peers and their bytes) ten times a second.
    pub fn start(bar: &ProgressBar, network: Option<&Arc<Network>>, base: &str) -> PeerTicker {
        let (Some(net), false) = (network.cloned(), bar.is_hidden()) else {
            return PeerTicker(None);
        };
        let (bar, base) = (bar.clone(), base.to_string());
        // What the node received before this command began is not this command's (a node this
        // command starts counts from 0).
        let before = net.traffic().map_or(0, |(_, received)| received);
        PeerTicker(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let Some((peers, received)) = net.traffic() {
                    bar.set_message(peer_message(&base, peers, received.saturating_sub(before)));
                }
            }
        })))
    }
}

impl Drop for PeerTicker {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// `getting · 2 peers · 1.5 MiB from peers`.
pub fn peer_message(base: &str, peers: u64, from_peers: u64) -> String {
    let s = if peers == 1 { "" } else { "s" };
    format!(
        "{base} · {peers} peer{s} · {} from peers",
        crate::fmt::human_bytes(from_peers)
    )
}

/// A byte-counting bar with `total` bytes (0 when unknown).
pub fn bytes_bar(total: u64, quiet: bool, message: &str) -> (ProgressBar, Progress) {
    let template = if total > 0 {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {bytes_per_sec}"
    };
    let bar = bar(total, quiet, message, template);
    let b = bar.clone();
    (bar, Arc::new(move |n| b.inc(n)))
}

/// A bar counting `total` items.
pub fn count_bar(total: u64, quiet: bool, message: &str) -> ProgressBar {
    bar(total, quiet, message, "{msg} [{bar:30}] {pos}/{len} eta {eta}")
}

fn bar(total: u64, quiet: bool, message: &str, template: &str) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    bar
}

/// Bytes of regular files at or below `path` (for a bar's total); 0 when unreadable.
pub fn size_of_path(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_message_names_peers_and_bytes() {
        assert_eq!(peer_message("getting", 1, 0), "getting · 1 peer · 0 B from peers");
        assert_eq!(
            peer_message("getting", 3, 3 << 20),
            "getting · 3 peers · 3.0 MiB from peers"
        );
        // Hidden bars (quiet, not a terminal) need no ticker.
        let (bar, _) = bytes_bar(10, true, "getting");
        assert!(PeerTicker::start(&bar, None, "getting").0.is_none());
    }
}
