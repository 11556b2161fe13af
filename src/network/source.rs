//! The two places NoiseFS blocks meet the network: [`PeerSource`], the remote read of the store stack
//! (a local miss becomes a bitswap want; the node verifies what arrives, and the stack keeps it
//! without hashing it again), and [`LocalBlocks`], what the node serves: the repository's own
//! store, never the stack, so serving a peer never fetches from another.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::Network;
use crate::block::{Block, BlockId};
use crate::store::{BlockSource, LocalStore};
use crate::{Error, Result};

/// The CID of a NoiseFS block id (both are CIDv1 raw sha2-256).
pub fn cid_of(id: &BlockId) -> noisefs_net::Cid {
    noisefs_net::Cid::v1_of_digest(0x55, *id.digest())
}

/// The block id a CID names, when it is one NoiseFS blocks use.
pub fn id_of(cid: &noisefs_net::Cid) -> Option<BlockId> {
    BlockId::from_bytes(&cid.to_bytes()).ok()
}

/// Blocks from peers, through the repository's node (started on the first miss when no owner runs).
pub struct PeerSource {
    pub(super) network: Arc<Network>,
}

#[async_trait]
impl BlockSource for PeerSource {
    async fn get(&self, id: &BlockId) -> Result<Block> {
        let handle = self.network.handle().await?;
        let timeout = Duration::from_millis(self.network.config.fetch_timeout_ms);
        match handle.want(cid_of(id), timeout).await {
            Ok(bytes) => Ok(bytes),
            Err(e @ noisefs_net::NetError::NotFound { .. }) => {
                tracing::warn!(block = %id, "{e}");
                Err(Error::Unavailable {
                    store: "peers".into(),
                    reason: format!("no peer sent block {id} within {} s", timeout.as_secs()),
                })
            }
            Err(e) => Err(Error::Unavailable {
                store: "peers".into(),
                reason: e.to_string(),
            }),
        }
    }

    /// Only a fetch says whether peers have a block; asking is left to `get`.
    async fn has(&self, _id: &BlockId) -> Result<bool> {
        Ok(false)
    }

    /// The node hands on a block only when its bytes hash to the CID that was wanted.
    fn verifies(&self) -> bool {
        true
    }
}

/// What the node serves: the repository's local store.
pub struct LocalBlocks(pub Arc<dyn LocalStore>);

#[async_trait]
impl noisefs_net::Blocks for LocalBlocks {
    async fn get(&self, cid: &noisefs_net::Cid) -> Option<Bytes> {
        let id = id_of(cid)?;
        match self.0.get(&id).await {
            Ok(b) => Some(b),
            Err(Error::MissingBlock { .. }) => None,
            Err(e) => {
                tracing::warn!(block = %id, error = %e, "cannot serve a block to a peer");
                None
            }
        }
    }

    /// The local store hashes every block it reads and fails on a mismatch.
    fn verifies(&self) -> bool {
        true
    }

    async fn has(&self, cid: &noisefs_net::Cid) -> bool {
        match id_of(cid) {
            Some(id) => self.0.has(&id).await.unwrap_or(false),
            None => false,
        }
    }
}
