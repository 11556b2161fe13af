//! Descriptors, folder manifests and links: the encrypted records that say which tuples make a file and
//! which entries make a folder, and the `noisefs://` links that name them.

pub mod fanout;
mod link;
pub mod node;

pub use fanout::{fetch_node, FanoutReader, FanoutWriter, SealedNode};
pub use link::{Link, LinkSecret, SCHEME};
pub use node::{Body, DirEntry, EntryKind, Meta, Node};
