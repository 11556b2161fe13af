//! The announcements' commands: `announce`, `subscribe` (`--list`, `--follow`), `unsubscribe`,
//! `discover` (without `--peers`) and `publishers`. They work on the repository's store; what needs
//! the network (publishing, following live) uses the owner's node or, when none runs, starts one for
//! the command's duration.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::json;

use crate::announce::{format, Announcements, Category, Draft, Hit, Query, Trust};
use crate::clock::now_secs;
use crate::descriptor::{Link, Meta};
use crate::engine::Engine;
use crate::fmt::{format_time, human_bytes};

use super::io::Io;

/// The options of `announce`.
pub struct AnnounceArgs {
    pub target: String,
    pub topic: String,
    pub tags: Vec<String>,
    pub title: Option<String>,
    pub ttl: std::time::Duration,
    pub private: bool,
    pub publisher: String,
    pub category: Option<Category>,
    pub wait: std::time::Duration,
    pub json: bool,
}

/// `noisefs announce`.
pub async fn announce(engine: &Arc<Engine>, io: &Io, a: AnnounceArgs) -> anyhow::Result<u8> {
    let link: Link = if a.target.starts_with(crate::descriptor::SCHEME) {
        a.target.parse()?
    } else {
        let hold = engine.repo().hold().await;
        let (link, _) = crate::share::share(engine, &hold, &a.target)
            .await
            .with_context(|| format!("cannot share {} to announce it", a.target))?;
        link
    };
    if link.key().is_none() {
        bail!("a password link cannot be announced; announce the link itself with --private and give the key out of band");
    }
    let opened = crate::transfer::open(engine.repo().store(), &link, None)
        .await
        .with_context(|| format!("cannot open {} to announce it", link.root))?;
    let (name, folder, size, media_type) = match &opened.meta {
        Meta::File {
            name,
            size,
            media_type,
            ..
        } => (name.clone(), false, *size, media_type.clone()),
        Meta::Dir { name, .. } => (name.clone(), true, 0, "inode/directory".to_string()),
        Meta::Wrapped { .. } => bail!(
            "{} is a password link's wrapper; announce the link inside",
            link.root
        ),
    };
    let title = a.title.clone().unwrap_or_else(|| {
        if name.is_empty() {
            link.root.to_string()
        } else {
            name
        }
    });
    let ann = engine.announcements()?;
    if ann.start().await? {
        tracing::debug!("announcement service running");
    }
    let draft = Draft {
        link,
        title,
        topic: a.topic.clone(),
        tags: a.tags.clone(),
        ttl: a.ttl.as_secs().min(u32::MAX as u64) as u32,
        private: a.private,
        folder,
        size,
        media_type,
        category: a.category,
        publisher: a.publisher.clone(),
    };
    let (made, published) = ann.announce(draft, a.wait).await?;
    let hit = ann.hit(&made.id())?.context("the announcement was not kept")?;
    let mut out = io.out.clone();
    if a.json {
        let mut v = serde_json::to_value(&hit)?;
        v["published"] = json!(published);
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "announced {:?} on {} as {}",
            hit.title, hit.topic, hit.publisher
        )?;
        let note = if published {
            "sent to the peers that follow the topic".to_string()
        } else if engine.network().is_none() {
            "kept here; the network is off, so peers get it once it is on (`noisefs net on`) and they catch up".into()
        } else {
            "kept here; no connected peer follows the topic yet: peers get it when they catch up".into()
        };
        writeln!(io.err.clone(), "{note}")?;
    }
    Ok(0)
}

fn line(h: &Hit) -> String {
    let what = if h.folder { "folder" } else { h.category.name() };
    let target = h.link.clone().unwrap_or_else(|| format!("(private) {}", h.root));
    format!(
        "{}  [{}]  {}  {}  {}  by {}…  {}",
        format_time(h.time as i64),
        h.topic,
        h.title,
        what,
        if h.folder {
            String::new()
        } else {
            format!("<{}", human_bytes(h.size_below))
        },
        &h.publisher[..12.min(h.publisher.len())],
        target
    )
}

/// `noisefs subscribe`.
pub async fn subscribe(
    engine: &Arc<Engine>,
    io: &Io,
    pattern: Option<String>,
    list: bool,
    follow: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let ann = engine.announcements()?;
    let mut out = io.out.clone();
    if list {
        let subs = ann.store().subscriptions()?;
        if json {
            let v: Vec<_> = subs
                .iter()
                .map(|(p, t)| json!({"pattern": p, "since": t}))
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        } else if subs.is_empty() {
            writeln!(
                io.err.clone(),
                "no subscriptions (`noisefs subscribe 'media/**'` adds one)"
            )?;
        } else {
            for (p, t) in subs {
                writeln!(out, "{p}\t(since {})", format_time(t / 1000))?;
            }
        }
        return Ok(0);
    }
    if let Some(p) = pattern {
        let (p, new) = ann.subscribe(&p)?;
        let msg = if new {
            format!("subscribed to {p}")
        } else {
            format!("already subscribed to {p}")
        };
        if !follow {
            writeln!(io.err.clone(), "{msg}")?;
        }
        if !follow && engine.network().is_none() {
            writeln!(
                io.err.clone(),
                "the network is off: announcements arrive once it is on (`noisefs net on`)"
            )?;
        }
    }
    if !follow {
        return Ok(0);
    }
    follow_live(engine, &ann, io, json).await
}

/// Prints announcements as they are stored, until the client goes away.
async fn follow_live(
    engine: &Arc<Engine>,
    ann: &Arc<Announcements>,
    io: &Io,
    json: bool,
) -> anyhow::Result<u8> {
    if ann.patterns()?.is_empty() {
        bail!("no subscriptions to follow; give a pattern: `noisefs subscribe --follow 'media/**'`");
    }
    let mut arrivals = ann.arrivals();
    if !ann.start().await? {
        bail!("the network is off in this repository; turn it on with `noisefs net on --peer MULTIADDR` to follow announcements");
    }
    let _ = engine;
    let patterns: Vec<String> = ann.patterns()?.iter().map(|p| p.to_string()).collect();
    let mut err = io.err.clone();
    writeln!(err, "following {} (Ctrl-C stops)", patterns.join(", "))?;
    err.flush()?;
    let mut out = io.out.clone();
    loop {
        let id = match arrivals.recv().await {
            Ok(id) => id,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                writeln!(io.err.clone(), "({n} announcements arrived too fast to show)")?;
                continue;
            }
            Err(_) => return Ok(0),
        };
        let Some(hit) = ann.hit(&id)? else { continue };
        if json {
            writeln!(out, "{}", serde_json::to_string(&hit)?)?;
        } else {
            writeln!(out, "{}", line(&hit))?;
        }
        out.flush()?;
    }
}

/// `noisefs unsubscribe`.
pub fn unsubscribe(engine: &Arc<Engine>, io: &Io, pattern: &str) -> anyhow::Result<u8> {
    let ann = engine.announcements()?;
    if ann.unsubscribe(pattern)? {
        writeln!(io.err.clone(), "unsubscribed from {pattern}")?;
        Ok(0)
    } else {
        bail!("not subscribed to {pattern} (`noisefs subscribe --list` shows the subscriptions)")
    }
}

/// The options of `discover` (announcements).
pub struct DiscoverArgs {
    pub words: Vec<String>,
    pub topic: Vec<String>,
    pub tags: Vec<String>,
    pub category: Option<Category>,
    pub since: Option<std::time::Duration>,
    pub publisher: Option<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub limit: usize,
    pub json: bool,
}

/// `noisefs discover` (announcements).
pub fn discover(engine: &Arc<Engine>, io: &Io, d: DiscoverArgs) -> anyhow::Result<u8> {
    let ann = engine.announcements()?;
    let mut topics = Vec::new();
    for t in &d.topic {
        topics.push(t.parse()?);
    }
    let q = Query {
        topics,
        tags: d
            .tags
            .iter()
            .map(|t| format::normalize_tag(t))
            .filter(|t| !t.is_empty())
            .collect(),
        category: d.category,
        since: d
            .since
            .map(|s| (now_secs().max(0) as u64).saturating_sub(s.as_secs())),
        publisher: d.publisher.as_deref().map(format::parse_publisher).transpose()?,
        words: d.words.clone(),
        size_classes: (d.min_size.is_some() || d.max_size.is_some()).then(|| {
            (
                d.min_size.map(format::size_class).unwrap_or(0),
                d.max_size.map(format::size_class).unwrap_or(u8::MAX),
            )
        }),
        limit: d.limit,
    };
    let hits = ann.discover(&q)?;
    let mut out = io.out.clone();
    if d.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&hits)?)?;
    } else if hits.is_empty() {
        let hint = if ann.patterns()?.is_empty() {
            " (no subscriptions: `noisefs subscribe 'media/**'` follows a topic)"
        } else {
            ""
        };
        writeln!(io.err.clone(), "no announcements match{hint}")?;
    } else {
        for h in &hits {
            writeln!(out, "{}", line(h))?;
        }
    }
    Ok(0)
}

/// `noisefs publishers`.
pub fn publishers(
    engine: &Arc<Engine>,
    io: &Io,
    trust: Option<String>,
    block: Option<String>,
    json: bool,
) -> anyhow::Result<u8> {
    let ann = engine.announcements()?;
    let mut err = io.err.clone();
    if let Some(k) = &trust {
        ann.store()
            .set_trust(&format::parse_publisher(k)?, Trust::Trusted)?;
        writeln!(err, "trusted {k}")?;
        return Ok(0);
    }
    if let Some(k) = &block {
        let removed = ann
            .store()
            .set_trust(&format::parse_publisher(k)?, Trust::Blocked)?;
        writeln!(err, "blocked {k}; {removed} of its announcements removed")?;
        return Ok(0);
    }
    let list = ann.store().publishers()?;
    let own: Vec<String> = crate::announce::keys::names(engine.repo().root())?
        .into_iter()
        .filter_map(|n| {
            crate::announce::keys::key(engine.repo().root(), &n)
                .ok()
                .map(|k| format!("{}\t{n}", format::publisher_text(&k.verifying_key().to_bytes())))
        })
        .collect();
    let mut out = io.out.clone();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(0);
    }
    for p in &list {
        let trust = match p.trust {
            Trust::Unknown => "",
            Trust::Trusted => "  trusted",
            Trust::Blocked => "  blocked",
        };
        writeln!(
            out,
            "{}  {} announcement(s), latest {}{trust}",
            p.key,
            p.announcements,
            format_time(p.last as i64)
        )?;
    }
    if list.is_empty() {
        writeln!(err, "no publishers known yet")?;
    }
    for o in own {
        writeln!(err, "your pseudonym: {o}")?;
    }
    Ok(0)
}
