//! The JSON Schema files, embedded at build time. They are the source of truth of the event contract.

use crate::events::EventType;

/// One schema file: the schema of `event_type` at payload `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaFile {
    pub event_type: &'static str,
    pub version: u32,
    pub source: &'static str,
}

impl SchemaFile {
    /// The record name (the schema's `title`), second half of the `TopicRecordNameStrategy` subject.
    pub fn record_name(&self) -> String {
        record_name(self.event_type)
    }

    /// The registry subject under `TopicRecordNameStrategy`: `{topic}-{record name}`.
    pub fn subject(&self, topic: &str) -> String {
        format!("{topic}-{}", self.record_name())
    }

    pub fn file_name(&self) -> String {
        format!("{}.v{}.json", self.event_type, self.version)
    }
}

/// The record name of an event type: `chatsdk.event.` + its type name.
pub fn record_name(event_type: &str) -> String {
    format!("chatsdk.event.{event_type}")
}

/// Every schema file in `schemas/json/`, in file-name order.
pub const SCHEMA_FILES: &[SchemaFile] = &[
    SchemaFile { event_type: "channel.archived", version: 1, source: include_str!("../json/channel.archived.v1.json") },
    SchemaFile { event_type: "channel.created", version: 1, source: include_str!("../json/channel.created.v1.json") },
    SchemaFile { event_type: "channel.updated", version: 1, source: include_str!("../json/channel.updated.v1.json") },
    SchemaFile { event_type: "member.added", version: 1, source: include_str!("../json/member.added.v1.json") },
    SchemaFile { event_type: "member.removed", version: 1, source: include_str!("../json/member.removed.v1.json") },
    SchemaFile {
        event_type: "member.role_changed",
        version: 1,
        source: include_str!("../json/member.role_changed.v1.json"),
    },
    SchemaFile { event_type: "message.deleted", version: 1, source: include_str!("../json/message.deleted.v1.json") },
    SchemaFile { event_type: "message.edited", version: 1, source: include_str!("../json/message.edited.v1.json") },
    SchemaFile { event_type: "message.pinned", version: 1, source: include_str!("../json/message.pinned.v1.json") },
    SchemaFile { event_type: "message.sent", version: 1, source: include_str!("../json/message.sent.v1.json") },
    SchemaFile { event_type: "message.unpinned", version: 1, source: include_str!("../json/message.unpinned.v1.json") },
    SchemaFile { event_type: "reaction.added", version: 1, source: include_str!("../json/reaction.added.v1.json") },
    SchemaFile { event_type: "reaction.removed", version: 1, source: include_str!("../json/reaction.removed.v1.json") },
    SchemaFile { event_type: "read.marked", version: 1, source: include_str!("../json/read.marked.v1.json") },
];

/// The schema file of `event_type` at `version`.
pub fn schema_file(event_type: EventType, version: u32) -> Option<&'static SchemaFile> {
    SCHEMA_FILES.iter().find(|file| file.event_type == event_type.as_str() && file.version == version)
}
