//! Publish/subscribe over gossipsub (`/meshsub/1.1.0`, as IPFS speaks it), the hook announcements
//! build on: topics are opaque strings to this crate (the caller normalizes and hashes its names);
//! messages carry no origin (anonymous authenticity: no source peer, sequence number or signature, so a
//! message does not say which peer published it) and are named by the SHA-256 of topic and bytes. A
//! message is forwarded only after the application judges it ([`crate::Handle::judge`]): what fails
//! its checks goes no further than this node.

use bytes::Bytes;
use libp2p::gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::PeerId;
use sha2::{Digest, Sha256};

/// The largest message published or accepted, in bytes (announcements are at most 4 KiB).
pub const MAX_MESSAGE: usize = 16 << 10;
/// Messages waiting for a subscriber of this node's handle; a subscriber that falls further behind
/// loses the oldest (and is told how many).
pub const INBOX: usize = 1024;

/// A message received on a subscribed topic, waiting for the application's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubMessage {
    /// Names the message in [`crate::Handle::judge`].
    pub id: Vec<u8>,
    /// The peer that forwarded it (not necessarily its publisher, which the message does not name).
    pub from: PeerId,
    pub topic: String,
    pub data: Bytes,
}

/// What the application decided about a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: deliver and forward it.
    Accept,
    /// Invalid (a forged signature, say): drop it and count it against the peer that sent it.
    Reject,
    /// Not wanted (a duplicate, over a rate limit): drop it without penalty.
    Ignore,
}

impl From<Verdict> for gossipsub::MessageAcceptance {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => gossipsub::MessageAcceptance::Accept,
            Verdict::Reject => gossipsub::MessageAcceptance::Reject,
            Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
        }
    }
}

/// A message's id: SHA-256 of the topic, a zero byte and the data.
pub fn message_id(topic: &str, data: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(topic.as_bytes());
    h.update([0]);
    h.update(data);
    h.finalize().to_vec()
}

/// The gossipsub behaviour: anonymous, validated by the application, messages capped at
/// [`MAX_MESSAGE`].
pub fn behaviour() -> Result<gossipsub::Behaviour, String> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .max_transmit_size(MAX_MESSAGE + 1024)
        .message_id_fn(|m: &gossipsub::Message| MessageId::new(&message_id(m.topic.as_str(), &m.data)))
        .build()
        .map_err(|e| format!("gossipsub: {e}"))?;
    gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).map_err(|e| format!("gossipsub: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_topic_and_bytes_and_verdicts_map_to_gossipsub() {
        // A fixed vector: SHA-256 of "t\0x".
        let id = message_id("t", b"x");
        assert_eq!(id, Sha256::digest(b"t\0x").to_vec());
        assert_ne!(message_id("t", b"x"), message_id("u", b"x"));
        assert_ne!(message_id("t", b"x"), message_id("t", b"y"));
        assert_ne!(message_id("ab", b"c"), message_id("a", b"bc"));
        assert!(matches!(
            gossipsub::MessageAcceptance::from(Verdict::Reject),
            gossipsub::MessageAcceptance::Reject
        ));
        assert!(matches!(
            gossipsub::MessageAcceptance::from(Verdict::Ignore),
            gossipsub::MessageAcceptance::Ignore
        ));
        assert!(matches!(
            gossipsub::MessageAcceptance::from(Verdict::Accept),
            gossipsub::MessageAcceptance::Accept
        ));
        assert!(behaviour().is_ok());
    }
}
