//! Progress bars for long CLI work (hidden when standard error is not a terminal, or with `-q`).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::transfer::Progress;

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
