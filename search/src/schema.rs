//! The index's fields and the message document.
//!
//! One document per message, keyed by `{app}/{message_id}`. A deleted message stays as a tombstone (its key,
//! channel and thread parent, no text, no `live_app` term): every search requires the `live_app` term, so
//! tombstones are never found, while the projector still recognises a retried send of a deleted message.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, TantivyDocument, Term};
use uuid::Uuid;

use crate::analyzer::{self, Analyzer};

/// Changes whenever the fields change; an index of another version must be rebuilt.
pub const SCHEMA_VERSION: u32 = 2;

/// The fields of the index, resolved once.
#[derive(Debug, Clone)]
pub struct Fields {
    /// `{app}/{message_id}`: the document's identity, for replacing and deleting it.
    pub key: Field,
    /// `{app}`, only on live documents: every search requires it.
    pub live_app: Field,
    /// `{app}/{channel}`.
    pub channel: Field,
    /// `{app}/{user}`.
    pub author: Field,
    /// The thread's root message id, for a reply.
    pub parent: Field,
    /// The text as sent or last edited (stored for snippets; searched through `text_{analyzer}`).
    pub text: Field,
    /// Milliseconds since the epoch, for time filters.
    pub created_ms: Field,
    /// Newest-first order and its cursor: `created_ms << 22 | 22 bits of the message id`.
    pub order: Field,
    pub partition: Field,
    pub offset: Field,
    /// 1 on a tombstone.
    pub deleted: Field,
    /// The analyzed text, one field per analyzer, in [`Analyzer::ALL`] order; terms are scoped by app
    /// ([`crate::analyzer::app_term`]).
    analyzed: Vec<Field>,
}

impl Fields {
    pub fn schema() -> Schema {
        let mut builder = Schema::builder();
        builder.add_text_field("key", STRING | STORED);
        builder.add_text_field("live_app", STRING);
        builder.add_text_field("channel", STRING | STORED);
        builder.add_text_field("author", STRING | STORED);
        builder.add_text_field("parent", STORED);
        builder.add_text_field("text", STORED);
        builder.add_i64_field("created_ms", FAST | STORED);
        builder.add_u64_field("order", FAST);
        builder.add_u64_field("partition", STORED);
        builder.add_u64_field("offset", STORED);
        builder.add_u64_field("deleted", STORED | INDEXED);
        for analyzer in Analyzer::ALL {
            let indexing = TextFieldIndexing::default()
                .set_tokenizer(&analyzer.tokenizer_name())
                .set_index_option(IndexRecordOption::WithFreqsAndPositions);
            builder.add_text_field(&analyzer.field_name(), TextOptions::default().set_indexing_options(indexing));
        }
        builder.build()
    }

    pub fn of(schema: &Schema) -> anyhow::Result<Self> {
        let field = |name: &str| schema.get_field(name).with_context(|| format!("the index has no field {name}"));
        Ok(Self {
            key: field("key")?,
            live_app: field("live_app")?,
            channel: field("channel")?,
            author: field("author")?,
            parent: field("parent")?,
            text: field("text")?,
            created_ms: field("created_ms")?,
            order: field("order")?,
            partition: field("partition")?,
            offset: field("offset")?,
            deleted: field("deleted")?,
            analyzed: Analyzer::ALL
                .iter()
                .map(|analyzer| field(&analyzer.field_name()))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    pub fn analyzed(&self, analyzer: Analyzer) -> Field {
        let index = Analyzer::ALL.iter().position(|candidate| *candidate == analyzer).unwrap_or(0);
        self.analyzed[index]
    }

    pub fn key_term(&self, app: &str, message_id: Uuid) -> Term {
        Term::from_field_text(self.key, &message_key(app, message_id))
    }
}

pub fn message_key(app: &str, message_id: Uuid) -> String {
    format!("{app}/{message_id}")
}

/// `{app}/{id}`, the form channel and author terms take.
pub fn scoped(app: &str, id: &str) -> String {
    format!("{app}/{id}")
}

/// The sort key of newest-first order: milliseconds in the high 42 bits (until the year 2109), then 22 bits of
/// the message id so that messages of the same millisecond still have an order (and a cursor between them).
pub fn order_key(created: DateTime<Utc>, message_id: Uuid) -> u64 {
    let millis = u64::try_from(created.timestamp_millis()).unwrap_or(0) & ((1 << 42) - 1);
    let tie = (message_id.as_u128() as u64) & ((1 << 22) - 1);
    (millis << 22) | tie
}

/// The smallest order key of a millisecond, for time filters.
pub fn order_of_millis(millis: i64) -> u64 {
    u64::try_from(millis).unwrap_or(0).min((1 << 42) - 1) << 22
}

/// What the index holds for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDoc {
    pub app: String,
    pub message_id: Uuid,
    pub channel: String,
    pub author: String,
    pub parent: Option<Uuid>,
    pub text: String,
    pub created: DateTime<Utc>,
    pub partition: i32,
    pub offset: i64,
    pub deleted: bool,
}

impl MessageDoc {
    pub fn to_document(&self, fields: &Fields, analyzer: Analyzer) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_text(fields.key, message_key(&self.app, self.message_id));
        document.add_text(fields.channel, scoped(&self.app, &self.channel));
        document.add_text(fields.author, scoped(&self.app, &self.author));
        if let Some(parent) = self.parent {
            document.add_text(fields.parent, parent.to_string());
        }
        document.add_i64(fields.created_ms, self.created.timestamp_millis());
        document.add_u64(fields.order, order_key(self.created, self.message_id));
        document.add_u64(fields.partition, u64::try_from(self.partition).unwrap_or(0));
        document.add_u64(fields.offset, u64::try_from(self.offset).unwrap_or(0));
        document.add_u64(fields.deleted, u64::from(self.deleted));
        if !self.deleted {
            document.add_text(fields.live_app, &self.app);
            document.add_text(fields.text, &self.text);
            document.add_text(fields.analyzed(analyzer), crate::analyzer::app_scoped_value(&self.app, &self.text));
        }
        document
    }

    pub fn from_document(fields: &Fields, document: &TantivyDocument) -> anyhow::Result<Self> {
        let text_of = |field: Field| document.get_first(field).and_then(|value| value.as_str()).map(str::to_owned);
        let u64_of = |field: Field| document.get_first(field).and_then(|value| value.as_u64());
        let key = text_of(fields.key).context("document without a key")?;
        let (app, message_id) = key.split_once('/').context("malformed key")?;
        let unscoped = |field: Field| -> anyhow::Result<String> {
            let value = text_of(field).context("document without a channel or author")?;
            let (_, id) = value.split_once('/').context("malformed scoped id")?;
            Ok(id.to_owned())
        };
        let created_ms = document.get_first(fields.created_ms).and_then(|value| value.as_i64()).unwrap_or(0);
        Ok(Self {
            app: app.to_owned(),
            message_id: message_id.parse().context("malformed message id")?,
            channel: unscoped(fields.channel)?,
            author: unscoped(fields.author)?,
            parent: text_of(fields.parent).map(|parent| parent.parse()).transpose().context("malformed parent")?,
            text: text_of(fields.text).unwrap_or_default(),
            created: DateTime::from_timestamp_millis(created_ms).unwrap_or_default(),
            partition: i32::try_from(u64_of(fields.partition).unwrap_or(0)).unwrap_or(0),
            offset: i64::try_from(u64_of(fields.offset).unwrap_or(0)).unwrap_or(0),
            deleted: u64_of(fields.deleted) == Some(1),
        })
    }
}

/// Opens the index in `directory`, creating it (and the directory) when there is none, with every analyzer
/// registered. An index of another schema is refused: it must be rebuilt.
pub fn open_or_create(directory: &Path) -> anyhow::Result<Index> {
    std::fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    let mmap = tantivy::directory::MmapDirectory::open(directory)
        .with_context(|| format!("opening the index directory {}", directory.display()))?;
    let index = Index::open_or_create(mmap, Fields::schema()).with_context(|| {
        format!("opening the search index in {} (another schema? run `projector rebuild-search`)", directory.display())
    })?;
    analyzer::register_all(&index);
    Ok(index)
}

/// Opens an existing index for reading only.
pub fn open_existing(directory: &Path) -> anyhow::Result<Index> {
    let index = Index::open_in_dir(directory)
        .with_context(|| format!("opening the search index in {}", directory.display()))?;
    anyhow::ensure!(
        index.schema() == Fields::schema(),
        "the search index in {} has another schema: run `projector rebuild-search`",
        directory.display()
    );
    analyzer::register_all(&index);
    Ok(index)
}

/// The exclusive right to write the index in a directory, held by its writer and by `projector rebuild-search`.
/// It is a file *next to* the directory (`{directory}.lock`), so it stays where it is when a rebuild swaps the
/// directory, and taking it never needs to open the index (which may have an outdated schema). The operating
/// system releases it when the holder exits, even on a crash.
#[derive(Debug)]
pub struct IndexLock {
    _file: std::fs::File,
}

impl IndexLock {
    pub fn acquire(directory: &Path) -> anyhow::Result<Self> {
        let path = lock_path(directory)?;
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let file =
            std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(&path).with_context(|| {
                format!(
                    "creating the lock file {} beside the index: the directory that holds the index directory must \
                     be writable (mount a volume at the parent, with the index as a subdirectory)",
                    path.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "the index in {} is being written by another process (a search consumer or a rebuild)",
                directory.display()
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// `{directory}.lock`, beside the directory's real location (see [`resolved`]).
pub fn lock_path(directory: &Path) -> anyhow::Result<PathBuf> {
    let directory = resolved(directory);
    let name = directory.file_name().and_then(|name| name.to_str()).context("the index directory has no name")?;
    Ok(directory.with_file_name(format!("{name}.lock")))
}

/// The directory's absolute, symlink-free path (its parent's when it does not exist yet), so every process that
/// names the same index — through a relative path or a symbolic link — finds the same lock and siblings.
pub fn resolved(directory: &Path) -> PathBuf {
    if let Ok(real) = directory.canonicalize() {
        return real;
    }
    match (directory.parent(), directory.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            parent.canonicalize().map_or_else(|_| directory.to_owned(), |real| real.join(name))
        }
        _ => directory.to_owned(),
    }
}
