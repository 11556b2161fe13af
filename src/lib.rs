//! NoiseFS core library: an Owner-Free filesystem in which every stored block is noise.
//!
//! Data flows one way: front ends (`cli`, `daemon`, the mount crate) -> `node` (the owner's services) ->
//! `engine` / `jobs` / `sync` / `share` / `maint` / `search` -> `tree` -> `transfer` -> `descriptor` /
//! `block` / `crypto` / `pool` -> `store` and `state` -> disk. Each module owns one concern and says so in
//! its doc comment; docs/architecture.md has the map, the lock order and gc's rule.

pub mod announce;
pub mod block;
pub mod cli;
pub mod clock;
pub mod crypto;
pub mod daemon;
pub mod descriptor;
pub mod engine;
pub mod error;
pub mod fmt;
pub mod hold;
pub mod jobs;
pub mod maint;
pub mod media;
pub mod network;
pub mod node;
pub mod place;
pub mod pool;
pub mod queue;
pub mod repo;
pub mod search;
pub mod share;
pub mod state;
pub mod store;
pub mod sync;
pub mod transfer;
pub mod tree;

pub use error::{Error, Result};
