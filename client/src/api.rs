//! The JSON bodies of the ChatSDK HTTP API, shared by the services and [`crate::Client`]. The OpenAPI
//! document (`docs/openapi.json`, served at `/v1/openapi.json`) describes the same shapes; a test validates
//! these types' JSON against it, so the two cannot drift apart silently.
//!
//! Requests reject unknown fields: a misspelt optional field is an error, not a silently ignored value.

use chatsdk_schemas::events::{Attachment, ChannelType, Role};
use chatsdk_schemas::ids::{AppId, ChannelId, EventId, MessageId, UploadId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::position::Position;

/// `POST /v1/admin/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub app_id: AppId,
}

/// A new app's credentials. The secret is shown once; it signs user tokens and authenticates the
/// customer's backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentials {
    pub app_id: AppId,
    pub api_key: String,
    pub api_secret: String,
}

/// `POST /v1/channels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// Chosen by the caller, or generated. Not allowed for `dm`: a DM's id is derived from its two members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<ChannelId>,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
    /// Initial members besides the creator (who becomes `owner`). A `dm` lists the other user only.
    #[serde(default)]
    pub members: Vec<NewMember>,
}

impl CreateChannel {
    pub fn new(channel_type: ChannelType) -> Self {
        Self { channel_id: None, channel_type, name: None, topic: None, custom: None, members: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub user_id: UserId,
    /// `member` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `PATCH /v1/channels/{channel_id}`: only the properties present change; `custom` replaces the object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
}

/// `POST /v1/channels/{channel_id}/archive`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveChannel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/channels/{channel_id}/members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `PATCH /v1/channels/{channel_id}/members/{user_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

/// `POST /v1/channels/{channel_id}/messages`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The thread's root message, for a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<MessageId>,
    /// The client's idempotency key: a retry with the same key gets the same `message_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
}

impl SendMessage {
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), ..Self::default() }
    }
}

/// `PATCH /v1/channels/{channel_id}/messages/{message_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub text: String,
    #[serde(default)]
    pub mentions: Vec<UserId>,
}

/// `POST /v1/channels/{channel_id}/messages/{message_id}/reactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddReaction {
    pub emoji: String,
}

/// `POST /v1/channels/{channel_id}/read`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// Read up to this offset of the channel's partition, inclusive; the channel's latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_offset: Option<i64>,
}

/// The answer to every accepted command (`202`, or `200` for a repeat that appended nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub channel_id: ChannelId,
    /// For message commands: the message's id (derived from `client_msg_id` when one was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// The appended event; absent when nothing new was appended (see `duplicate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    pub position: Position,
    /// Opaque: pass it as `min_position` to later calls to read your own writes.
    pub position_token: String,
    /// `true` when the command repeated an earlier one (a retried send, an existing DM): the ids and
    /// position are the original's.
    #[serde(default)]
    pub duplicate: bool,
}

/// `POST /v1/uploads`: a file the caller is about to upload to a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    pub channel_id: ChannelId,
    /// The file's name as users see it (the object key uses a sanitized copy).
    pub name: String,
    /// Bytes; the upload must be exactly this long.
    pub size: u64,
    /// A media type (`image/png`); the upload must carry exactly this type.
    pub content_type: String,
}

/// The answer to `POST /v1/uploads`: where to send the bytes, before `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadTicket {
    pub upload_id: UploadId,
    pub object_key: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// One `PUT` of the whole file (files up to the multipart threshold)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put: Option<PresignedPut>,
    /// …or one `PUT` per part (larger files), then `complete` with each part's `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<MultipartTicket>,
}

/// A presigned `PUT`: send the body with exactly these headers (they are part of the signature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresignedPut {
    pub url: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

impl PresignedPut {
    /// The `PUT` of `body` with the signed headers (`Content-Length` comes from the body itself).
    pub fn request(&self, http: &reqwest::Client, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        let mut request = http.put(&self.url).body(body);
        for (name, value) in self.headers.iter().filter(|(name, _)| *name != "content-length") {
            request = request.header(name, value);
        }
        request
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultipartTicket {
    /// Every part but the last has this many bytes.
    pub part_size: u64,
    pub parts: Vec<PartTicket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartTicket {
    pub part_number: u32,
    /// Exactly this many bytes.
    pub size: u64,
    pub url: String,
}

/// `POST /v1/uploads/{upload_id}/complete`: the upload is finished; post it as a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    /// The channel the upload was created for.
    pub channel_id: ChannelId,
    /// Multipart uploads: every part with the `ETag` its `PUT` answered; left empty, the service lists the parts
    /// S3 holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<CompletedPart>,
    /// The message's text (may be empty).
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<MessageId>,
    /// Idempotency key of the message; without one, the upload id serves (a retried completion posts once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// The body of every error: `{"error":{"code":"not_a_member","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Limits every node enforces (also in the OpenAPI document).
pub mod limits {
    /// Characters (Unicode scalar values) of a message's text.
    pub const MAX_TEXT_CHARS: usize = 10_000;
    /// Bytes of a request body.
    pub const MAX_BODY_BYTES: usize = 64 * 1024;
    pub const MAX_ATTACHMENTS: usize = 10;
    pub const MAX_MENTIONS: usize = 100;
    /// Initial members listed when creating a channel.
    pub const MAX_INITIAL_MEMBERS: usize = 500;
    /// Characters of a channel name, topic, archive reason, or attachment name.
    pub const MAX_NAME_CHARS: usize = 256;
    pub const MAX_TOPIC_CHARS: usize = 1_024;
    /// Characters of an emoji (a short name such as `thumbsup` or the emoji itself).
    pub const MAX_EMOJI_CHARS: usize = 64;
    /// Bytes of a `client_msg_id`.
    pub const MAX_CLIENT_MSG_ID_BYTES: usize = 128;
    /// Bytes of a `custom` object, serialized.
    pub const MAX_CUSTOM_BYTES: usize = 8 * 1024;
}
