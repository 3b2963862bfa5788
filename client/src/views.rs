//! The JSON bodies the query API answers with (reads, sync and WebSocket frames), shared by the service and
//! [`crate::Client`]. Responses may gain fields, so these types accept unknown ones.

use chatsdk_schemas::events::{Attachment, ChannelType, Role};
use chatsdk_schemas::ids::{ChannelId, MessageId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::position::Position;

/// A channel as a reader sees it. `role`, `unread_count` and `read_offset` describe the caller and are
/// absent when the caller is not a member (a public channel, or the app's backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelView {
    pub channel_id: ChannelId,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub custom: Map<String, Value>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    /// The position of the channel's latest event.
    pub position: Position,
    pub message_count: i64,
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_message: Option<MessageView>,
    pub role: Option<Role>,
    pub unread_count: Option<i64>,
    pub read_offset: Option<i64>,
}

/// `GET /v1/channels`: the caller's channels, most recently active first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPage {
    pub channels: Vec<ChannelView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    pub user_id: UserId,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    pub read_offset: Option<i64>,
    /// Has a socket open on some query-api node (as the answering node knows it).
    pub online: bool,
}

/// `GET /v1/channels/{channel_id}/members`, ordered by user id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberPage {
    pub members: Vec<MemberView>,
    pub next_cursor: Option<String>,
}

/// One emoji's count on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i32,
}

/// A message as a reader sees it. A deleted message keeps its place with `deleted_at` set and its content
/// (text, mentions, attachments, custom) emptied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub message_id: MessageId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub text: String,
    pub mentions: Vec<UserId>,
    pub attachments: Vec<Attachment>,
    pub custom: Option<Map<String, Value>>,
    pub parent_id: Option<MessageId>,
    pub reply_count: i32,
    pub last_reply_at: Option<DateTime<Utc>>,
    pub client_msg_id: Option<String>,
    /// Where the message was sent: `offset` orders a channel's history.
    pub position: Position,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub pinned: bool,
    pub reactions: Vec<ReactionCount>,
    /// The emoji the caller reacted with.
    pub own_reactions: Vec<String>,
}

/// `GET /v1/channels/{channel_id}/messages` and `…/{message_id}/replies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    /// More messages lie beyond the last one in the requested direction.
    pub has_more: bool,
}

/// `GET /v1/search`: hits in the requested order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    pub results: Vec<SearchResult>,
    /// Pass as `cursor` (with the same query and filters) for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One hit: the message as history shows it, and where the query matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    pub message: MessageView,
    /// BM25 relevance (`order=relevance` only).
    pub score: Option<f32>,
    pub highlight: Highlight,
}

/// The best-matching fragment of the indexed text (at most 200 characters), with the matched words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Highlight {
    pub fragment: String,
    /// `[start, end)` of each match, in characters (Unicode scalar values) of `fragment`.
    pub ranges: Vec<[usize; 2]>,
    /// `fragment` as HTML: matches in `<b>`, everything else escaped.
    pub html: String,
}

/// Who reacted with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionView {
    pub emoji: String,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/channels/{channel_id}/messages/{message_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDetail {
    pub message: MessageView,
    /// The latest reactions (at most 100), newest first.
    pub reactions: Vec<ReactionView>,
}

/// One event of the log with its position, as `/v1/sync` and the WebSocket deliver it. `event` is the
/// envelope exactly as the event contract defines it (`event_id`, `type`, `version`, `app_id`,
/// `channel_id`, `actor_id`, `occurred_at`, `payload`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub position: Position,
    pub event: Value,
}

/// `GET /v1/sync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPage {
    /// Events after the given token in the caller's channels, ordered by partition then offset (so each
    /// channel's events are in order).
    pub events: Vec<LoggedEvent>,
    /// Pass as `token` next time (or to the WebSocket to resume).
    pub next_token: String,
    /// More events are ready: call again with `next_token` right away.
    pub has_more: bool,
    /// Only without a token: the caller's channels now (first page; see `GET /v1/channels` for more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<ChannelPage>,
}

/// A frame the server sends on `/v1/ws` (`{"type": …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame: the connection is live from `token` on.
    Connected { connection_id: String, user_id: UserId, token: String },
    /// An event of one of the caller's channels; `token` resumes right after it.
    Event { position: Position, event: Value, token: String },
    /// Typing or presence: not part of the log, not resumable.
    Ephemeral { event: Value },
    /// Nothing for a while; `token` is the latest resume point.
    Heartbeat { token: String },
    /// The server cannot continue the stream (token older than its buffer, or the client read too
    /// slowly): fetch what is missing with `GET /v1/sync?token=<token>`, then reconnect. The socket closes.
    Resync { reason: String, token: String },
    /// A client frame was refused.
    Error { code: String, message: String },
    /// Answer to a client `ping` frame.
    Pong,
}

/// A frame a client may send on `/v1/ws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// The caller started typing in a channel (members see `typing.start` for a few seconds).
    TypingStart {
        channel_id: ChannelId,
    },
    TypingStop {
        channel_id: ChannelId,
    },
    /// Application-level ping (for clients that cannot see WebSocket pings).
    Ping,
}
