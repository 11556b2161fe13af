//! Bitswap 1.2.0 (`/ipfs/bitswap/1.2.0`): the message format ([`message`]), what peers want from us
//! ([`ledger`]), what we want from peers ([`wants`]), all without I/O; and the framing and the tasks
//! that move messages over libp2p streams ([`io`]).

pub mod io;
pub mod ledger;
pub mod message;
pub mod wants;

/// The protocols we speak, newest first; we answer all and open streams with the first.
pub const PROTOCOLS: [&str; 3] = ["/ipfs/bitswap/1.2.0", "/ipfs/bitswap/1.1.0", "/ipfs/bitswap"];
