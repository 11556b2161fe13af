//! `[network]` in `config.toml` and the node key: what the user turned on, where the node listens,
//! whom it asks first, its limits; and the libp2p identity kept in the repository (`node.key`, 0600).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The file that holds the node's key (libp2p's protobuf encoding of the keypair).
pub const KEY_FILE: &str = "node.key";

/// The public IPFS bootstrap peers (`noisefs net on --public`).
pub const PUBLIC_BOOTSTRAP: [&str; 4] = [
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// `[network]`: off in a new repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkConfig {
    /// Whether the node runs at all.
    pub enabled: bool,
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Peers to connect to at start (`/ip4/.../tcp/.../p2p/<peer id>`).
    pub bootstrap: Vec<String>,
    /// Find peers on the local network by multicast DNS (multicasts on every interface).
    pub mdns: bool,
    /// `auto` (answer DHT queries once publicly reachable), `server` or `client`.
    pub dht: String,
    /// Established connections at most.
    pub max_connections: u32,
    /// Block bytes per second served to one peer (0: no limit).
    pub serve_bytes_per_sec: u64,
    /// How long a block is waited for from peers before the read fails, in ms.
    pub fetch_timeout_ms: u64,
    /// Days a block fetched from peers stays after it arrived when no pin, tree record or kept
    /// version needs it; `gc` removes it after that (0: at the next `gc`).
    pub keep_fetched_days: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            enabled: false,
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            dht: "auto".into(),
            max_connections: 256,
            serve_bytes_per_sec: 0,
            fetch_timeout_ms: 30_000,
            keep_fetched_days: 7,
        }
    }
}

impl NetworkConfig {
    /// The node's setup from this config and `keypair`; a bad multiaddr or mode is a config error
    /// naming the value.
    pub fn node_config(&self, root: &Path, keypair: noisefs_net::Keypair) -> Result<noisefs_net::Config> {
        let bad = |reason: String| Error::Config {
            path: root.join("config.toml"),
            reason,
        };
        let parse = |list: &[String], what: &str| -> Result<Vec<noisefs_net::Multiaddr>> {
            list.iter()
                .map(|a| {
                    a.parse()
                        .map_err(|e| bad(format!("[network] {what}: {a:?} is not a multiaddr ({e})")))
                })
                .collect()
        };
        let mut cfg = noisefs_net::Config::new(keypair);
        cfg.listen = parse(&self.listen, "listen")?;
        cfg.bootstrap = parse(&self.bootstrap, "bootstrap")?;
        cfg.mdns = self.mdns;
        cfg.dht = match self.dht.as_str() {
            "auto" => noisefs_net::DhtMode::Auto,
            "server" => noisefs_net::DhtMode::Server,
            "client" => noisefs_net::DhtMode::Client,
            other => {
                return Err(bad(format!(
                    "[network] dht = {other:?}: use auto, server or client"
                )))
            }
        };
        cfg.max_connections = self.max_connections;
        cfg.serve_bytes_per_sec = self.serve_bytes_per_sec;
        Ok(cfg)
    }
}

/// The repository's node key, made (ed25519, mode 0600) on first use.
pub fn keypair(root: &Path) -> Result<noisefs_net::Keypair> {
    let path = root.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => noisefs_net::Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::Config {
            path: path.clone(),
            reason: format!("not a libp2p key ({e}); move it away to make a new identity"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = noisefs_net::Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| Error::Crypto(format!("cannot encode the node key: {e}")))?;
            crate::repo::write_private(&path, &bytes)?;
            Ok(key)
        }
        Err(e) => Err(Error::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = keypair(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = keypair(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        let err = keypair(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a libp2p key"), "{err}");
    }

    #[test]
    fn config_values_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = noisefs_net::Keypair::generate_ed25519();
        let mut c = NetworkConfig::default();
        assert!(!c.enabled, "off in a new repository");
        let cfg = c.node_config(dir.path(), key.clone()).unwrap();
        assert_eq!(cfg.listen.len(), 2);
        c.dht = "server".into();
        assert_eq!(
            c.node_config(dir.path(), key.clone()).unwrap().dht,
            noisefs_net::DhtMode::Server
        );
        c.dht = "client".into();
        assert_eq!(
            c.node_config(dir.path(), key.clone()).unwrap().dht,
            noisefs_net::DhtMode::Client
        );
        c.dht = "sometimes".into();
        assert!(c
            .node_config(dir.path(), key.clone())
            .unwrap_err()
            .to_string()
            .contains("auto, server or client"));
        c.dht = "auto".into();
        c.bootstrap = vec!["not an address".into()];
        let err = c.node_config(dir.path(), key).unwrap_err().to_string();
        assert!(
            err.contains("bootstrap") && err.contains("not an address"),
            "{err}"
        );
    }
}
