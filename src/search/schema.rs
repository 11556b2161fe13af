//! The search index's schema: one document per tree path, and the version that names its layout (an
//! index written with another version is rebuilt).

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, STORED, STRING,
};

/// The layout version of the index; bump it whenever fields or their options change.
pub const VERSION: u32 = 1;

/// The index's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The tree path (`/docs/a.txt`): the document's key, exact.
    pub path: Field,
    /// Every folder above the path (`/`, `/docs`): what `--path` filters on.
    pub folder: Field,
    /// The entry name, tokenized (`name:report`).
    pub name: Field,
    /// The lowercased name, exact: for `--name` patterns and sorting by name.
    pub name_key: Field,
    /// Lowercased extension without the dot.
    pub ext: Field,
    /// The media type and its top-level part (`text/markdown`, `text`); `inode/directory` for folders.
    pub kind: Field,
    pub size: Field,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: Field,
    /// User tags (`user.noisefs.tags`), lowercased.
    pub tags: Field,
    /// Text of text-like files (capped), stored for snippets.
    pub content: Field,
    /// What the content was extracted from (a sealed link), so renamed files reuse it.
    pub content_key: Field,
    pub ino: Field,
}

impl Fields {
    /// The schema and its fields.
    pub fn build() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text = |stored: bool| {
            let o = TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            );
            if stored {
                o.set_stored()
            } else {
                o
            }
        };
        let number = NumericOptions::default().set_indexed().set_fast().set_stored();
        let fields = Fields {
            path: b.add_text_field("path", STRING | STORED),
            folder: b.add_text_field("folder", STRING),
            name: b.add_text_field("name", text(true)),
            name_key: b.add_text_field("name_key", STRING | FAST),
            ext: b.add_text_field("ext", STRING | STORED),
            kind: b.add_text_field("type", STRING | STORED),
            size: b.add_u64_field("size", number.clone()),
            mtime: b.add_i64_field("modified", number.clone()),
            tags: b.add_text_field("tag", STRING | STORED),
            content: b.add_text_field("content", text(true)),
            content_key: b.add_text_field("content_key", STRING | STORED),
            ino: b.add_u64_field("ino", number),
        };
        (b.build(), fields)
    }
}
