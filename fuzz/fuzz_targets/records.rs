//! Bytes read back from the state or the control socket must never panic their parsers: control
//! requests (JSON from any local process of the owner), inode records and queue items (CBOR in LMDB).
#![no_main]

use libfuzzer_sys::fuzz_target;
use noisefs::daemon::proto::Request;
use noisefs::tree::Inode;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<Request>(data) {
        let again: Request = serde_json::from_slice(&serde_json::to_vec(&req).expect("encode")).expect("decode");
        assert_eq!(again, req);
    }
    if let Ok(ino) = Inode::decode(7, data) {
        let mut buf = Vec::new();
        ciborium::into_writer(&ino, &mut buf).expect("encode");
        assert_eq!(Inode::decode(7, &buf).expect("re-decode"), ino);
    }
    let _ = ciborium::from_reader::<noisefs::queue::Item, _>(data);
});
