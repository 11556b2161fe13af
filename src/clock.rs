//! The wall clock, in the units the formats use: nanoseconds (tree times), milliseconds (queue and
//! daemon times) and seconds (descriptor and pin times), all since the Unix epoch. A clock before the
//! epoch reads as 0.

use std::time::{SystemTime, UNIX_EPOCH};

fn since_epoch() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    since_epoch().as_nanos() as i64
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    since_epoch().as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_agree() {
        let (s, ms, ns) = (now_secs(), now_ms(), now_ns());
        assert!(s > 1_700_000_000, "{s}");
        assert!((ms / 1000 - s).abs() <= 1);
        assert!((ns / 1_000_000 - ms).abs() <= 1000);
    }
}
