//! The read endpoints: the caller's channels, one channel, its members, history, threads and one message.
//!
//! Who may read a channel: its active members, anyone of the app for a `public` channel, and the app's
//! backend. Everything is scoped by the caller's app first, so another app's data cannot be named.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatsdk_client::Position;
use chatsdk_client::views::{
    ChannelPage, ChannelView, MemberPage, MemberView, MessageDetail, MessagePage, MessageView, ReactionCount,
    ReactionView,
};
use chatsdk_platform::api::auth::Actor;
use chatsdk_platform::api::error::ApiError;
use chatsdk_platform::api::parse::{enum_named, path_id};
use chatsdk_schemas::events::{ChannelType, Role};
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::AppState;
use crate::request::{Params, Read, invalid};

/// Largest page of messages, channels or members.
pub const MAX_PAGE: i64 = 200;

/// What a reader may do in a channel.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The caller's role when they are an active member.
    pub role: Option<Role>,
}

/// The caller's access to a channel: 404 when the app has no such channel, 403 unless the caller may read.
pub async fn reader(pool: &PgPool, actor: &Actor, channel: &ChannelId) -> Result<Reader, ApiError> {
    let row = sqlx::query!(
        r#"SELECT c.channel_type, m.role AS "role?"
           FROM channels c
           LEFT JOIN members m
             ON m.app_id = c.app_id AND m.channel_id = c.channel_id AND m.user_id = $3 AND m.left_at IS NULL
           WHERE c.app_id = $1 AND c.channel_id = $2"#,
        actor.app_id.as_str(),
        channel.as_str(),
        actor.user_id.as_str(),
    )
    .fetch_optional(pool)
    .await
    .map_err(|error| ApiError::database(&error))?
    .ok_or_else(|| ApiError::not_found("channel_not_found", format!("no channel {channel}")))?;
    let role = row.role.as_deref().and_then(enum_named::<Role>);
    may_read(actor, channel, &row.channel_type, role)?;
    Ok(Reader { role })
}

/// The rule: active members, anyone of the app for a public channel, and the app's backend.
fn may_read(actor: &Actor, channel: &ChannelId, channel_type: &str, role: Option<Role>) -> Result<(), ApiError> {
    if role.is_none() && channel_type != "public" && !actor.is_server {
        return Err(ApiError::forbidden("not_a_member", format!("you are not a member of {channel}")));
    }
    Ok(())
}

/// The user whose channels are listed: the caller, or for the app's backend the `user_id` parameter.
fn subject(actor: &Actor, params: &Params) -> Result<UserId, ApiError> {
    if !actor.is_server {
        return Ok(actor.user_id.clone());
    }
    params
        .parsed::<UserId>("user_id")?
        .ok_or_else(|| ApiError::bad_request("user_required", "the app's backend must name a user_id"))
}

/// An opaque page cursor: base64url of a JSON array.
fn encode_cursor(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn decode_cursor(params: &Params) -> Result<Option<Value>, ApiError> {
    let Some(cursor) = params.get("cursor") else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid("cursor", "is not a cursor this API issued"))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|_| invalid("cursor", "is not a cursor this API issued"))
}

struct ChannelRow {
    channel_id: String,
    channel_type: String,
    name: Option<String>,
    topic: Option<String>,
    custom: Value,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    archived_at: Option<DateTime<Utc>>,
    kafka_partition: i32,
    last_offset: i64,
    message_count: i64,
    last_message_id: Option<Uuid>,
    last_message_at: Option<DateTime<Utc>>,
    activity: DateTime<Utc>,
    role: Option<String>,
    read_offset: Option<i64>,
    unread_count: Option<i64>,
}

/// `GET /v1/channels?type=&limit=&cursor=` (backend: `&user_id=`): the user's channels, most recent
/// activity (last message, else creation) first, with unread counts and last messages.
pub async fn my_channels(State(state): State<Arc<AppState>>, read: Read) -> Result<Json<ChannelPage>, ApiError> {
    let user = subject(&read.actor, &read.params)?;
    Ok(Json(channel_page(&state.pool, &read.actor, &user, &read.params).await?))
}

pub async fn channel_page(
    pool: &PgPool,
    actor: &Actor,
    user: &UserId,
    params: &Params,
) -> Result<ChannelPage, ApiError> {
    let limit = params.limit(30, MAX_PAGE)?;
    let channel_type = params.parsed::<String>("type")?;
    if let Some(kind) = &channel_type
        && enum_named::<ChannelType>(kind).is_none()
    {
        return Err(invalid("type", "must be one of messaging, group, public, dm"));
    }
    // After (activity, channel_id) of the previous page's last channel.
    let (after_activity, after_channel) = match decode_cursor(params)? {
        None => (None, String::new()),
        Some(cursor) => {
            let activity = cursor.get(0).and_then(Value::as_str).and_then(|at| at.parse::<DateTime<Utc>>().ok());
            let channel = cursor.get(1).and_then(Value::as_str).map(str::to_owned);
            match (activity, channel) {
                (Some(activity), Some(channel)) => (Some(activity), channel),
                _ => return Err(invalid("cursor", "is not a cursor this API issued")),
            }
        }
    };
    let rows = sqlx::query_as!(
        ChannelRow,
        r#"SELECT c.channel_id, c.channel_type, c.name, c.topic, c.custom, c.created_by, c.created_at, c.updated_at,
                  c.archived_at, c.kafka_partition, c.last_offset, c.message_count, c.last_message_id,
                  c.last_message_at, COALESCE(c.last_message_at, c.created_at) AS "activity!",
                  m.role AS "role?", m.read_offset, (c.message_count - m.read_count) AS "unread_count?"
           FROM members m
           JOIN channels c ON c.app_id = m.app_id AND c.channel_id = m.channel_id
           WHERE m.app_id = $1 AND m.user_id = $2 AND m.left_at IS NULL
             AND ($3::text IS NULL OR c.channel_type = $3)
             AND ($4::timestamptz IS NULL
                  OR COALESCE(c.last_message_at, c.created_at) < $4
                  OR (COALESCE(c.last_message_at, c.created_at) = $4 AND c.channel_id > $5))
           ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.channel_id ASC
           LIMIT $6"#,
        actor.app_id.as_str(),
        user.as_str(),
        channel_type,
        after_activity,
        after_channel,
        limit + 1,
    )
    .fetch_all(pool)
    .await
    .map_err(|error| ApiError::database(&error))?;
    let mut rows = rows;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|last| encode_cursor(&serde_json::json!([last.activity.to_rfc3339(), last.channel_id])))
    } else {
        None
    };
    let last_ids: Vec<Uuid> = rows.iter().filter_map(|row| row.last_message_id).collect();
    let mut last_messages: HashMap<MessageId, MessageView> =
        messages_by_id(pool, &actor.app_id, user, &last_ids).await?.into_iter().map(|m| (m.message_id, m)).collect();
    let channels = rows
        .into_iter()
        .filter_map(|row| {
            let last = row.last_message_id.and_then(|id| last_messages.remove(&MessageId::from_uuid(id)));
            channel_view(row, last)
        })
        .collect();
    Ok(ChannelPage { channels, next_cursor })
}

fn channel_view(row: ChannelRow, last_message: Option<MessageView>) -> Option<ChannelView> {
    Some(ChannelView {
        channel_id: row.channel_id.parse().ok()?,
        channel_type: enum_named(&row.channel_type)?,
        name: row.name,
        topic: row.topic,
        custom: object(row.custom),
        created_by: row.created_by.parse().ok()?,
        created_at: row.created_at,
        updated_at: row.updated_at,
        archived_at: row.archived_at,
        position: Position { partition: row.kafka_partition, offset: row.last_offset },
        message_count: row.message_count,
        last_message_at: row.last_message_at,
        last_message,
        role: row.role.as_deref().and_then(enum_named),
        unread_count: row.unread_count.map(|count| count.max(0)),
        read_offset: row.read_offset,
    })
}

/// `GET /v1/channels/{channel_id}`.
pub async fn channel(
    State(state): State<Arc<AppState>>,
    read: Read,
    Path(channel): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let channel = path_id::<ChannelId>("channel_id", &channel)?;
    let actor = &read.actor;
    // One query reads the channel and the caller's membership: the access check needs nothing more.
    let row = sqlx::query_as!(
        ChannelRow,
        r#"SELECT c.channel_id, c.channel_type, c.name, c.topic, c.custom, c.created_by, c.created_at, c.updated_at,
                  c.archived_at, c.kafka_partition, c.last_offset, c.message_count, c.last_message_id,
                  c.last_message_at, COALESCE(c.last_message_at, c.created_at) AS "activity!",
                  m.role AS "role?", m.read_offset AS "read_offset?",
                  (c.message_count - m.read_count) AS "unread_count?"
           FROM channels c
           LEFT JOIN members m
             ON m.app_id = c.app_id AND m.channel_id = c.channel_id AND m.user_id = $3 AND m.left_at IS NULL
           WHERE c.app_id = $1 AND c.channel_id = $2"#,
        actor.app_id.as_str(),
        channel.as_str(),
        actor.user_id.as_str(),
    )
    .fetch_optional(&state.pool)
    .await
    .map_err(|error| ApiError::database(&error))?
    .ok_or_else(|| ApiError::not_found("channel_not_found", format!("no channel {channel}")))?;
    may_read(actor, &channel, &row.channel_type, row.role.as_deref().and_then(enum_named::<Role>))?;
    let last = match row.last_message_id {
        Some(id) => messages_by_id(&state.pool, &actor.app_id, &actor.user_id, &[id]).await?.pop(),
        None => None,
    };
    channel_view(row, last).map(Json).ok_or_else(|| ApiError::Internal("an unreadable channel row".to_owned()))
}

/// `GET /v1/channels/{channel_id}/members?limit=&cursor=`: active members by user id.
pub async fn members(
    State(state): State<Arc<AppState>>,
    read: Read,
    Path(channel): Path<String>,
) -> Result<Json<MemberPage>, ApiError> {
    let channel = path_id::<ChannelId>("channel_id", &channel)?;
    reader(&state.pool, &read.actor, &channel).await?;
    let limit = read.params.limit(100, MAX_PAGE)?;
    let after = match decode_cursor(&read.params)? {
        None => String::new(),
        Some(cursor) => cursor
            .get(0)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| invalid("cursor", "is not a cursor this API issued"))?,
    };
    let mut rows = sqlx::query!(
        "SELECT user_id, role, joined_at, read_offset FROM members \
         WHERE app_id = $1 AND channel_id = $2 AND left_at IS NULL AND user_id > $3 ORDER BY user_id LIMIT $4",
        read.actor.app_id.as_str(),
        channel.as_str(),
        after,
        limit + 1,
    )
    .fetch_all(&state.pool)
    .await
    .map_err(|error| ApiError::database(&error))?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|last| encode_cursor(&serde_json::json!([last.user_id])))
    } else {
        None
    };
    let members = rows
        .into_iter()
        .filter_map(|row| {
            let user_id: UserId = row.user_id.parse().ok()?;
            Some(MemberView {
                online: state.presence.is_online(&read.actor.app_id, &user_id),
                user_id,
                role: enum_named(&row.role)?,
                joined_at: row.joined_at,
                read_offset: row.read_offset,
            })
        })
        .collect();
    Ok(Json(MemberPage { members, next_cursor }))
}

struct MessageRow {
    message_id: Uuid,
    channel_id: String,
    author_id: String,
    client_msg_id: Option<String>,
    text: String,
    mentions: Vec<String>,
    attachments: Value,
    custom: Option<Value>,
    parent_id: Option<Uuid>,
    reply_count: i32,
    last_reply_at: Option<DateTime<Utc>>,
    kafka_partition: i32,
    kafka_offset: i64,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    pinned: bool,
}

/// Which way a page goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    NewestFirst,
    OldestFirst,
}

/// `before`/`after` (exclusive offsets), `limit` and `order` of a history page.
struct Window {
    before: i64,
    after: i64,
    limit: i64,
    order: Order,
}

impl Window {
    /// Newest first unless only `after` is given (paging forward) or `order=asc`.
    fn parse(params: &Params, default_order: Order) -> Result<Self, ApiError> {
        let before = params.parsed::<i64>("before")?;
        let after = params.parsed::<i64>("after")?;
        let order = match params.get("order") {
            None if after.is_some() && before.is_none() => Order::OldestFirst,
            None => default_order,
            Some("desc") => Order::NewestFirst,
            Some("asc") => Order::OldestFirst,
            Some(_) => return Err(invalid("order", "must be asc or desc")),
        };
        Ok(Self {
            before: before.unwrap_or(i64::MAX),
            after: after.unwrap_or(-1),
            limit: params.limit(50, MAX_PAGE)?,
            order,
        })
    }
}

/// `GET /v1/channels/{channel_id}/messages?before=&after=&limit=&order=`: top-level messages by position.
pub async fn history(
    State(state): State<Arc<AppState>>,
    read: Read,
    Path(channel): Path<String>,
) -> Result<Json<MessagePage>, ApiError> {
    let channel = path_id::<ChannelId>("channel_id", &channel)?;
    reader(&state.pool, &read.actor, &channel).await?;
    let window = Window::parse(&read.params, Order::NewestFirst)?;
    let app = read.actor.app_id.as_str();
    // Two statements rather than a computed ORDER BY, so both walk the history index.
    let rows = match window.order {
        Order::NewestFirst => sqlx::query_as!(
            MessageRow,
            r#"SELECT message_id, channel_id, author_id, client_msg_id, text, mentions, attachments, custom, parent_id,
                      reply_count, last_reply_at, kafka_partition, kafka_offset, created_at, edited_at, deleted_at,
                      EXISTS (SELECT 1 FROM pins p WHERE p.app_id = m.app_id AND p.channel_id = m.channel_id
                              AND p.message_id = m.message_id) AS "pinned!"
               FROM messages m
               WHERE app_id = $1 AND channel_id = $2 AND kafka_offset < $3 AND kafka_offset > $4
                 AND parent_id IS NULL AND NOT purged
               ORDER BY kafka_offset DESC LIMIT $5"#,
            app,
            channel.as_str(),
            window.before,
            window.after,
            window.limit + 1,
        )
        .fetch_all(&state.pool)
        .await,
        Order::OldestFirst => sqlx::query_as!(
            MessageRow,
            r#"SELECT message_id, channel_id, author_id, client_msg_id, text, mentions, attachments, custom, parent_id,
                      reply_count, last_reply_at, kafka_partition, kafka_offset, created_at, edited_at, deleted_at,
                      EXISTS (SELECT 1 FROM pins p WHERE p.app_id = m.app_id AND p.channel_id = m.channel_id
                              AND p.message_id = m.message_id) AS "pinned!"
               FROM messages m
               WHERE app_id = $1 AND channel_id = $2 AND kafka_offset < $3 AND kafka_offset > $4
                 AND parent_id IS NULL AND NOT purged
               ORDER BY kafka_offset ASC LIMIT $5"#,
            app,
            channel.as_str(),
            window.before,
            window.after,
            window.limit + 1,
        )
        .fetch_all(&state.pool)
        .await,
    }
    .map_err(|error| ApiError::database(&error))?;
    Ok(Json(page(&state.pool, &read.actor, rows, window.limit).await?))
}

/// `GET /v1/channels/{channel_id}/messages/{message_id}/replies`: a thread, oldest first by default.
pub async fn replies(
    State(state): State<Arc<AppState>>,
    read: Read,
    Path((channel, message)): Path<(String, String)>,
) -> Result<Json<MessagePage>, ApiError> {
    let channel = path_id::<ChannelId>("channel_id", &channel)?;
    let message = path_id::<MessageId>("message_id", &message)?;
    reader(&state.pool, &read.actor, &channel).await?;
    let window = Window::parse(&read.params, Order::OldestFirst)?;
    let app = read.actor.app_id.as_str();
    root_exists(&state.pool, &read.actor.app_id, &channel, message).await?;
    let rows = match window.order {
        Order::NewestFirst => sqlx::query_as!(
            MessageRow,
            r#"SELECT message_id, channel_id, author_id, client_msg_id, text, mentions, attachments, custom, parent_id,
                      reply_count, last_reply_at, kafka_partition, kafka_offset, created_at, edited_at, deleted_at,
                      EXISTS (SELECT 1 FROM pins p WHERE p.app_id = m.app_id AND p.channel_id = m.channel_id
                              AND p.message_id = m.message_id) AS "pinned!"
               FROM messages m
               WHERE app_id = $1 AND parent_id = $2 AND channel_id = $3 AND kafka_offset < $4 AND kafka_offset > $5
                 AND NOT purged
               ORDER BY kafka_offset DESC LIMIT $6"#,
            app,
            message.as_uuid(),
            channel.as_str(),
            window.before,
            window.after,
            window.limit + 1,
        )
        .fetch_all(&state.pool)
        .await,
        Order::OldestFirst => sqlx::query_as!(
            MessageRow,
            r#"SELECT message_id, channel_id, author_id, client_msg_id, text, mentions, attachments, custom, parent_id,
                      reply_count, last_reply_at, kafka_partition, kafka_offset, created_at, edited_at, deleted_at,
                      EXISTS (SELECT 1 FROM pins p WHERE p.app_id = m.app_id AND p.channel_id = m.channel_id
                              AND p.message_id = m.message_id) AS "pinned!"
               FROM messages m
               WHERE app_id = $1 AND parent_id = $2 AND channel_id = $3 AND kafka_offset < $4 AND kafka_offset > $5
                 AND NOT purged
               ORDER BY kafka_offset ASC LIMIT $6"#,
            app,
            message.as_uuid(),
            channel.as_str(),
            window.before,
            window.after,
            window.limit + 1,
        )
        .fetch_all(&state.pool)
        .await,
    }
    .map_err(|error| ApiError::database(&error))?;
    Ok(Json(page(&state.pool, &read.actor, rows, window.limit).await?))
}

async fn root_exists(pool: &PgPool, app: &AppId, channel: &ChannelId, message: MessageId) -> Result<(), ApiError> {
    let found = sqlx::query_scalar!(
        r#"SELECT 1 AS "one!" FROM messages WHERE app_id = $1 AND message_id = $2 AND channel_id = $3 AND NOT purged"#,
        app.as_str(),
        message.as_uuid(),
        channel.as_str(),
    )
    .fetch_optional(pool)
    .await
    .map_err(|error| ApiError::database(&error))?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("message_not_found", format!("no message {message} in {channel}")))
}

/// `GET /v1/channels/{channel_id}/messages/{message_id}`: one message with who reacted.
pub async fn message(
    State(state): State<Arc<AppState>>,
    read: Read,
    Path((channel, message)): Path<(String, String)>,
) -> Result<Json<MessageDetail>, ApiError> {
    let channel = path_id::<ChannelId>("channel_id", &channel)?;
    let message = path_id::<MessageId>("message_id", &message)?;
    reader(&state.pool, &read.actor, &channel).await?;
    let app = &read.actor.app_id;
    let not_found = || ApiError::not_found("message_not_found", format!("no message {message} in {channel}"));
    let view = messages_by_id(&state.pool, app, &read.actor.user_id, &[*message.as_uuid()])
        .await?
        .pop()
        .filter(|view| view.channel_id == channel)
        .ok_or_else(not_found)?;
    // A deleted message shows no reactions, so not who reacted either.
    let limit: i64 = if view.deleted_at.is_some() { 0 } else { 100 };
    let rows = sqlx::query!(
        "SELECT emoji, user_id, created_at FROM reactions WHERE app_id = $1 AND message_id = $2 \
         ORDER BY created_at DESC, emoji, user_id LIMIT $3",
        app.as_str(),
        message.as_uuid(),
        limit,
    )
    .fetch_all(&state.pool)
    .await
    .map_err(|error| ApiError::database(&error))?;
    let reactions = rows
        .into_iter()
        .filter_map(|row| {
            Some(ReactionView { emoji: row.emoji, user_id: row.user_id.parse().ok()?, created_at: row.created_at })
        })
        .collect();
    Ok(Json(MessageDetail { message: view, reactions }))
}

/// Messages by id (any channel of the app; callers check the channel), purged ones left out.
pub(crate) async fn messages_by_id(
    pool: &PgPool,
    app: &AppId,
    viewer: &UserId,
    ids: &[Uuid],
) -> Result<Vec<MessageView>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT message_id, channel_id, author_id, client_msg_id, text, mentions, attachments, custom, parent_id,
                  reply_count, last_reply_at, kafka_partition, kafka_offset, created_at, edited_at, deleted_at,
                  EXISTS (SELECT 1 FROM pins p WHERE p.app_id = m.app_id AND p.channel_id = m.channel_id
                          AND p.message_id = m.message_id) AS "pinned!"
           FROM messages m WHERE app_id = $1 AND message_id = ANY($2) AND NOT purged"#,
        app.as_str(),
        ids,
    )
    .fetch_all(pool)
    .await
    .map_err(|error| ApiError::database(&error))?;
    with_reactions(pool, app, viewer, rows).await
}

/// A page of rows fetched with `limit + 1`: the extra row only says there is more.
async fn page(pool: &PgPool, actor: &Actor, mut rows: Vec<MessageRow>, limit: i64) -> Result<MessagePage, ApiError> {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let messages = with_reactions(pool, &actor.app_id, &actor.user_id, rows).await?;
    Ok(MessagePage { messages, has_more })
}

/// Views of `rows` (in their order) with reaction counts and the viewer's own reactions: two queries.
async fn with_reactions(
    pool: &PgPool,
    app: &AppId,
    viewer: &UserId,
    rows: Vec<MessageRow>,
) -> Result<Vec<MessageView>, ApiError> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.message_id).collect();
    let mut counts: HashMap<Uuid, Vec<ReactionCount>> = HashMap::new();
    let mut own: HashMap<Uuid, Vec<String>> = HashMap::new();
    if !ids.is_empty() {
        let count_rows = sqlx::query!(
            "SELECT message_id, emoji, count FROM reaction_counts WHERE app_id = $1 AND message_id = ANY($2) \
             ORDER BY count DESC, emoji",
            app.as_str(),
            &ids,
        )
        .fetch_all(pool)
        .await
        .map_err(|error| ApiError::database(&error))?;
        for row in count_rows {
            counts.entry(row.message_id).or_default().push(ReactionCount { emoji: row.emoji, count: row.count });
        }
        let own_rows = sqlx::query!(
            "SELECT message_id, emoji FROM reactions WHERE app_id = $1 AND message_id = ANY($2) AND user_id = $3 \
             ORDER BY created_at, emoji",
            app.as_str(),
            &ids,
            viewer.as_str(),
        )
        .fetch_all(pool)
        .await
        .map_err(|error| ApiError::database(&error))?;
        for row in own_rows {
            own.entry(row.message_id).or_default().push(row.emoji);
        }
    }
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let id = row.message_id;
            message_view(row, counts.remove(&id).unwrap_or_default(), own.remove(&id).unwrap_or_default())
        })
        .collect())
}

fn message_view(row: MessageRow, reactions: Vec<ReactionCount>, own_reactions: Vec<String>) -> Option<MessageView> {
    let deleted = row.deleted_at.is_some();
    let mentions =
        if deleted { Vec::new() } else { row.mentions.iter().filter_map(|user| user.parse().ok()).collect() };
    let attachments = if deleted { Vec::new() } else { serde_json::from_value(row.attachments).unwrap_or_default() };
    Some(MessageView {
        message_id: MessageId::from_uuid(row.message_id),
        channel_id: row.channel_id.parse().ok()?,
        author_id: row.author_id.parse().ok()?,
        text: if deleted { String::new() } else { row.text },
        mentions,
        attachments,
        custom: if deleted { None } else { row.custom.map(object) },
        parent_id: row.parent_id.map(MessageId::from_uuid),
        reply_count: row.reply_count,
        last_reply_at: row.last_reply_at,
        client_msg_id: row.client_msg_id,
        position: Position { partition: row.kafka_partition, offset: row.kafka_offset },
        created_at: row.created_at,
        edited_at: row.edited_at,
        deleted_at: row.deleted_at,
        pinned: row.pinned,
        reactions: if deleted { Vec::new() } else { reactions },
        own_reactions: if deleted { Vec::new() } else { own_reactions },
    })
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
