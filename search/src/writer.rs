//! The index's only writer: folds message events into documents and commits them with the offsets that
//! produced them. Every method blocks (Tantivy does file IO and waits for its indexing threads); async callers
//! run it under `spawn_blocking`.
//!
//! The rules follow the PostgreSQL projector's for messages, so search and history agree: the first
//! `message.sent` of an id wins (a retried send, even of a deleted message, changes nothing); a reply needs a
//! root message of the same channel; an edit changes a live message of the same channel; a delete (soft or
//! hard) removes the text for good. Channel-level rules (unknown channel, membership) are not repeated here:
//! search checks access against the read models at query time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use chatsdk_schemas::Envelope;
use chatsdk_schemas::events::Event;
use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use uuid::Uuid;

use crate::analyzer::Analyzer;
use crate::payload::Payload;
use crate::schema::{self, Fields, MessageDoc, message_key};

/// How the writer is set up.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// The topic whose offsets the index records.
    pub topic: String,
    /// Tantivy's indexing memory budget, shared by its threads.
    pub memory_bytes: usize,
    pub threads: usize,
    /// For apps not listed in `analyzers`.
    pub default_analyzer: Analyzer,
    pub analyzers: BTreeMap<String, Analyzer>,
}

/// What one event did to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Replaced,
    Deleted,
    /// Not a message event, or one the rules ignore.
    None,
}

pub struct SearchWriter {
    fields: Fields,
    writer: IndexWriter<TantivyDocument>,
    /// Sees the last commit, for looking up documents written before it.
    reader: IndexReader,
    settings: WriterSettings,
    /// What the next commit records: offsets advanced by every event applied since the last one.
    payload: Payload,
    committed: Payload,
    /// Documents written since the last commit (Tantivy cannot search them yet), by key.
    overlay: HashMap<String, MessageDoc>,
    /// Apps whose configured analyzer could not be adopted, warned about once.
    warned: HashSet<String>,
    /// Held for the writer's life: one writer per directory, and no rebuild swapping it meanwhile. Last, so it
    /// is released after the Tantivy writer (fields drop in order).
    _lock: schema::IndexLock,
}

impl std::fmt::Debug for SearchWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SearchWriter").field("committed", &self.committed.offsets).finish()
    }
}

impl SearchWriter {
    /// Opens (or creates) the index in `directory` and takes its writer lock: a second writer of the same
    /// directory fails here.
    pub fn open(directory: &Path, settings: WriterSettings) -> anyhow::Result<Self> {
        let lock = schema::IndexLock::acquire(directory)?;
        let index = schema::open_or_create(directory)?;
        let fields = Fields::of(&index.schema())?;
        let committed = match Payload::of_index(&index)? {
            Some(payload) => {
                anyhow::ensure!(
                    payload.topic == settings.topic,
                    "the index in {} holds topic {}, not {}",
                    directory.display(),
                    payload.topic,
                    settings.topic
                );
                if payload.default_analyzer != settings.default_analyzer {
                    tracing::warn!(
                        recorded = %payload.default_analyzer,
                        configured = %settings.default_analyzer,
                        "apps with documents keep the analyzer they were indexed with until `projector rebuild-search`; new apps take the configured default"
                    );
                }
                payload
            }
            None => Payload::new(&settings.topic, settings.default_analyzer),
        };
        let writer =
            index.writer_with_num_threads(settings.threads.max(1), settings.memory_bytes).with_context(|| {
                format!("taking the writer lock of {} (is another projector writing it?)", directory.display())
            })?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let fresh = committed.offsets.is_empty() && index.load_metas()?.payload.is_none();
        let mut opened = Self {
            fields,
            writer,
            reader,
            settings,
            payload: committed.clone(),
            committed,
            overlay: HashMap::new(),
            warned: HashSet::new(),
            _lock: lock,
        };
        if fresh {
            // A first, empty commit: readers can open the index (and see where it stands) before any event.
            opened.commit_payload()?;
        }
        Ok(opened)
    }

    /// What the last commit recorded: where consuming resumes.
    pub fn committed(&self) -> &Payload {
        &self.committed
    }

    /// Events applied since the last commit.
    pub fn uncommitted_events(&self) -> usize {
        self.payload
            .offsets
            .iter()
            .map(|(partition, next)| next - self.committed.offsets.get(partition).copied().unwrap_or(0))
            .sum::<i64>() as usize
    }

    /// Applies the event at `offset` of `partition` (`None`: a record that could not be decoded, which only
    /// moves the offset, as the PostgreSQL projector dead-letters it). Offsets must come in order.
    pub fn apply(&mut self, partition: i32, offset: i64, envelope: Option<&Envelope>) -> anyhow::Result<Change> {
        let next = self.payload.offsets.get(&partition).copied().unwrap_or(0);
        anyhow::ensure!(
            offset >= next,
            "offset {offset} of partition {partition} is already in the index (next {next})"
        );
        let change = match envelope {
            Some(envelope) => self.fold(partition, offset, envelope)?,
            None => Change::None,
        };
        self.payload.offsets.insert(partition, offset + 1);
        Ok(change)
    }

    fn fold(&mut self, partition: i32, offset: i64, envelope: &Envelope) -> anyhow::Result<Change> {
        let app = envelope.app_id.as_str();
        let channel = envelope.channel_id.as_str();
        match &envelope.event {
            Event::MessageSent(sent) => {
                if self.find(app, *sent.message_id.as_uuid())?.is_some() {
                    return Ok(Change::None);
                }
                if let Some(parent_id) = sent.parent_id {
                    let parent = self.find(app, *parent_id.as_uuid())?;
                    if !parent.is_some_and(|parent| parent.channel == channel && parent.parent.is_none()) {
                        return Ok(Change::None);
                    }
                }
                self.put(MessageDoc {
                    app: app.to_owned(),
                    message_id: *sent.message_id.as_uuid(),
                    channel: channel.to_owned(),
                    author: envelope.actor_id.as_str().to_owned(),
                    parent: sent.parent_id.map(|parent| *parent.as_uuid()),
                    text: sent.text.clone(),
                    created: envelope.occurred_at,
                    partition,
                    offset,
                    deleted: false,
                })?;
                Ok(Change::Added)
            }
            Event::MessageEdited(edited) => {
                let Some(message) = self.find(app, *edited.message_id.as_uuid())? else { return Ok(Change::None) };
                if message.channel != channel || message.deleted {
                    return Ok(Change::None);
                }
                self.put(MessageDoc { text: edited.text.clone(), ..message })?;
                Ok(Change::Replaced)
            }
            Event::MessageDeleted(deleted) => {
                let Some(message) = self.find(app, *deleted.message_id.as_uuid())? else { return Ok(Change::None) };
                if message.channel != channel || message.deleted {
                    return Ok(Change::None);
                }
                self.put(MessageDoc { text: String::new(), deleted: true, ..message })?;
                Ok(Change::Deleted)
            }
            _ => Ok(Change::None),
        }
    }

    /// The document of a message, tombstones included: written since the last commit, or committed.
    fn find(&self, app: &str, message_id: Uuid) -> anyhow::Result<Option<MessageDoc>> {
        let key = message_key(app, message_id);
        if let Some(document) = self.overlay.get(&key) {
            return Ok(Some(document.clone()));
        }
        let searcher = self.reader.searcher();
        let query = TermQuery::new(Term::from_field_text(self.fields.key, &key), IndexRecordOption::Basic);
        let Some(address) = searcher.search(&query, &DocSetCollector)?.into_iter().next() else { return Ok(None) };
        let document: TantivyDocument = searcher.doc(address)?;
        MessageDoc::from_document(&self.fields, &document).map(Some)
    }

    /// Replaces the message's document (delete by key, then add: Tantivy orders both by opstamp).
    fn put(&mut self, document: MessageDoc) -> anyhow::Result<()> {
        let analyzer = self.analyzer_for(&document.app)?;
        self.writer.delete_term(self.fields.key_term(&document.app, document.message_id));
        self.writer.add_document(document.to_document(&self.fields, analyzer))?;
        self.overlay.insert(message_key(&document.app, document.message_id), document);
        Ok(())
    }

    /// The analyzer of an app's messages: the one recorded in the index; for an app without documents yet,
    /// the configured one (then recorded). A configured change for an app that has documents waits for a
    /// rebuild, so one app's messages never sit in two fields.
    fn analyzer_for(&mut self, app: &str) -> anyhow::Result<Analyzer> {
        let recorded = self.payload.analyzer_for(app);
        let configured = self.settings.analyzers.get(app).copied().unwrap_or(self.settings.default_analyzer);
        if configured == recorded || self.warned.contains(app) {
            return Ok(recorded);
        }
        let app_has_documents = self.overlay.values().any(|document| document.app == app)
            || self.reader.searcher().doc_freq(&Term::from_field_text(self.fields.live_app, app))? > 0
            || self.payload.analyzers.contains_key(app);
        if app_has_documents {
            tracing::warn!(app, %recorded, %configured, "the app keeps its recorded analyzer until `projector rebuild-search`");
            self.warned.insert(app.to_owned());
            return Ok(recorded);
        }
        self.payload.analyzers.insert(app.to_owned(), configured);
        Ok(configured)
    }

    /// Commits what was applied since the last commit, with its offsets in the payload, and makes it visible to
    /// this writer's lookups. Nothing to commit: nothing happens.
    pub fn commit(&mut self) -> anyhow::Result<bool> {
        if self.payload == self.committed {
            return Ok(false);
        }
        self.commit_payload()?;
        Ok(true)
    }

    fn commit_payload(&mut self) -> anyhow::Result<()> {
        let mut prepared = self.writer.prepare_commit().context("preparing the commit")?;
        prepared.set_payload(&self.payload.to_json());
        prepared.commit().context("committing")?;
        self.reader.reload().context("reloading the writer's reader")?;
        self.committed = self.payload.clone();
        self.overlay.clear();
        Ok(())
    }

    /// Waits for Tantivy's background merges and releases the writer lock.
    pub fn close(self) -> anyhow::Result<()> {
        self.writer.wait_merging_threads().context("waiting for merges")?;
        Ok(())
    }
}
