//! Link parsing must never panic, and whatever parses must print back to the same link.
#![no_main]

use libfuzzer_sys::fuzz_target;
use noisefs::descriptor::Link;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(link) = s.parse::<Link>() {
            let again: Link = link.to_string().parse().expect("a printed link parses");
            assert_eq!(again, link);
        }
    }
});
