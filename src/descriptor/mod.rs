//! Descriptors, folder manifests and links: the encrypted records that say which tuples make a file and
//! which entries make a folder, and the `noisefs://` links that name them.

mod link;
pub mod node;
pub mod tree;

pub use link::{Link, LinkSecret, SCHEME};
pub use node::{Body, DirEntry, EntryKind, Meta, Node};
pub use tree::{fetch_node, SealedNode, TreeReader, TreeWriter};
