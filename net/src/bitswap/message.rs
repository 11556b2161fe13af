//! The bitswap 1.2.0 message (`/ipfs/bitswap/1.2.0`, boxo's `message.proto`), encoded and decoded
//! by hand: a want list (want-have, want-block, cancel, send-dont-have), blocks as (CID prefix, data)
//! payloads, block presences (have, dont-have) and pending bytes. Decoding checks every CID and caps
//! counts, so a peer's bytes never become more than a bounded, well-formed message.
//!
//! ```text
//! Message  { 1: Wantlist wantlist; 2: repeated bytes blocks (1.0.0, CIDv0 implied);
//!            3: repeated Block payload; 4: repeated BlockPresence blockPresences; 5: int32 pendingBytes }
//! Wantlist { 1: repeated Entry entries; 2: bool full }
//! Entry    { 1: bytes block (CID); 2: int32 priority; 3: bool cancel; 4: WantType wantType
//!            (0 block, 1 have); 5: bool sendDontHave }
//! Block    { 1: bytes prefix (CID version, codec, multihash code and length); 2: bytes data }
//! BlockPresence { 1: bytes cid; 2: type (0 have, 1 dont-have) }
//! ```

use bytes::Bytes;

use crate::cid::{Cid, CidError};
use crate::varint;

/// The largest message read or written (frame length included), as go-bitswap and helia set it.
pub const MAX_MESSAGE: usize = 4 << 20;
/// The most want-list entries, blocks or presences one message may carry.
pub const MAX_ITEMS: usize = 8192;

/// What a want asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WantType {
    /// The block itself.
    Block,
    /// Only whether the peer has it.
    Have,
}

/// One want-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cid: Cid,
    pub priority: i32,
    pub cancel: bool,
    pub want: WantType,
    /// Answer "dont-have" rather than staying silent.
    pub send_dont_have: bool,
}

impl Entry {
    /// A want for `cid` of the given type, asking for dont-have answers.
    pub fn want(cid: Cid, want: WantType) -> Entry {
        Entry {
            cid,
            priority: 1,
            cancel: false,
            want,
            send_dont_have: true,
        }
    }

    /// A cancel of an earlier want for `cid`.
    pub fn cancel(cid: Cid) -> Entry {
        Entry {
            cid,
            priority: 0,
            cancel: true,
            want: WantType::Block,
            send_dont_have: false,
        }
    }
}

/// A block presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Have,
    DontHave,
}

/// A bitswap message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub wantlist: Vec<Entry>,
    /// The want list replaces the earlier one rather than adding to it.
    pub full: bool,
    /// Blocks, each with the CID its bytes hash to under the prefix the peer gave.
    pub blocks: Vec<(Cid, Bytes)>,
    pub presences: Vec<(Cid, Presence)>,
    pub pending_bytes: i32,
}

/// Why a peer's bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated or malformed protobuf")]
    Malformed,
    #[error("unsupported protobuf wire type {0}")]
    WireType(u64),
    #[error("more than {MAX_ITEMS} items in one message")]
    TooMany,
    #[error("bad CID: {0}")]
    Cid(#[from] CidError),
    #[error("unknown enum value {0}")]
    Enum(u64),
}

impl Message {
    /// Adds a later message's want list (and anything else it carries) to this one, as if both had
    /// been sent in order: a later full want list replaces what came before it.
    pub fn merge(&mut self, later: Message) {
        if later.full {
            self.wantlist.clear();
            self.full = true;
        }
        self.wantlist.extend(later.wantlist);
        self.blocks.extend(later.blocks);
        self.presences.extend(later.presences);
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.wantlist.is_empty() && self.blocks.is_empty() && self.presences.is_empty() && !self.full
    }

    /// The encoded size, near enough to batch by (within a few bytes per item).
    pub fn size_hint(&self) -> usize {
        self.wantlist.len() * 48
            + self.presences.len() * 44
            + self.blocks.iter().map(|(_, d)| d.len() + 16).sum::<usize>()
    }

    /// The protobuf bytes (no length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint() + 16);
        self.encode_into(&mut out);
        out
    }

    /// The message as one frame: its length as a varint, then the protobuf bytes. Built in one buffer
    /// (the body is written after room for the longest length, which is filled in from the end), so a
    /// block's bytes are copied once.
    pub fn frame(&self) -> Bytes {
        const ROOM: usize = 10;
        let mut out = Vec::with_capacity(ROOM + self.size_hint() + 16);
        out.resize(ROOM, 0);
        self.encode_into(&mut out);
        let mut len = Vec::with_capacity(ROOM);
        varint::encode((out.len() - ROOM) as u64, &mut len);
        let start = ROOM - len.len();
        out[start..ROOM].copy_from_slice(&len);
        // A view from the length on: cutting the unused room off the front would move every byte.
        Bytes::from(out).slice(start..)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        if !self.wantlist.is_empty() || self.full {
            let mut wl = Vec::new();
            for e in &self.wantlist {
                let mut entry = Vec::with_capacity(48);
                put_bytes(&mut entry, 1, &e.cid.to_bytes());
                if e.priority != 0 {
                    put_varint(&mut entry, 2, e.priority as i64 as u64);
                }
                if e.cancel {
                    put_varint(&mut entry, 3, 1);
                }
                if e.want == WantType::Have {
                    put_varint(&mut entry, 4, 1);
                }
                if e.send_dont_have {
                    put_varint(&mut entry, 5, 1);
                }
                put_bytes(&mut wl, 1, &entry);
            }
            if self.full {
                put_varint(&mut wl, 2, 1);
            }
            put_bytes(out, 1, &wl);
        }
        for (cid, data) in &self.blocks {
            // The block field's header (prefix field and the data field's tag and length) is built
            // apart; the data goes straight into `out`.
            let mut head = Vec::with_capacity(24);
            put_bytes(&mut head, 1, &cid.prefix());
            put_len(&mut head, 2, data.len());
            put_len(out, 3, head.len() + data.len());
            out.extend_from_slice(&head);
            out.extend_from_slice(data);
        }
        for (cid, p) in &self.presences {
            let mut bp = Vec::with_capacity(44);
            put_bytes(&mut bp, 1, &cid.to_bytes());
            if *p == Presence::DontHave {
                put_varint(&mut bp, 2, 1);
            }
            put_bytes(out, 4, &bp);
        }
        if self.pending_bytes != 0 {
            put_varint(out, 5, self.pending_bytes as i64 as u64);
        }
    }

    /// Decodes a message; block data is shared with `bytes`, not copied.
    pub fn decode(bytes: &Bytes) -> Result<Message, DecodeError> {
        let mut msg = Message::default();
        let mut items = 0usize;
        let count = |items: &mut usize| {
            *items += 1;
            if *items > MAX_ITEMS {
                Err(DecodeError::TooMany)
            } else {
                Ok(())
            }
        };
        for field in Fields::new(bytes) {
            match field? {
                (1, Value::Bytes(wl)) => {
                    for f in Fields::new(&wl) {
                        match f? {
                            (1, Value::Bytes(entry)) => {
                                count(&mut items)?;
                                msg.wantlist.push(decode_entry(&entry)?);
                            }
                            (2, Value::Varint(v)) => msg.full = v != 0,
                            _ => {}
                        }
                    }
                }
                (2, Value::Bytes(data)) => {
                    count(&mut items)?;
                    let cid = Cid::from_prefix_and_data(&[0, 0x70, 0x12, 0x20], &data)?;
                    msg.blocks.push((cid, data));
                }
                (3, Value::Bytes(block)) => {
                    count(&mut items)?;
                    let (mut prefix, mut data) = (None, Bytes::new());
                    for f in Fields::new(&block) {
                        match f? {
                            (1, Value::Bytes(p)) => prefix = Some(p),
                            (2, Value::Bytes(d)) => data = d,
                            _ => {}
                        }
                    }
                    let prefix = prefix.ok_or(DecodeError::Malformed)?;
                    msg.blocks
                        .push((Cid::from_prefix_and_data(&prefix, &data)?, data));
                }
                (4, Value::Bytes(bp)) => {
                    count(&mut items)?;
                    let (mut cid, mut kind) = (None, Presence::Have);
                    for f in Fields::new(&bp) {
                        match f? {
                            (1, Value::Bytes(c)) => cid = Some(Cid::from_bytes(&c)?),
                            (2, Value::Varint(0)) => kind = Presence::Have,
                            (2, Value::Varint(1)) => kind = Presence::DontHave,
                            (2, Value::Varint(v)) => return Err(DecodeError::Enum(v)),
                            _ => {}
                        }
                    }
                    msg.presences.push((cid.ok_or(DecodeError::Malformed)?, kind));
                }
                (5, Value::Varint(v)) => msg.pending_bytes = v as i32,
                _ => {}
            }
        }
        Ok(msg)
    }
}

fn decode_entry(bytes: &Bytes) -> Result<Entry, DecodeError> {
    let mut cid = None;
    let mut e = Entry {
        cid: Cid::v1_of(0x55, b""),
        priority: 0,
        cancel: false,
        want: WantType::Block,
        send_dont_have: false,
    };
    for f in Fields::new(bytes) {
        match f? {
            (1, Value::Bytes(c)) => cid = Some(Cid::from_bytes(&c)?),
            (2, Value::Varint(v)) => e.priority = v as i32,
            (3, Value::Varint(v)) => e.cancel = v != 0,
            (4, Value::Varint(0)) => e.want = WantType::Block,
            (4, Value::Varint(1)) => e.want = WantType::Have,
            (4, Value::Varint(v)) => return Err(DecodeError::Enum(v)),
            (5, Value::Varint(v)) => e.send_dont_have = v != 0,
            _ => {}
        }
    }
    e.cid = cid.ok_or(DecodeError::Malformed)?;
    Ok(e)
}

fn put_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint::encode(field << 3, out);
    varint::encode(v, out);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    put_len(out, field, b.len());
    out.extend_from_slice(b);
}

/// A length-delimited field's tag and length, its `len` bytes to follow.
fn put_len(out: &mut Vec<u8>, field: u64, len: usize) {
    varint::encode((field << 3) | 2, out);
    varint::encode(len as u64, out);
}

/// A protobuf field value.
enum Value {
    Varint(u64),
    Bytes(Bytes),
    Fixed,
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    bytes: &'a Bytes,
    at: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a Bytes) -> Self {
        Fields {
            bytes,
            at: 0,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let (v, n) = varint::decode(&self.bytes[self.at..]).ok_or(DecodeError::Malformed)?;
        self.at += n;
        Ok(v)
    }

    fn field(&mut self) -> Result<(u64, Value), DecodeError> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if self.bytes.len() - self.at < n {
                    return Err(DecodeError::Malformed);
                }
                self.at += n;
                Value::Fixed
            }
            2 => {
                let len = self.varint()?;
                let left = (self.bytes.len() - self.at) as u64;
                if len > left {
                    return Err(DecodeError::Malformed);
                }
                let start = self.at;
                self.at += len as usize;
                Value::Bytes(self.bytes.slice(start..self.at))
            }
            t => return Err(DecodeError::WireType(t)),
        };
        Ok((key >> 3, value))
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<(u64, Value), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        let r = self.field();
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(data: &[u8]) -> Cid {
        Cid::v1_of(0x55, data)
    }

    #[test]
    fn merged_want_lists_keep_their_order_and_a_full_list_resets() {
        let (a, b, c) = (
            Cid::v1_of(0x55, b"a"),
            Cid::v1_of(0x55, b"b"),
            Cid::v1_of(0x55, b"c"),
        );
        let mut m = Message {
            wantlist: vec![Entry::want(a, WantType::Block)],
            ..Message::default()
        };
        m.merge(Message {
            wantlist: vec![Entry::cancel(a), Entry::want(b, WantType::Have)],
            ..Message::default()
        });
        assert_eq!(m.wantlist.len(), 3);
        assert!(!m.full);
        m.merge(Message {
            wantlist: vec![Entry::want(c, WantType::Block)],
            full: true,
            ..Message::default()
        });
        assert!(m.full);
        assert_eq!(m.wantlist, vec![Entry::want(c, WantType::Block)]);
    }

    #[test]
    fn fixed_vector() {
        let a = raw(b"");
        let msg = Message {
            wantlist: vec![Entry::want(a, WantType::Have), Entry::cancel(a)],
            full: false,
            blocks: vec![(a, Bytes::new())],
            presences: vec![(a, Presence::DontHave)],
            pending_bytes: 0,
        };
        let cid = a.to_bytes();
        let mut entry1 = vec![0x0a, 36];
        entry1.extend_from_slice(&cid);
        entry1.extend_from_slice(&[0x10, 1, 0x20, 1, 0x28, 1]);
        let mut entry2 = vec![0x0a, 36];
        entry2.extend_from_slice(&cid);
        entry2.extend_from_slice(&[0x18, 1]);
        let mut wl = vec![0x0a, entry1.len() as u8];
        wl.extend_from_slice(&entry1);
        wl.extend_from_slice(&[0x0a, entry2.len() as u8]);
        wl.extend_from_slice(&entry2);
        let mut expected = vec![0x0a, wl.len() as u8];
        expected.extend_from_slice(&wl);
        expected.extend_from_slice(&[0x1a, 8, 0x0a, 4, 0x01, 0x55, 0x12, 0x20, 0x12, 0]);
        expected.extend_from_slice(&[0x22, 40, 0x0a, 36]);
        expected.extend_from_slice(&cid);
        expected.extend_from_slice(&[0x10, 1]);
        assert_eq!(msg.encode(), expected);
        assert_eq!(Message::decode(&Bytes::from(expected)).unwrap(), msg);
    }

    #[test]
    fn a_frame_is_the_length_then_the_body() {
        for size in [0usize, 5, 127, 128, 200_000, 1 << 20] {
            let data = Bytes::from(vec![7u8; size]);
            let msg = Message {
                blocks: vec![(raw(&data), data)],
                ..Message::default()
            };
            let body = msg.encode();
            let mut expected = Vec::new();
            varint::encode(body.len() as u64, &mut expected);
            expected.extend_from_slice(&body);
            assert_eq!(msg.frame(), expected, "{size}");
            assert_eq!(Message::decode(&Bytes::from(body)).unwrap(), msg);
        }
        assert_eq!(Message::default().frame(), vec![0]);
    }

    #[test]
    fn version_1_0_blocks_and_unknown_fields() {
        // Field 2 (1.0.0 blocks: CIDv0 implied), a fixed64 and a fixed32 field, pending bytes.
        let mut b = vec![0x12, 3, b'a', b'b', b'c'];
        b.extend_from_slice(&[0x31, 0, 0, 0, 0, 0, 0, 0, 0, 0x3d, 0, 0, 0, 0, 0x28, 5]);
        let msg = Message::decode(&Bytes::from(b)).unwrap();
        assert_eq!(msg.blocks.len(), 1);
        assert!(msg.blocks[0].0.verifies(b"abc"));
        assert_eq!(msg.blocks[0].0.codec(), 0x70);
        assert_eq!(msg.pending_bytes, 5);
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            vec![0x0a],                         // truncated length
            vec![0x0a, 5, 1],                   // length past the end
            vec![0x0b],                         // wire type 3 (groups)
            vec![0x22, 2, 0x10, 1],             // presence without a CID
            vec![0x1a, 2, 0x12, 0],             // payload without a prefix
            vec![0x22, 4, 0x0a, 2, 0x12, 0x20], // presence with a truncated CID
            vec![0x31, 0, 0],                   // truncated fixed64
        ] {
            assert!(Message::decode(&Bytes::from(bad.clone())).is_err(), "{bad:?}");
        }
        let mut unknown_presence = vec![0x22, 40, 0x0a, 36];
        unknown_presence.extend_from_slice(&raw(b"").to_bytes());
        unknown_presence.extend_from_slice(&[0x10, 7]);
        assert_eq!(
            Message::decode(&Bytes::from(unknown_presence)),
            Err(DecodeError::Enum(7))
        );
        // Too many items.
        let msg = Message {
            presences: vec![(raw(b""), Presence::Have); MAX_ITEMS + 1],
            ..Message::default()
        };
        assert_eq!(
            Message::decode(&Bytes::from(msg.encode())),
            Err(DecodeError::TooMany)
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trips(
            wants in proptest::collection::vec((proptest::num::u8::ANY, proptest::bool::ANY, proptest::bool::ANY, proptest::bool::ANY, -5i32..5), 0..8),
            blocks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..4),
            full in proptest::bool::ANY,
            pending in 0i32..1_000_000,
        ) {
            let msg = Message {
                wantlist: wants.iter().map(|(b, cancel, have, sdh, prio)| Entry {
                    cid: raw(&[*b]), priority: *prio, cancel: *cancel,
                    want: if *have { WantType::Have } else { WantType::Block }, send_dont_have: *sdh,
                }).collect(),
                full,
                blocks: blocks.iter().map(|d| (raw(d), Bytes::from(d.clone()))).collect(),
                presences: blocks.iter().map(|d| (raw(d), Presence::Have)).collect(),
                pending_bytes: pending,
            };
            proptest::prop_assert_eq!(Message::decode(&Bytes::from(msg.encode())).unwrap(), msg);
        }

        #[test]
        fn any_bytes_decode_or_fail(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Message::decode(&Bytes::from(bytes));
        }
    }
}
