//! Sample events shared by the contract tests, the codec tests and the benchmark: for every event type, one
//! with every optional field set ("full") and one with none ("minimal").

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a different part

use chatsdk_schemas::events::*;
use chatsdk_schemas::ids::{AppId, ChannelId, EventId, MessageId, UploadId, UserId};
use chatsdk_schemas::{Envelope, Event};
use chrono::{TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

fn user(name: &str) -> UserId {
    name.parse().unwrap()
}

fn message_id(n: u128) -> MessageId {
    MessageId::from_uuid(Uuid::from_u128(0x0190_f3a2_7c1e_7d3b_9a55_0000_0000_0000 + n))
}

fn custom() -> Option<serde_json::Map<String, serde_json::Value>> {
    json!({ "color": "teal", "priority": 2, "labels": ["a", "b"] }).as_object().cloned()
}

pub fn envelope(event: Event) -> Envelope {
    let mut envelope =
        Envelope::new("acme".parse::<AppId>().unwrap(), "general".parse::<ChannelId>().unwrap(), user("alice"), event);
    envelope.event_id = EventId::from_uuid(Uuid::from_u128(0x0190_f3a2_7c1e_7d3b_9a55_1b2c_3d4e_5f60));
    envelope.occurred_at = Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap() + chrono::Duration::milliseconds(123);
    envelope
}

fn attachment() -> Attachment {
    Attachment {
        upload_id: UploadId::from_uuid(Uuid::from_u128(42)),
        object_key: "acme/general/00000000-0000-0000-0000-00000000002a/photo.jpg".to_owned(),
        name: "photo.jpg".to_owned(),
        content_type: "image/jpeg".to_owned(),
        size: 123_456,
    }
}

/// Every event type with every optional field set, in `EventType::ALL` order.
pub fn full_events() -> Vec<Event> {
    vec![
        Event::ChannelCreated(ChannelCreated {
            channel_type: ChannelType::Group,
            name: Some("General".to_owned()),
            topic: Some("Everything".to_owned()),
            custom: custom(),
            members: vec![ChannelMember { user_id: user("alice"), role: Role::Owner }],
        }),
        Event::ChannelUpdated(ChannelUpdated {
            name: Some("Général".to_owned()),
            topic: Some("Tout".to_owned()),
            custom: custom(),
        }),
        Event::ChannelArchived(ChannelArchived { reason: Some("project ended".to_owned()) }),
        Event::MemberAdded(MemberAdded { user_id: user("bob"), role: Role::Member }),
        Event::MemberRemoved(MemberRemoved { user_id: user("bob"), reason: RemovalReason::Removed }),
        Event::MemberRoleChanged(MemberRoleChanged {
            user_id: user("bob"),
            role: Role::Moderator,
            previous_role: Role::Member,
        }),
        Event::MessageSent(MessageSent {
            message_id: message_id(1),
            client_msg_id: Some("client-1".to_owned()),
            text: "hello @bob, see 📎".to_owned(),
            mentions: vec![user("bob")],
            attachments: vec![attachment()],
            parent_id: Some(message_id(0)),
            custom: custom(),
        }),
        Event::MessageEdited(MessageEdited {
            message_id: message_id(1),
            text: "hello @carol".to_owned(),
            mentions: vec![user("carol")],
        }),
        Event::MessageDeleted(MessageDeleted { message_id: message_id(1), hard: true }),
        Event::ReactionAdded(Reaction { message_id: message_id(1), emoji: "👍".to_owned() }),
        Event::ReactionRemoved(Reaction { message_id: message_id(1), emoji: "👍".to_owned() }),
        Event::MessagePinned(PinChange { message_id: message_id(1) }),
        Event::MessageUnpinned(PinChange { message_id: message_id(1) }),
        Event::ReadMarked(ReadMarked { up_to_offset: 41 }),
    ]
}

/// Every event type with no optional field set (empty lists where a list is required).
pub fn minimal_events() -> Vec<Event> {
    vec![
        Event::ChannelCreated(ChannelCreated {
            channel_type: ChannelType::Dm,
            name: None,
            topic: None,
            custom: None,
            members: vec![],
        }),
        Event::ChannelUpdated(ChannelUpdated { name: Some("only the name".to_owned()), topic: None, custom: None }),
        Event::ChannelArchived(ChannelArchived { reason: None }),
        Event::MemberAdded(MemberAdded { user_id: user("bob"), role: Role::Admin }),
        Event::MemberRemoved(MemberRemoved { user_id: user("alice"), reason: RemovalReason::Left }),
        Event::MemberRoleChanged(MemberRoleChanged {
            user_id: user("bob"),
            role: Role::Member,
            previous_role: Role::Admin,
        }),
        Event::MessageSent(MessageSent {
            message_id: message_id(2),
            client_msg_id: None,
            text: String::new(),
            mentions: vec![],
            attachments: vec![],
            parent_id: None,
            custom: None,
        }),
        Event::MessageEdited(MessageEdited { message_id: message_id(2), text: String::new(), mentions: vec![] }),
        Event::MessageDeleted(MessageDeleted { message_id: message_id(2), hard: false }),
        Event::ReactionAdded(Reaction { message_id: message_id(2), emoji: "x".to_owned() }),
        Event::ReactionRemoved(Reaction { message_id: message_id(2), emoji: "x".to_owned() }),
        Event::MessagePinned(PinChange { message_id: message_id(2) }),
        Event::MessageUnpinned(PinChange { message_id: message_id(2) }),
        Event::ReadMarked(ReadMarked { up_to_offset: 0 }),
    ]
}

pub fn full_samples() -> Vec<Envelope> {
    full_events().into_iter().map(envelope).collect()
}

pub fn minimal_samples() -> Vec<Envelope> {
    minimal_events().into_iter().map(envelope).collect()
}
