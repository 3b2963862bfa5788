//! The ChatSDK event contract.
//!
//! - [`topics`] and [`channel_key`]: where events live in Kafka and how they are keyed. A channel's events all
//!   carry the key `{app_id}:{channel_id}`, so they land in one partition and its offset orders them.
//! - [`events`]: the envelope and every event type, as Rust types; [`ids`]: the identifiers.
//! - [`catalog`]: the JSON Schema files of `schemas/json/`, the source of truth, embedded.
//! - [`codec`]: encoding and decoding in Confluent wire format through the schema registry.
//!
//! `docs/events.md` documents every event for downstream consumers; `tail-events` is a consumer to copy.

pub mod catalog;
pub mod codec;
pub mod events;
pub mod ids;

pub use codec::{DecodeError, EncodeError, EventDecoder, EventEncoder, RegistryError, RegistrySettings};
pub use events::{Envelope, Event, EventType};

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
