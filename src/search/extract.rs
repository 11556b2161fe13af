//! What the index learns from a file's bytes beyond its media type ([`crate::media::sniff`]): the text
//! of text-like files (valid UTF-8 without NUL bytes; HTML without its markup), capped.

use crate::media::{is_text, looks_like_text};

/// Bytes read to sniff a file's type.
pub const HEAD: usize = 8 * 1024;
/// Bytes of a file's text that are indexed; the rest of a huge file is not.
pub const MAX_TEXT: usize = 1 << 20;

/// The indexable text of `bytes` of media type `media`, at most [`MAX_TEXT`] bytes of it; `None` for
/// binary data.
pub fn text(media: &str, bytes: &[u8]) -> Option<String> {
    let bytes = &bytes[..bytes.len().min(MAX_TEXT)];
    if !is_text(media) || !looks_like_text(bytes) {
        return None;
    }
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        // A character cut by the cap or the end of the head.
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?,
    };
    Some(if media == "text/html" {
        strip_html(valid)
    } else {
        valid.to_string()
    })
}

/// The text of an HTML page: tags, comments, scripts and styles removed, common entities decoded.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        let tag = &rest[open..];
        let lower: String = tag.chars().take(8).collect::<String>().to_ascii_lowercase();
        let (end_marker, skip_body) = if tag.starts_with("<!--") {
            ("-->", false)
        } else if lower.starts_with("<script") {
            ("</script", true)
        } else if lower.starts_with("<style") {
            ("</style", true)
        } else {
            (">", false)
        };
        let after = if skip_body {
            let body_end = find_ci(tag, end_marker).unwrap_or(tag.len());
            let close = tag[body_end..].find('>').map_or(tag.len(), |i| body_end + i + 1);
            &tag[close..]
        } else {
            match tag.find(end_marker) {
                Some(i) => &tag[i + end_marker.len()..],
                None => "",
            }
        };
        out.push(' ');
        rest = after;
    }
    out.push_str(&decode_entities(rest));
    out
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(needle)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_utf8_without_nul_and_capped() {
        assert!(looks_like_text("héllo".as_bytes()));
        assert!(looks_like_text(&"héllo".as_bytes()[..2])); // cut inside é
        assert!(!looks_like_text(b"\xff\xfe"));
        assert!(!looks_like_text(b"a\x00b"));
        assert_eq!(text("text/plain", b"hello").as_deref(), Some("hello"));
        assert_eq!(text("image/png", b"hello"), None);
        assert_eq!(text("text/plain", b"\x00bin"), None);
        let huge = "a".repeat(MAX_TEXT + 10);
        assert_eq!(
            text("text/plain", huge.as_bytes()).map(|t| t.len()),
            Some(MAX_TEXT)
        );
        let cut = "é".repeat(MAX_TEXT); // a character straddles the cap
        assert_eq!(
            text("text/plain", cut.as_bytes()).map(|t| t.len()),
            Some(MAX_TEXT)
        );
    }

    #[test]
    fn html_loses_markup_scripts_and_styles() {
        let html = "<html><head><style>p{color:red}</style><SCRIPT>var secret=1;</script></head>\
                    <body><!-- note --><p class=x>Fish &amp; chips</p>&lt;tag&gt;</body></html>";
        let t = text("text/html", html.as_bytes()).unwrap();
        assert!(t.contains("Fish & chips") && t.contains("<tag>"), "{t}");
        assert!(!t.contains("secret") && !t.contains("color") && !t.contains("note") && !t.contains("class"));
        assert_eq!(strip_html("a <b"), "a  ");
        assert_eq!(strip_html("<script>never closed"), " ");
    }
}
