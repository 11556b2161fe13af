//! Folder manifests: any bytes sealed as a valid envelope either decode into entries with safe names
//! or are refused; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use noisefs::block::BlockId;
use noisefs::crypto::{open_envelope, seal_envelope, Key};
use noisefs::descriptor::node::{check_name, decode};
use noisefs::descriptor::Body;

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes([1; 32]);
    let Ok(block) = seal_envelope(&key, data, 64 * 1024) else { return };
    let plain = open_envelope(&key, &block).expect("our own envelope opens");
    let id = BlockId::of(&block);
    if let Ok(node) = decode(&id, &plain, true) {
        if let Body::Entries(entries) = node.body {
            for e in entries {
                assert!(check_name(&e.name).is_ok(), "decode let through {:?}", e.name);
            }
        }
    }
});
