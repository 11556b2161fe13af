//! The network's commands: `net on|off|status`, `id`, `peers`, `swarm connect|disconnect`,
//! `discover --peers`, `providers`. Each one that needs the node uses the owner's (the daemon or
//! mount runs it) or, when none runs, starts one for the command's duration.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use super::args::{NetCommand, SwarmCommand};
use super::io::Io;
use crate::block::BlockId;
use crate::descriptor::Link;
use crate::engine::Engine;
use crate::network::{Network, PUBLIC_BOOTSTRAP};

/// The running owner's note on a configuration change.
const APPLIES: &str =
    "it applies when the daemon or mount starts next (`noisefs daemon stop`, then `noisefs daemon --detach`)";

/// The engine's network, or an error that says how to turn it on.
pub fn required(engine: &Engine) -> anyhow::Result<&Arc<Network>> {
    engine
        .network()
        .context("the network is off in this repository; turn it on with `noisefs net on --peer MULTIADDR` (or `--public`)")
}

/// `noisefs net on|off|status`.
pub async fn net(engine: &Arc<Engine>, io: &Io, cmd: NetCommand) -> anyhow::Result<u8> {
    let repo = engine.repo();
    let mut err = io.err.clone();
    match cmd {
        NetCommand::On {
            public,
            peer,
            listen,
            dht,
            mdns,
        } => {
            for a in peer.iter().chain(&listen) {
                let parsed: Result<noisefs_net::Multiaddr, _> = a.parse();
                if let Err(e) = parsed {
                    bail!("{a:?} is not a multiaddr ({e}); e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…");
                }
            }
            if let Some(p) = peer.iter().find(|a| !a.contains("/p2p/")) {
                bail!("--peer {p:?} has no /p2p/<peer id>; `noisefs id` on that node prints full addresses");
            }
            let cfg = repo.edit_config(|c| {
                let n = &mut c.network;
                n.enabled = true;
                let extra = peer.iter().cloned().chain(
                    public
                        .then(|| PUBLIC_BOOTSTRAP.map(String::from))
                        .into_iter()
                        .flatten(),
                );
                for a in extra {
                    if !n.bootstrap.contains(&a) {
                        n.bootstrap.push(a);
                    }
                }
                if !listen.is_empty() {
                    n.listen = listen.clone();
                }
                if let Some(d) = &dht {
                    n.dht = d.clone();
                }
                n.mdns |= mdns;
            })?;
            let n = &cfg.network;
            writeln!(
                err,
                "the network is on: listening on {}; {} bootstrap peer(s){}",
                n.listen.join(", "),
                n.bootstrap.len(),
                if n.mdns { "; mDNS on" } else { "" }
            )?;
            if io.daemon.is_some() {
                writeln!(err, "{APPLIES}")?;
            }
            Ok(0)
        }
        NetCommand::Off => {
            repo.edit_config(|c| c.network.enabled = false)?;
            writeln!(err, "the network is off")?;
            if io.daemon.is_some() && engine.network().is_some() {
                writeln!(err, "{APPLIES}")?;
            }
            Ok(0)
        }
        NetCommand::Status { out } => {
            let v = status_json(engine).await;
            if out.json {
                writeln!(io.out.clone(), "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(io.out.clone(), "network:    {}", status_line(engine).await)?;
            }
            Ok(0)
        }
    }
}

/// What `status` and `net status` say of the network in one line.
pub async fn status_line(engine: &Engine) -> String {
    let configured = engine.repo().config().network.enabled;
    match engine.network() {
        None if configured => format!("on from the next start ({APPLIES})"),
        None => "off (turn it on with `noisefs net on`)".into(),
        Some(net) if !net.running() => {
            "on; no node runs now (the daemon or a mount runs one; a command that misses a block starts its own)"
                .into()
        }
        Some(net) => match net.info().await {
            Ok(i) => format!(
                "on; peer {}, {} peer(s) connected, DHT {}, {} received, {} sent",
                i.peer,
                i.connected,
                if i.dht_server { "server" } else { "client" },
                crate::fmt::human_bytes(i.bytes_received),
                crate::fmt::human_bytes(i.bytes_sent)
            ),
            Err(e) => format!("on; the node failed: {e}"),
        },
    }
}

/// The network part of `status --json` and `net status --json`.
pub async fn status_json(engine: &Engine) -> serde_json::Value {
    let configured = &engine.repo().config().network;
    let node = match engine.network() {
        Some(net) if net.running() => match net.info().await {
            Ok(i) => json!(i),
            Err(e) => json!({"error": e.to_string()}),
        },
        _ => serde_json::Value::Null,
    };
    json!({
        "enabled": configured.enabled,
        "active": engine.network().is_some(),
        "listen": configured.listen,
        "bootstrap": configured.bootstrap,
        "mdns": configured.mdns,
        "node": node,
    })
}

/// `noisefs id`.
pub async fn id(engine: &Engine, io: &Io, json: bool) -> anyhow::Result<u8> {
    let net = required(engine)?;
    let info = net.info().await?;
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(0);
    }
    writeln!(out, "peer id: {}", info.peer)?;
    for a in &info.addrs {
        writeln!(out, "{a}")?;
    }
    temporary_note(engine, io)?;
    Ok(0)
}

/// `noisefs peers`.
pub async fn peers(engine: &Engine, io: &Io, json: bool) -> anyhow::Result<u8> {
    let list = required(engine)?.peers().await?;
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(0);
    }
    if list.is_empty() {
        writeln!(io.err.clone(), "no peers connected")?;
    }
    for p in &list {
        writeln!(
            out,
            "{}  {}  {}  rtt {}  {} blocks, {} from, {} to",
            p.peer,
            p.addrs.first().map_or("-", |a| a.as_str()),
            p.agent.as_deref().unwrap_or("-"),
            p.rtt_ms.map_or("-".into(), |r| format!("{r:.1} ms")),
            p.blocks_from,
            crate::fmt::human_bytes(p.bytes_from),
            crate::fmt::human_bytes(p.bytes_to)
        )?;
    }
    Ok(0)
}

/// `noisefs swarm connect|disconnect`.
pub async fn swarm(engine: &Engine, io: &Io, cmd: SwarmCommand) -> anyhow::Result<u8> {
    let net = required(engine)?;
    let mut err = io.err.clone();
    match cmd {
        SwarmCommand::Connect { addr } => {
            let peer = net
                .connect(&addr)
                .await
                .with_context(|| format!("cannot connect to {addr}"))?;
            writeln!(io.out.clone(), "connected to {peer}")?;
            temporary_note(engine, io)?;
        }
        SwarmCommand::Disconnect { peer } => {
            if net.disconnect(&peer).await? {
                writeln!(err, "disconnected from {peer}")?;
            } else {
                writeln!(err, "{peer} was not connected")?;
                return Ok(1);
            }
        }
    }
    Ok(0)
}

/// `noisefs discover --peers`.
pub async fn discover(engine: &Engine, io: &Io, json: bool) -> anyhow::Result<u8> {
    let net = required(engine)?;
    let list = net.discovered().await?;
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(0);
    }
    if list.is_empty() {
        writeln!(io.err.clone(), "no peers found yet")?;
    }
    for f in &list {
        writeln!(out, "{}  {}  {}", f.peer, f.how, f.addrs.join(" "))?;
    }
    Ok(0)
}

/// `noisefs providers <link>`.
pub async fn providers(
    engine: &Engine,
    io: &Io,
    link: &str,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<u8> {
    let net = required(engine)?;
    let root = match link.parse::<Link>() {
        Ok(l) => l.root,
        Err(_) => link
            .parse::<BlockId>()
            .ok()
            .with_context(|| format!("{link:?} is neither a noisefs:// link nor a block id"))?,
    };
    let list = net.providers(&root, timeout).await?;
    if json {
        writeln!(
            io.out.clone(),
            "{}",
            serde_json::to_string_pretty(&json!({"root": root.to_string(), "providers": list}))?
        )?;
        return Ok(0);
    }
    if list.is_empty() {
        writeln!(
            io.err.clone(),
            "no providers of {root} found within {} s",
            timeout.as_secs()
        )?;
        return Ok(1);
    }
    for p in &list {
        writeln!(io.out.clone(), "{p}")?;
    }
    Ok(0)
}

/// Says that a node started for this command goes away with it.
fn temporary_note(engine: &Engine, io: &Io) -> anyhow::Result<()> {
    if io.daemon.is_none() && engine.network().is_some() {
        writeln!(
            io.err.clone(),
            "note: no daemon or mount runs, so this node lasts for this command only; start one with `noisefs daemon --detach`"
        )?;
    }
    Ok(())
}
