//! Announcements from peers (gossipsub messages and catch-up items), topic names and subscription
//! patterns must never panic on untrusted input; whatever decodes must re-encode within the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use noisefs::announce::{format::Announcement, topic, Checker, Limits, Pattern};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Announcement::decode(data) {
        assert!(a.bytes.len() <= noisefs::announce::format::MAX_BYTES);
        let _ = a.id();
        let _ = a.expires();
    }
    let mut c = Checker::new(Limits::default());
    let _ = c.admit(data, Some(b"peer"), Some(&[0; 16]), true, 1_700_000_000_000, &|_| false);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = topic::normalize(s);
        if let Ok(p) = s.parse::<Pattern>() {
            let _ = p.matches_name("media/books");
            let _ = p.matches_levels(&topic::levels("media/books"));
        }
    }
});
