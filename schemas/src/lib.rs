//! The ChatSDK event contract: where events live in Kafka and how they are keyed.
//!
//! A channel's events all carry the key `{app_id}:{channel_id}`, so they land in one partition and the
//! partition offset orders them (DESIGN.md). Event types and their registered JSON Schemas build on this.

pub mod topics {
    /// The event store: every channel event, retention unlimited.
    pub const CHANNEL_EVENTS: &str = "chatsdk.channel-events.v1";
    /// Events the projector could not apply, with headers naming source partition, offset and error.
    pub const CHANNEL_EVENTS_DLQ: &str = "chatsdk.channel-events.v1.dlq";
    /// Typing and presence: short retention, never projected.
    pub const EPHEMERAL: &str = "chatsdk.ephemeral.v1";
}

/// The Kafka message key of a channel's events.
pub fn channel_key(app_id: &str, channel_id: &str) -> String {
    format!("{app_id}:{channel_id}")
}

/// The registry codec used for events (Confluent wire format: magic byte 0, 4-byte schema id, JSON).
pub use schema_registry_converter as registry_codec;
