//! The envelope and every v1 event type (DESIGN.md). The JSON Schemas in `schemas/json/` are the source of
//! truth; `tests/contract.rs` proves these types and the files agree.
//!
//! Decoding is forward compatible: payload structs ignore fields they do not know, and an event whose
//! version is newer than this crate knows is read with the newest known payload type. Schema evolution under
//! BACKWARD_TRANSITIVE only adds optional fields, so nothing this crate relies on can be missing. What
//! producers may write is guarded by the registry instead: every schema is closed (`additionalProperties:
//! false`) and validated at encode and decode.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AppId, ChannelId, EventId, MessageId, UploadId, UserId};

/// A channel event as it is stored in Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_id: EventId,
    pub app_id: AppId,
    pub channel_id: ChannelId,
    /// The user who caused the event, or the app's server actor.
    pub actor_id: UserId,
    /// Informational wall-clock time; the partition offset is what orders a channel's events.
    pub occurred_at: DateTime<Utc>,
    /// The payload version the producer wrote; may be newer than [`Event::event_type`]'s latest known one.
    pub version: u32,
    pub event: Event,
}

impl Envelope {
    /// A new event happening now, with a fresh UUIDv7 and the latest payload version of its type.
    pub fn new(app_id: AppId, channel_id: ChannelId, actor_id: UserId, event: Event) -> Self {
        Self {
            event_id: EventId::new_v7(),
            app_id,
            channel_id,
            actor_id,
            occurred_at: Utc::now(),
            version: event.event_type().latest_version(),
            event,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }

    /// The Kafka message key: all events of a channel land in one partition.
    pub fn key(&self) -> String {
        crate::channel_key(self.app_id.as_str(), self.channel_id.as_str())
    }

    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("event_id".into(), Value::String(self.event_id.to_string()));
        object.insert("app_id".into(), Value::String(self.app_id.to_string()));
        object.insert("channel_id".into(), Value::String(self.channel_id.to_string()));
        object.insert("actor_id".into(), Value::String(self.actor_id.to_string()));
        object
            .insert("occurred_at".into(), Value::String(self.occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
        object.insert("type".into(), Value::String(self.event_type().as_str().to_owned()));
        object.insert("version".into(), Value::from(self.version));
        object.insert("payload".into(), self.event.payload_value());
        Value::Object(object)
    }

    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let raw: RawEnvelope = serde_json::from_value(value).map_err(EventError::Envelope)?;
        let event_type: EventType = raw.event_type.parse()?;
        if raw.version == 0 {
            return Err(EventError::Envelope(serde::de::Error::custom("version must be at least 1")));
        }
        let event = Event::from_payload(event_type, raw.payload)
            .map_err(|source| EventError::Payload { event_type: event_type.as_str(), source })?;
        Ok(Self {
            event_id: raw.event_id,
            app_id: raw.app_id,
            channel_id: raw.channel_id,
            actor_id: raw.actor_id,
            occurred_at: raw.occurred_at,
            version: raw.version,
            event,
        })
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The envelope before its payload is given a type.
#[derive(Deserialize)]
struct RawEnvelope {
    event_id: EventId,
    app_id: AppId,
    channel_id: ChannelId,
    actor_id: UserId,
    occurred_at: DateTime<Utc>,
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    payload: Value,
}

/// Why a JSON value is not an event this crate can read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("invalid envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    #[error("invalid {event_type} payload: {source}")]
    Payload {
        event_type: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident($payload:ty) = $name:literal, latest version $version:literal; )*) => {
        /// The name of an event type, as in the envelope's `type` field.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( $variant, )*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$( EventType::$variant, )*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $( EventType::$variant => $name, )*
                }
            }

            /// The newest payload version this crate writes and knows.
            pub const fn latest_version(self) -> u32 {
                match self {
                    $( EventType::$variant => $version, )*
                }
            }
        }

        impl FromStr for EventType {
            type Err = EventError;
            fn from_str(name: &str) -> Result<Self, EventError> {
                match name {
                    $( $name => Ok(EventType::$variant), )*
                    other => Err(EventError::UnknownType(other.to_owned())),
                }
            }
        }

        /// A channel event's typed payload.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $( $(#[$doc])* $variant($payload), )*
        }

        impl Event {
            pub const fn event_type(&self) -> EventType {
                match self {
                    $( Event::$variant(_) => EventType::$variant, )*
                }
            }

            pub fn payload_value(&self) -> Value {
                // Payloads are plain structs of strings, numbers, ids and JSON objects: they always serialize.
                let serialized = match self {
                    $( Event::$variant(payload) => serde_json::to_value(payload), )*
                };
                serialized.unwrap_or(Value::Null)
            }

            fn from_payload(event_type: EventType, payload: Value) -> Result<Self, serde_json::Error> {
                match event_type {
                    $( EventType::$variant => serde_json::from_value(payload).map(Event::$variant), )*
                }
            }
        }
    };
}

event_types! {
    /// A channel was created with its initial members.
    ChannelCreated(ChannelCreated) = "channel.created", latest version 1;
    /// Channel properties changed (only those present).
    ChannelUpdated(ChannelUpdated) = "channel.updated", latest version 1;
    /// The channel became read-only.
    ChannelArchived(ChannelArchived) = "channel.archived", latest version 1;
    MemberAdded(MemberAdded) = "member.added", latest version 1;
    /// A member left or was removed.
    MemberRemoved(MemberRemoved) = "member.removed", latest version 1;
    MemberRoleChanged(MemberRoleChanged) = "member.role_changed", latest version 1;
    /// A message or thread reply was posted.
    MessageSent(MessageSent) = "message.sent", latest version 1;
    MessageEdited(MessageEdited) = "message.edited", latest version 1;
    /// Soft (tombstone) or hard (purge) deletion.
    MessageDeleted(MessageDeleted) = "message.deleted", latest version 1;
    ReactionAdded(Reaction) = "reaction.added", latest version 1;
    ReactionRemoved(Reaction) = "reaction.removed", latest version 1;
    MessagePinned(PinChange) = "message.pinned", latest version 1;
    MessageUnpinned(PinChange) = "message.unpinned", latest version 1;
    /// The actor read the channel up to an offset.
    ReadMarked(ReadMarked) = "read.marked", latest version 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// Invite-only conversation.
    Messaging,
    /// A named group.
    Group,
    /// Readable by every user of the app.
    Public,
    /// Two members; the id is derived from the pair, so the same two users always share one DM.
    Dm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Moderator,
    Member,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMember {
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelCreated {
    pub channel_type: ChannelType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The customer's own data, opaque to ChatSDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
    pub members: Vec<ChannelMember>,
}

/// Only the properties present changed; `custom` replaces the whole object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelArchived {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberAdded {
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalReason {
    /// The member left by themselves.
    Left,
    /// A moderator or admin removed the member.
    Removed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRemoved {
    pub user_id: UserId,
    pub reason: RemovalReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub user_id: UserId,
    pub role: Role,
    pub previous_role: Role,
}

/// A file uploaded to S3 and attached to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub upload_id: UploadId,
    pub object_key: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: MessageId,
    /// The client's idempotency key; `message_id` is derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    pub text: String,
    pub mentions: Vec<UserId>,
    pub attachments: Vec<Attachment>,
    /// The thread's root message, for a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEdited {
    pub message_id: MessageId,
    pub text: String,
    pub mentions: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub message_id: MessageId,
    /// `false`: a tombstone stays in history; `true`: the message is purged.
    pub hard: bool,
}

/// `reaction.added` / `reaction.removed`: the actor is the reacting user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub message_id: MessageId,
    pub emoji: String,
}

/// `message.pinned` / `message.unpinned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinChange {
    pub message_id: MessageId,
}

/// The actor has read the channel up to this offset of its partition, inclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadMarked {
    pub up_to_offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_value(version: u64, payload: Value) -> Value {
        json!({
            "event_id": "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f60",
            "app_id": "acme",
            "channel_id": "general",
            "actor_id": "alice",
            "occurred_at": "2026-11-29T13:00:00.123Z",
            "type": "reaction.added",
            "version": version,
            "payload": payload,
        })
    }

    #[test]
    fn envelope_round_trips_through_json() {
        let value = sample_value(1, json!({ "message_id": "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61", "emoji": "👍" }));
        let envelope = Envelope::from_value(value.clone()).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(envelope.event_type(), EventType::ReactionAdded);
        assert_eq!(envelope.key(), "acme:general");
        assert_eq!(envelope.to_value(), value);
    }

    #[test]
    fn a_newer_version_with_an_added_optional_field_still_decodes() {
        let value = sample_value(
            2,
            json!({ "message_id": "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61", "emoji": "👍", "skin_tone": 3 }),
        );
        let envelope = Envelope::from_value(value).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(envelope.version, 2);
        assert!(matches!(envelope.event, Event::ReactionAdded(Reaction { ref emoji, .. }) if emoji == "👍"));
    }

    #[test]
    fn unknown_types_and_bad_payloads_are_typed_errors() {
        let mut unknown = sample_value(1, json!({}));
        unknown["type"] = json!("poll.created");
        assert!(matches!(Envelope::from_value(unknown), Err(EventError::UnknownType(name)) if name == "poll.created"));

        let missing_emoji = sample_value(1, json!({ "message_id": "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61" }));
        assert!(matches!(
            Envelope::from_value(missing_emoji),
            Err(EventError::Payload { event_type: "reaction.added", .. })
        ));

        let bad_actor = {
            let mut value =
                sample_value(1, json!({ "message_id": "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61", "emoji": "x" }));
            value["actor_id"] = json!("not:valid");
            value
        };
        assert!(matches!(Envelope::from_value(bad_actor), Err(EventError::Envelope(_))));
    }

    #[test]
    fn every_type_name_parses_back() {
        for event_type in EventType::ALL {
            assert_eq!(event_type.as_str().parse::<EventType>().ok(), Some(*event_type));
        }
        assert_eq!(EventType::ALL.len(), 14);
    }
}
