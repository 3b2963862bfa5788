//! `GET /v1/ws`: the caller's channel events as they are appended, resumable on any node with the token
//! every frame carries, plus typing indicators. Also `POST`/`DELETE /v1/channels/{id}/typing`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chatsdk_client::views::{ClientFrame, ServerFrame};
use chatsdk_platform::api::auth::{Actor, WRITE_SCOPE, authenticate};
use chatsdk_platform::api::error::ApiError;
use chatsdk_platform::api::parse::path_id;
use chatsdk_platform::metrics as names;
use chatsdk_schemas::ids::{AppId, ChannelId, UserId};
use rdkafka::producer::FutureRecord;
use tokio::sync::mpsc;

use crate::AppState;
use crate::hub::{Item, Membership, Outbound, Spans, StartError};
use crate::presence;
use crate::reads::reader;
use crate::request::{Params, Read};
use crate::sync::{SyncToken, fingerprint};
use crate::tail::Typing;

/// WebSocket close code for "try again later" (RFC 6455 registry: 1013).
const TRY_AGAIN_LATER: u16 = 1013;
/// Client frames larger than this are refused (they are tiny by design).
const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// Typing frames one connection may send per second.
const EPHEMERAL_PER_SECOND: u32 = 5;

/// `GET /v1/ws?token=` (auth by headers, or `api_key` and `auth` query parameters for browsers).
pub async fn ws(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let params = Params::parse(uri.query())?;
    let actor = authenticate(&state.apps, &with_query_credentials(headers, &params), state.clock_skew_secs).await?;
    if actor.is_server {
        return Err(ApiError::bad_request("user_required", "a socket follows one user: connect with a user token"));
    }
    let fingerprint = fingerprint(&state.topic, &actor.app_id);
    let token = params
        .get("token")
        .map(|token| SyncToken::decode(token, &fingerprint))
        .transpose()
        .map_err(|error| ApiError::bad_request("invalid_token", error.to_string()))?;
    if !state.hub.is_ready() {
        return Err(ApiError::unavailable("realtime_unavailable", "this node is not following the log yet"));
    }
    if state.hub.connections() >= state.realtime.max_connections {
        return Err(ApiError::unavailable("too_many_connections", "this node holds all the sockets it may"));
    }
    let membership = membership(&state, &actor).await?;
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let connection = Socket { state, actor, fingerprint, socket };
        connection.run(membership, token).await;
    }))
}

/// Initial read buffer of a socket: small, it grows only for the rare large client frame.
const READ_BUFFER: usize = 1024;

/// Browsers cannot set headers on a WebSocket: `?api_key=…&auth=<token>` stand in for them.
fn with_query_credentials(mut headers: HeaderMap, params: &Params) -> HeaderMap {
    if !headers.contains_key(AUTHORIZATION)
        && let Some(token) = params.get("auth")
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(AUTHORIZATION, value);
    }
    if !headers.contains_key("x-api-key")
        && let Some(key) = params.get("api_key")
        && let Ok(value) = HeaderValue::from_str(key)
    {
        headers.insert("x-api-key", value);
    }
    headers
}

/// The user's membership spans and the projector's checkpoints, read in one snapshot.
async fn membership(state: &AppState, actor: &Actor) -> Result<Membership, ApiError> {
    let database = |error: sqlx::Error| ApiError::database(&error);
    let (mut transaction, applied) = crate::sync::snapshot(state).await?;
    let spans = sqlx::query!(
        "SELECT s.channel_id, c.kafka_partition, c.channel_type, s.from_offset, s.to_offset FROM member_spans s \
         JOIN channels c ON c.app_id = s.app_id AND c.channel_id = s.channel_id \
         WHERE s.app_id = $1 AND s.user_id = $2",
        actor.app_id.as_str(),
        actor.user_id.as_str(),
    )
    .fetch_all(&mut *transaction)
    .await
    .map_err(database)?;
    transaction.commit().await.map_err(database)?;
    let mut membership = Membership { applied, ..Membership::default() };
    for row in spans {
        let Ok(channel) = row.channel_id.parse::<ChannelId>() else { continue };
        if row.channel_type != "public" {
            membership.private.insert(channel.clone());
        }
        let (_, spans) = membership.channels.entry(channel).or_insert_with(|| (row.kafka_partition, Spans::default()));
        spans.push(row.from_offset, row.to_offset);
    }
    Ok(membership)
}

struct Socket {
    state: Arc<AppState>,
    actor: Actor,
    fingerprint: String,
    socket: WebSocket,
}

/// Why a connection ended early.
enum End {
    /// The peer went away or a write failed or timed out.
    Gone,
}

impl Socket {
    async fn run(mut self, membership: Membership, token: Option<SyncToken>) {
        let (queue, mut inbox) = mpsc::channel(self.state.realtime.queue_capacity);
        let started =
            self.state.hub.register(&self.actor.app_id, &self.actor.user_id, membership, token.as_ref(), queue);
        let started = match started {
            Ok(started) => started,
            Err(StartError::TokenTooOld) => {
                metrics::counter!(names::QUERY_WS_RESYNCS_TOTAL, "reason" => "token_too_old").increment(1);
                let token = token.unwrap_or_default().encode(&self.fingerprint);
                let _ = self.frame(&ServerFrame::Resync { reason: "token_too_old".to_owned(), token }).await;
                let _ = self.close(TRY_AGAIN_LATER, "resync").await;
                return;
            }
            Err(error @ (StartError::NotReady | StartError::ProjectionBehind)) => {
                let code = if error == StartError::NotReady { "realtime_unavailable" } else { "projection_behind" };
                let _ = self.frame(&ServerFrame::Error { code: code.to_owned(), message: error.to_string() }).await;
                let _ = self.close(TRY_AGAIN_LATER, "try again later").await;
                return;
            }
        };
        metrics::gauge!(names::QUERY_WS_CONNECTIONS).increment(1.0);
        let id = started.id;
        let (app, user) = (self.actor.app_id.clone(), self.actor.user_id.clone());
        let channels_at_start = self.state.hub.presence_channels(id);
        let overflow = Arc::clone(&started.overflow);
        let state = Arc::clone(&self.state);
        state
            .presence
            .connected(&app, &user, || publish_presence(&state, &app, &user, true, channels_at_start.clone()));
        let _ = self.serve(started, &mut inbox).await;
        // A connection dropped for overflow is gone from the hub already: tell the channels it started with.
        let channels = if overflow.happened.load(std::sync::atomic::Ordering::Acquire) {
            channels_at_start
        } else {
            state.hub.presence_channels(id)
        };
        state.hub.unregister(id);
        state.presence.disconnected(&app, &user, || publish_presence(&state, &app, &user, false, channels));
        metrics::gauge!(names::QUERY_WS_CONNECTIONS).decrement(1.0);
    }

    async fn serve(&mut self, started: crate::hub::Started, inbox: &mut mpsc::Receiver<Outbound>) -> Result<(), End> {
        let mut cursor = started.cursor;
        let connected = ServerFrame::Connected {
            connection_id: started.id.to_string(),
            user_id: self.actor.user_id.clone(),
            token: cursor.encode(&self.fingerprint),
        };
        self.frame(&connected).await?;
        for item in &started.replay {
            self.event(&mut cursor, item).await?;
        }
        let realtime = self.state.realtime.clone();
        let mut pings = tokio::time::interval(Duration::from_millis(realtime.ping_interval_ms));
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pings.tick().await;
        let mut last_heard = Instant::now();
        let mut last_frame = Instant::now();
        let mut sent_token = cursor.clone();
        let mut ephemeral_budget = (Instant::now(), 0u32);
        loop {
            tokio::select! {
                // An overflow first: once the hub dropped the queue, its end must not win over the resync.
                biased;
                () = started.overflow.notify.notified() => {
                    if started.overflow.happened.load(std::sync::atomic::Ordering::Acquire) {
                        metrics::counter!(names::QUERY_WS_RESYNCS_TOTAL, "reason" => "slow_consumer").increment(1);
                        let token = cursor.encode(&self.fingerprint);
                        self.frame(&ServerFrame::Resync { reason: "slow_consumer".to_owned(), token }).await?;
                        return self.close(TRY_AGAIN_LATER, "resync").await;
                    }
                }
                outbound = inbox.recv() => match outbound {
                    Some(Outbound::Event(item)) => {
                        self.event(&mut cursor, &item).await?;
                        last_frame = Instant::now();
                        sent_token = cursor.clone();
                    }
                    Some(Outbound::Ephemeral(json)) => {
                        self.text(format!(r#"{{"type":"ephemeral","event":{json}}}"#)).await?;
                    }
                    Some(Outbound::Head(head)) => {
                        for (partition, next) in head.partitions() {
                            cursor.advance(partition, next);
                        }
                        let idle = last_frame.elapsed() >= Duration::from_millis(realtime.heartbeat_interval_ms);
                        if idle && cursor != sent_token {
                            self.frame(&ServerFrame::Heartbeat { token: cursor.encode(&self.fingerprint) }).await?;
                            last_frame = Instant::now();
                            sent_token = cursor.clone();
                        }
                    }
                    None if started.overflow.happened.load(std::sync::atomic::Ordering::Acquire) => {}
                    None => return Ok(()),
                },
                incoming = self.socket.recv() => {
                    let Some(Ok(message)) = incoming else { return Err(End::Gone) };
                    last_heard = Instant::now();
                    match message {
                        Message::Text(text) => self.client_frame(text.as_str(), started.id, &mut ephemeral_budget).await?,
                        Message::Binary(_) => {
                            let refusal = ServerFrame::Error { code: "unsupported_frame".to_owned(), message: "send JSON text frames".to_owned() };
                            self.frame(&refusal).await?;
                        }
                        Message::Close(_) => return Ok(()),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                _ = pings.tick() => {
                    if last_heard.elapsed() >= Duration::from_millis(realtime.idle_timeout_ms) {
                        return self.close(TRY_AGAIN_LATER, "idle").await;
                    }
                    self.send(Message::Ping(Default::default())).await?;
                }
            }
        }
    }

    /// Sends an event frame unless the cursor already covers it (a client resuming ahead of this node).
    async fn event(&mut self, cursor: &mut SyncToken, item: &Item) -> Result<(), End> {
        let position = chatsdk_client::Position { partition: item.partition, offset: item.offset };
        if cursor.covers(position) {
            return Ok(());
        }
        cursor.advance(item.partition, item.offset + 1);
        let Some(event) = &item.event else { return Ok(()) };
        let token = cursor.encode(&self.fingerprint);
        let frame = format!(
            r#"{{"type":"event","position":{{"partition":{},"offset":{}}},"token":"{token}","event":{}}}"#,
            item.partition, item.offset, event.json
        );
        metrics::counter!(names::QUERY_WS_DELIVERIES_TOTAL).increment(1);
        self.text(frame).await
    }

    async fn client_frame(&mut self, text: &str, id: u64, budget: &mut (Instant, u32)) -> Result<(), End> {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(error) => {
                let refusal = ServerFrame::Error { code: "invalid_frame".to_owned(), message: error.to_string() };
                return self.frame(&refusal).await;
            }
        };
        let (channel, start) = match frame {
            ClientFrame::Ping => return self.frame(&ServerFrame::Pong).await,
            ClientFrame::TypingStart { channel_id } => (channel_id, true),
            ClientFrame::TypingStop { channel_id } => (channel_id, false),
        };
        if self.actor.require_scope(WRITE_SCOPE).is_err() {
            let refusal = ServerFrame::Error {
                code: "missing_scope".to_owned(),
                message: format!("typing needs the {WRITE_SCOPE} scope"),
            };
            return self.frame(&refusal).await;
        }
        if budget.0.elapsed() >= Duration::from_secs(1) {
            *budget = (Instant::now(), 0);
        }
        budget.1 += 1;
        if budget.1 > EPHEMERAL_PER_SECOND {
            let refusal =
                ServerFrame::Error { code: "rate_limited".to_owned(), message: "too many typing frames".to_owned() };
            return self.frame(&refusal).await;
        }
        if !self.state.hub.is_member(id, &channel) {
            let refusal = ServerFrame::Error {
                code: "not_a_member".to_owned(),
                message: format!("you are not a member of {channel}"),
            };
            return self.frame(&refusal).await;
        }
        publish_typing(&self.state, &self.actor.app_id, &channel, &self.actor.user_id, start);
        Ok(())
    }

    async fn frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        let text = serde_json::to_string(frame).map_err(|_| End::Gone)?;
        self.text(text).await
    }

    async fn text(&mut self, text: String) -> Result<(), End> {
        self.send(Message::Text(Utf8Bytes::from(text))).await
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        let timeout = Duration::from_millis(self.state.realtime.write_timeout_ms);
        match tokio::time::timeout(timeout, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> Result<(), End> {
        self.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await
    }
}

/// Produces a typing indicator to the ephemeral topic (every node delivers it to its sockets). Best
/// effort: it is not part of the log.
fn publish_typing(state: &Arc<AppState>, app: &AppId, channel: &ChannelId, user: &UserId, start: bool) {
    let typing = Typing {
        kind: if start { "typing.start" } else { "typing.stop" }.to_owned(),
        app_id: app.clone(),
        channel_id: channel.clone(),
        user_id: user.clone(),
        expires_in_ms: start.then_some(state.realtime.typing_ttl_ms),
        at: chrono::Utc::now(),
    };
    if let Ok(payload) = serde_json::to_string(&typing) {
        publish(state, chatsdk_schemas::channel_key(app.as_str(), channel.as_str()), payload);
    }
}

/// Produces a user's presence change on this node, naming the channels whose members hear of it.
fn publish_presence(state: &Arc<AppState>, app: &AppId, user: &UserId, online: bool, mut channels: Vec<ChannelId>) {
    channels.truncate(presence::MAX_CHANNELS);
    let change = presence::Change {
        kind: if online { "presence.online" } else { "presence.offline" }.to_owned(),
        node: state.node_id.clone(),
        app_id: app.clone(),
        user_id: user.clone(),
        channels,
        at: chrono::Utc::now(),
    };
    if let Ok(payload) = serde_json::to_string(&change) {
        publish(state, format!("{app}:@{user}"), payload);
    }
}

/// Every `realtime.presence_interval_ms`: the users this node holds (so nodes that started since learn
/// them, and a node that fell silent is noticed), and users of silent nodes go offline.
pub async fn presence_loop(state: Arc<AppState>) {
    let interval = Duration::from_millis(state.realtime.presence_interval_ms);
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let users = state.presence.local_users();
        for chunk in users.chunks(presence::ALIVE_CHUNK) {
            let alive = presence::Alive {
                kind: "presence.alive".to_owned(),
                node: state.node_id.clone(),
                users: chunk.to_vec(),
                at: chrono::Utc::now(),
            };
            if let Ok(payload) = serde_json::to_string(&alive) {
                publish(&state, format!("@alive:{}", state.node_id), payload);
            }
        }
        for mut transition in state.presence.expire(interval * 3) {
            if transition.channels.is_empty() {
                // Learnt from `presence.alive` only (online before this node started): whom to tell is in the
                // read model.
                transition.channels = presence_channels_of(&state, &transition.app, &transition.user).await;
            }
            crate::tail::tell_presence(&state.hub, &transition);
        }
    }
}

/// Enqueues an ephemeral record now (so records enqueued in order reach the topic in order: one key, one
/// partition, an idempotent producer) and waits for its delivery in the background. Best effort.
/// A user's non-public channels from the read model (for a presence change that named none).
async fn presence_channels_of(state: &AppState, app: &AppId, user: &UserId) -> Vec<ChannelId> {
    let rows = sqlx::query_scalar!(
        "SELECT s.channel_id FROM member_spans s \
         JOIN channels c ON c.app_id = s.app_id AND c.channel_id = s.channel_id \
         WHERE s.app_id = $1 AND s.user_id = $2 AND s.to_offset IS NULL AND c.channel_type <> 'public' LIMIT $3",
        app.as_str(),
        user.as_str(),
        presence::MAX_CHANNELS as i64,
    )
    .fetch_all(&state.pool)
    .await;
    rows.unwrap_or_default().into_iter().filter_map(|channel| channel.parse().ok()).collect()
}

fn publish(state: &Arc<AppState>, key: String, payload: String) {
    let record = FutureRecord::to(&state.ephemeral_topic).key(&key).payload(&payload);
    match state.producer.0.send_result(record) {
        Ok(delivery) => {
            tokio::spawn(async move {
                if let Ok(Err((error, _))) = delivery.await {
                    tracing::debug!(error = %error, "an ephemeral event was not delivered");
                }
            });
        }
        Err((error, _)) => tracing::debug!(error = %error, "an ephemeral event was not published"),
    }
}

/// `POST /v1/channels/{channel_id}/typing` (start) and `DELETE` (stop): for clients without a socket.
pub async fn typing_start(
    State(state): State<Arc<AppState>>,
    read: Read,
    Path(channel): Path<String>,
) -> Result<StatusCode, ApiError> {
    typing(state, read.actor, channel, true).await
}

pub async fn typing_stop(
    State(state): State<Arc<AppState>>,
    read: Read,
    Path(channel): Path<String>,
) -> Result<StatusCode, ApiError> {
    typing(state, read.actor, channel, false).await
}

async fn typing(state: Arc<AppState>, actor: Actor, channel: String, start: bool) -> Result<StatusCode, ApiError> {
    let channel = path_id::<ChannelId>("channel_id", &channel)?;
    if actor.is_server {
        return Err(ApiError::bad_request("user_required", "typing is a user's: call it with a user token"));
    }
    actor.require_scope(WRITE_SCOPE)?;
    let access = reader(&state.pool, &actor, &channel).await?;
    if access.role.is_none() {
        return Err(ApiError::forbidden("not_a_member", format!("you are not a member of {channel}")));
    }
    publish_typing(&state, &actor.app_id, &channel, &actor.user_id, start);
    Ok(StatusCode::NO_CONTENT)
}
