//! Turning a user's search into a tantivy query: the query text (tantivy's syntax, every word required
//! by default, names weighted above content) and the filters, with syntax errors located by position.

use std::ops::Bound;

use serde::Serialize;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, RegexQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Index, Term};

use super::schema::Fields;
use crate::{Error, Result};

/// How hits are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Best match first.
    #[default]
    Score,
    /// By name, A to Z.
    Name,
    /// Largest first.
    Size,
    /// Most recently modified first.
    Modified,
}

/// Conditions every hit must meet besides the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// A name pattern: `*` and `?` wildcards, else a case-insensitive substring.
    pub name: Option<String>,
    /// Only entries below (or at) this tree path.
    pub path: Option<String>,
    /// A media type (`text/markdown`) or its top-level part (`image`); `inode/directory` for folders.
    pub kind: Option<String>,
    /// An extension, with or without its dot.
    pub ext: Option<String>,
    /// Tags the entry must all carry.
    pub tags: Vec<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// Modified at or after (seconds since the epoch).
    pub after: Option<i64>,
    /// Modified before (seconds since the epoch).
    pub before: Option<i64>,
}

/// One search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// tantivy query syntax; empty matches everything (the filters still apply).
    pub query: String,
    pub filters: Filters,
    pub sort: Sort,
    pub limit: usize,
    pub offset: usize,
}

impl SearchRequest {
    /// A search for `query` with no filters, best hits first.
    pub fn new(query: &str) -> SearchRequest {
        SearchRequest {
            query: query.to_string(),
            filters: Filters::default(),
            sort: Sort::Score,
            limit: 20,
            offset: 0,
        }
    }
}

/// The tantivy query for `req`.
pub(super) fn build(index: &Index, f: &Fields, req: &SearchRequest) -> Result<Box<dyn Query>> {
    let mut must: Vec<Box<dyn Query>> = Vec::new();
    if !req.query.trim().is_empty() {
        let mut parser = QueryParser::for_index(index, vec![f.name, f.content, f.tags]);
        parser.set_conjunction_by_default();
        parser.set_field_boost(f.name, 3.0);
        must.push(
            parser
                .parse_query(&req.query)
                .map_err(|e| syntax_error(&req.query, &e))?,
        );
    }
    let filters = &req.filters;
    let term = |field, text: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    };
    if let Some(pattern) = &filters.name {
        let regex = name_regex(&pattern.to_lowercase());
        let q = RegexQuery::from_pattern(&regex, f.name_key).map_err(|e| Error::Query {
            query: pattern.clone(),
            pos: 0,
            reason: format!("not a usable name pattern: {e}"),
        })?;
        must.push(Box::new(q));
    }
    if let Some(path) = &filters.path {
        let path = crate::tree::normalize_path(path);
        if path != "/" {
            must.push(Box::new(BooleanQuery::new(vec![
                (Occur::Should, term(f.folder, &path)),
                (Occur::Should, term(f.path, &path)),
            ])));
        }
    }
    if let Some(kind) = &filters.kind {
        must.push(term(f.kind, &kind.to_lowercase()));
    }
    if let Some(ext) = &filters.ext {
        must.push(term(f.ext, &ext.trim_start_matches('.').to_lowercase()));
    }
    for tag in &filters.tags {
        must.push(term(f.tags, &tag.trim().to_lowercase()));
    }
    if filters.min_size.is_some() || filters.max_size.is_some() {
        let bound = |v: Option<u64>| {
            v.map_or(Bound::Unbounded, |v| {
                Bound::Included(Term::from_field_u64(f.size, v))
            })
        };
        must.push(Box::new(RangeQuery::new(
            bound(filters.min_size),
            bound(filters.max_size),
        )));
    }
    if filters.after.is_some() || filters.before.is_some() {
        let lower = filters.after.map_or(Bound::Unbounded, |v| {
            Bound::Included(Term::from_field_i64(f.mtime, v))
        });
        let upper = filters.before.map_or(Bound::Unbounded, |v| {
            Bound::Excluded(Term::from_field_i64(f.mtime, v))
        });
        must.push(Box::new(RangeQuery::new(lower, upper)));
    }
    Ok(match must.len() {
        0 => Box::new(AllQuery),
        1 => must.pop().unwrap_or_else(|| Box::new(AllQuery)),
        _ => Box::new(BooleanQuery::new(
            must.into_iter().map(|q| (Occur::Must, q)).collect(),
        )),
    })
}

/// A regular expression over whole lowercased names for a `--name` pattern.
fn name_regex(pattern: &str) -> String {
    let wild = pattern.contains(['*', '?']);
    let mut re = String::new();
    if !wild {
        re.push_str(".*");
    }
    for c in pattern.chars() {
        match c {
            '*' if wild => re.push_str(".*"),
            '?' if wild => re.push('.'),
            c if !c.is_ascii_punctuation() => re.push(c),
            c => {
                re.push('\\');
                re.push(c);
            }
        }
    }
    if !wild {
        re.push_str(".*");
    }
    re
}

/// A parse failure as [`Error::Query`], with the character position of the fault when known.
fn syntax_error(query: &str, e: &tantivy::query::QueryParserError) -> Error {
    use tantivy::query::QueryParserError as P;
    let (_, errors) = tantivy::query_grammar::parse_query_lenient(query);
    let pos = match (errors.first(), e) {
        (Some(err), _) => err.pos,
        (None, P::FieldDoesNotExist(field)) => query.find(&format!("{field}:")).unwrap_or(0),
        _ => 0,
    };
    let reason = match (errors.first(), e) {
        (Some(err), _) => err.message.clone(),
        (None, P::FieldDoesNotExist(field)) => format!(
            "there is no field `{field}` (fields: name, content, tag, type, ext, path, folder, size, modified)"
        ),
        (None, other) => other.to_string(),
    };
    // Positions count characters, as a user counts them.
    let pos = query.get(..pos).map_or(pos, |s| s.chars().count());
    Error::Query {
        query: query.to_string(),
        pos,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns() {
        assert_eq!(name_regex("report"), ".*report.*");
        assert_eq!(name_regex("*.md"), ".*\\.md");
        assert_eq!(name_regex("a?c"), "a.c");
        assert_eq!(name_regex("a+b (1)"), ".*a\\+b \\(1\\).*");
        assert_eq!(name_regex("photo 😀"), ".*photo 😀.*");
    }

    #[test]
    fn paths_normalize() {
        use crate::tree::normalize_path;
        assert_eq!(normalize_path("docs/a/"), "/docs/a");
        assert_eq!(normalize_path("//docs//./a"), "/docs/a");
        assert_eq!(normalize_path("a//b/./c/"), "/a/b/c");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(""), "/");
    }
}
