//! The commands over the search index: `search` and `tag`.

use std::io::Write;
use std::sync::Arc;

use anyhow::bail;
use serde_json::json;

use super::args::TagCommand;
use super::io::Io;
use crate::engine::Engine;
use crate::fmt::{format_time, human_bytes};
use crate::search::{parse_tags, Hit, SearchRequest, TAGS_XATTR};

/// `noisefs search …`.
pub async fn search(
    engine: &Arc<Engine>,
    io: &Io,
    req: &SearchRequest,
    reindex: bool,
    json: bool,
    quiet: bool,
) -> anyhow::Result<u8> {
    let index = engine.search()?;
    if let Some(reason) = index.take_rebuilt() {
        writeln!(
            io.err.clone(),
            "note: the search index was rebuilt from the tree: {reason}"
        )?;
    }
    if reindex {
        let done = index.reindex().await?;
        if !quiet {
            writeln!(io.err.clone(), "indexed {} entries", done.indexed)?;
        }
        if req.query.trim().is_empty() && req.filters == Default::default() {
            return Ok(0);
        }
    }
    let results = index.search(req).await?;
    let mut out = io.out.clone();
    if json {
        writeln!(
            out,
            "{}",
            json!({ "total": results.total, "offset": req.offset, "hits": results.hits })
        )?;
        return Ok(0);
    }
    for hit in &results.hits {
        write_hit(&mut out, hit, io.bars)?;
    }
    if !quiet {
        let shown = results.hits.len();
        let msg = match (results.total, shown) {
            (0, _) => "no hits".to_string(),
            (t, 0) => format!("{t} hits (none on this page)"),
            (t, n) if n == t => format!("{t} hit{}", if t == 1 { "" } else { "s" }),
            (t, n) => format!(
                "{t} hits, showing {}-{} (--offset {} for more)",
                req.offset + 1,
                req.offset + n,
                req.offset + n
            ),
        };
        writeln!(io.err.clone(), "{msg}")?;
    }
    Ok(0)
}

/// One hit: the path, a line of facts, and the snippet (matched words in bold on a terminal).
fn write_hit(out: &mut impl Write, hit: &Hit, color: bool) -> std::io::Result<()> {
    writeln!(out, "{}", hit.path)?;
    let mut facts = vec![hit.kind.clone()];
    if hit.kind != "inode/directory" {
        facts.push(human_bytes(hit.size));
    }
    facts.push(format_time(hit.modified));
    if let Some(score) = hit.score {
        facts.push(format!("score {score:.2}"));
    }
    if !hit.tags.is_empty() {
        facts.push(format!("tags {}", hit.tags.join(", ")));
    }
    writeln!(out, "    {}", facts.join(" · "))?;
    if let Some(s) = &hit.snippet {
        let mut line = String::new();
        let mut at = 0;
        for &(a, b) in &s.highlights {
            let (Some(before), Some(word)) = (s.text.get(at..a), s.text.get(a..b)) else {
                continue;
            };
            line.push_str(before);
            if color {
                line.push_str(&format!("\x1b[1m{word}\x1b[0m"));
            } else {
                line.push_str(word);
            }
            at = b;
        }
        line.push_str(s.text.get(at..).unwrap_or_default());
        let line: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
        writeln!(out, "    …{line}…")?;
    }
    Ok(())
}

/// `noisefs tag …`: tags live in the `user.noisefs.tags` attribute, comma-separated.
pub async fn tag(engine: &Arc<Engine>, io: &Io, cmd: TagCommand) -> anyhow::Result<u8> {
    let tree = engine.tree();
    let current = |ino: u64| -> Vec<String> {
        tree.getxattr(ino, TAGS_XATTR)
            .map(|v| parse_tags(&String::from_utf8_lossy(&v)))
            .unwrap_or_default()
    };
    let check = |tags: &[String]| -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for t in tags {
            if t.contains([',', '\n']) || t.trim().is_empty() {
                bail!("tag {t:?} cannot be used: tags are non-empty and hold no commas or newlines");
            }
            out.push(t.trim().to_lowercase());
        }
        Ok(out)
    };
    let store = |ino: u64, tags: &[String]| -> anyhow::Result<()> {
        if tags.is_empty() {
            match tree.removexattr(ino, TAGS_XATTR) {
                Err(e) if e.errno() != libc::ENODATA => return Err(e.into()),
                _ => {}
            }
        } else {
            tree.setxattr(ino, TAGS_XATTR, tags.join(",").as_bytes())?;
        }
        Ok(())
    };
    match cmd {
        TagCommand::Add { path, tags } => {
            let ino = tree.resolve(&path)?;
            let mut all = current(ino);
            for t in check(&tags)? {
                if !all.contains(&t) {
                    all.push(t);
                }
            }
            store(ino, &all)?;
        }
        TagCommand::Rm { path, tags } => {
            let ino = tree.resolve(&path)?;
            let drop = check(&tags)?;
            let all: Vec<String> = current(ino).into_iter().filter(|t| !drop.contains(t)).collect();
            store(ino, &all)?;
        }
        TagCommand::Ls { path, out } => {
            let tags = current(tree.resolve(&path)?);
            let mut w = io.out.clone();
            if out.json {
                writeln!(w, "{}", json!(tags))?;
            } else {
                for t in tags {
                    writeln!(w, "{t}")?;
                }
            }
        }
    }
    Ok(0)
}
