//! Media types: guessed from a file's name (recorded in descriptors when content is sealed) or sniffed
//! from its first bytes (magic numbers first, then the name, then whether it looks like text; used by the
//! search index), and whether a media type holds text.

use std::path::Path;

/// A media type guessed from the file name.
pub fn by_name(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "rs" | "py" | "c" | "h" | "cpp" | "go" | "js" | "ts" | "java" | "sh" | "toml" | "yaml" | "yml" => {
            "text/plain"
        }
        _ => "application/octet-stream",
    }
    .to_string()
}

/// The media type of a file named `name` whose first bytes are `head`.
pub fn sniff(name: &str, head: &[u8]) -> String {
    if let Some(t) = infer::get(head) {
        return t.mime_type().to_string();
    }
    let by_name = by_name(Path::new(name));
    if head.is_empty() {
        return by_name;
    }
    let text = looks_like_text(head);
    match (is_text(&by_name), text) {
        (true, true) => by_name,
        // Named like text but binary inside: not text.
        (true, false) => "application/octet-stream".into(),
        (false, true) if by_name == "application/octet-stream" => "text/plain".into(),
        _ => by_name,
    }
}

/// Whether files of media type `t` hold text worth indexing.
pub fn is_text(t: &str) -> bool {
    t.starts_with("text/")
        || matches!(
            t,
            "application/json" | "application/xml" | "application/javascript" | "image/svg+xml"
        )
}

/// Valid UTF-8 (a character cut at the end is fine) without NUL bytes.
pub fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.contains(&0) {
        return false;
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_by_extension() {
        assert_eq!(by_name(Path::new("a.PNG")), "image/png");
        assert_eq!(by_name(Path::new("notes.md")), "text/markdown");
        assert_eq!(by_name(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn media_types_come_from_magic_then_name_then_content() {
        let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        assert_eq!(sniff("photo.txt", &png), "image/png");
        assert_eq!(sniff("notes.md", b"# Title\n"), "text/markdown");
        assert_eq!(sniff("README", b"plain words"), "text/plain");
        assert_eq!(sniff("data.bin", b"\x00\x01\x02"), "application/octet-stream");
        assert_eq!(sniff("fake.txt", b"ab\x00cd"), "application/octet-stream");
        assert_eq!(sniff("empty.json", b""), "application/json");
        assert_eq!(sniff("doc.pdf", b"%PDF-1.7\n"), "application/pdf");
    }
}
