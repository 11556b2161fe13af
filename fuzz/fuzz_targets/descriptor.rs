//! Descriptor decoding (the envelope, then the CBOR node) must never panic on untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use noisefs::block::BlockId;
use noisefs::crypto::{open_envelope, Key};
use noisefs::descriptor::node::decode;

fuzz_target!(|data: &[u8]| {
    let id = BlockId::of(data);
    let _ = decode(&id, data, true);
    let _ = decode(&id, data, false);
    let _ = open_envelope(&Key::from_bytes([0; 32]), data);
});
