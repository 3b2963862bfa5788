//! Incremental sync: `GET /v1/sync?token=` returns every event after the token in the channels the caller
//! belonged to at each event's offset, from the projector's change feed, and the next token.
//!
//! A sync token is `s1.` + base64url of `<fingerprint>|<partition>:<next offset>,…`: for each partition, every
//! event below the offset is covered. The fingerprint binds a token to its topic and app, so a token of
//! another deployment or app is refused (400), not misread. WebSocket frames carry the same tokens.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatsdk_client::Position;
use chatsdk_client::views::{LoggedEvent, SyncPage};
use chatsdk_platform::api::error::ApiError;
use chatsdk_platform::api::progress::checkpoints;
use chatsdk_schemas::ids::AppId;
use sha2::{Digest, Sha256};
use sqlx::{Postgres, Transaction};

use crate::AppState;
use crate::reads::channel_page;
use crate::request::{Params, Read};

const PREFIX: &str = "s1.";
/// More partitions than any topic of ours has; bounds what a token can make us allocate.
const MAX_PARTITIONS: usize = 4_096;
pub const MAX_SYNC_PAGE: i64 = 1_000;

/// Where a client stands in the log: the next offset to deliver per partition (absent: from the start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncToken {
    next: BTreeMap<i32, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a sync token (expected s1.…)")]
    Format,
    #[error("the token belongs to another app or deployment")]
    Foreign,
}

/// What a token is bound to: the topic and the app.
pub fn fingerprint(topic: &str, app: &AppId) -> String {
    let digest = Sha256::new().chain_update(topic.as_bytes()).chain_update([0]).chain_update(app.as_str()).finalize();
    digest.iter().take(6).map(|byte| format!("{byte:02x}")).collect()
}

impl SyncToken {
    pub fn next(&self, partition: i32) -> i64 {
        self.next.get(&partition).copied().unwrap_or(0)
    }

    /// Covers `partition` below `next` (never moves back).
    pub fn advance(&mut self, partition: i32, next: i64) {
        let entry = self.next.entry(partition).or_insert(0);
        *entry = (*entry).max(next);
    }

    /// Whether the token already covers the event at `position`.
    pub fn covers(&self, position: Position) -> bool {
        position.offset < self.next(position.partition)
    }

    pub fn partitions(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.next.iter().map(|(partition, next)| (*partition, *next))
    }

    pub fn encode(&self, fingerprint: &str) -> String {
        let body: Vec<String> = self.next.iter().map(|(partition, next)| format!("{partition}:{next}")).collect();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(format!("{fingerprint}|{}", body.join(","))))
    }

    pub fn decode(token: &str, fingerprint: &str) -> Result<Self, TokenError> {
        let encoded = token.strip_prefix(PREFIX).ok_or(TokenError::Format)?;
        if encoded.len() > 64 * 1024 {
            return Err(TokenError::Format);
        }
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| TokenError::Format)?;
        let text = String::from_utf8(bytes).map_err(|_| TokenError::Format)?;
        let (given, body) = text.split_once('|').ok_or(TokenError::Format)?;
        if given != fingerprint {
            return Err(TokenError::Foreign);
        }
        let mut next = BTreeMap::new();
        for pair in body.split(',').filter(|pair| !pair.is_empty()) {
            let (partition, offset) = pair.split_once(':').ok_or(TokenError::Format)?;
            let partition: i32 = partition.parse().map_err(|_| TokenError::Format)?;
            let offset: i64 = offset.parse().map_err(|_| TokenError::Format)?;
            if partition < 0 || offset < 0 || next.insert(partition, offset).is_some() || next.len() > MAX_PARTITIONS {
                return Err(TokenError::Format);
            }
        }
        Ok(Self { next })
    }
}

impl fmt::Display for SyncToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.next.iter()).finish()
    }
}

/// `GET /v1/sync?token=&limit=`. Without a token: a token for now and the caller's channels.
pub async fn sync(State(state): State<Arc<AppState>>, read: Read) -> Result<Json<SyncPage>, ApiError> {
    let actor = &read.actor;
    if actor.is_server {
        return Err(ApiError::bad_request(
            "user_required",
            "sync follows one user's channels: call it with a user token",
        ));
    }
    let fingerprint = fingerprint(&state.topic, &actor.app_id);
    let limit = read.params.limit(500, MAX_SYNC_PAGE)?;
    let Some(token) = read.params.get("token") else {
        // The channel list is read after the checkpoints: it may already show events after the token,
        // which the client then receives again (applying an event twice to newer state changes nothing).
        let (transaction, now) = snapshot(&state).await?;
        drop(transaction);
        let channels = channel_page(&state.pool, actor, &actor.user_id, &Params::default()).await?;
        return Ok(Json(SyncPage {
            events: Vec::new(),
            next_token: now.encode(&fingerprint),
            has_more: false,
            channels: Some(channels),
        }));
    };
    let token = SyncToken::decode(token, &fingerprint)
        .map_err(|error| ApiError::bad_request("invalid_token", error.to_string()))?;
    let (events, next, has_more) = changes(&state, actor, &token, limit).await?;
    metrics::counter!(chatsdk_platform::metrics::QUERY_SYNC_EVENTS_TOTAL).increment(events.len() as u64);
    Ok(Json(SyncPage { events, next_token: next.encode(&fingerprint), has_more, channels: None }))
}

/// A read-only `REPEATABLE READ` transaction and, read in it, the projector's checkpoints as a token:
/// everything else read in the transaction reflects exactly those.
pub async fn snapshot(state: &AppState) -> Result<(Transaction<'static, Postgres>, SyncToken), ApiError> {
    let database = |error: sqlx::Error| ApiError::database(&error);
    let mut transaction = state.pool.begin().await.map_err(database)?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *transaction)
        .await
        .map_err(database)?;
    let rows = checkpoints(&mut *transaction, &state.projector_consumer, &state.topic).await.map_err(database)?;
    let mut applied = SyncToken::default();
    for (partition, next_offset) in rows {
        applied.advance(partition, next_offset);
    }
    Ok((transaction, applied))
}

/// Events after `token` visible to the caller, at most `limit`, and the token after them. The checkpoints
/// and the feed are read in one snapshot, so the next token never skips an event committed meanwhile.
async fn changes(
    state: &AppState,
    actor: &chatsdk_platform::api::auth::Actor,
    token: &SyncToken,
    limit: i64,
) -> Result<(Vec<LoggedEvent>, SyncToken, bool), ApiError> {
    let database = |error: sqlx::Error| ApiError::database(&error);
    let (mut transaction, applied) = snapshot(state).await?;
    // Every partition the projector knows, with where this client stands in it.
    let (partitions, starts): (Vec<i32>, Vec<i64>) =
        applied.partitions().map(|(partition, _)| (partition, token.next(partition))).unzip();
    // Per channel the caller belonged to: its events after both the span's start and the token's offset
    // in the channel's partition, at most `limit + 1` of them (an index range scan); then the first
    // `limit + 1` overall in (partition, offset) order.
    let events = sqlx::query!(
        r#"SELECT e.kafka_partition AS "kafka_partition!", e.kafka_offset AS "kafka_offset!", e.event AS "event!"
           FROM member_spans s
           JOIN channels c ON c.app_id = s.app_id AND c.channel_id = s.channel_id
           JOIN UNNEST($3::int[], $4::bigint[]) AS t(partition, start) ON t.partition = c.kafka_partition
           CROSS JOIN LATERAL (
               SELECT f.kafka_partition, f.kafka_offset, f.event
               FROM channel_events f
               WHERE f.app_id = s.app_id AND f.channel_id = s.channel_id
                 AND f.kafka_offset >= GREATEST(s.from_offset, t.start)
                 AND (s.to_offset IS NULL OR f.kafka_offset <= s.to_offset)
               ORDER BY f.kafka_offset
               LIMIT $5
           ) e
           WHERE s.app_id = $1 AND s.user_id = $2 AND (s.to_offset IS NULL OR s.to_offset >= t.start)
           ORDER BY e.kafka_partition, e.kafka_offset
           LIMIT $5"#,
        actor.app_id.as_str(),
        actor.user_id.as_str(),
        &partitions,
        &starts,
        limit + 1,
    )
    .fetch_all(&mut *transaction)
    .await
    .map_err(database)?;
    transaction.commit().await.map_err(database)?;

    let has_more = events.len() as i64 > limit;
    let mut events = events;
    events.truncate(limit as usize);
    let mut next = token.clone();
    match (has_more, events.last()) {
        (true, Some(last)) => {
            // Partitions before the last one were read to the end; the last one up to its last event.
            for (partition, applied_next) in
                applied.partitions().filter(|(partition, _)| *partition < last.kafka_partition)
            {
                next.advance(partition, applied_next);
            }
            next.advance(last.kafka_partition, last.kafka_offset + 1);
        }
        _ => {
            for (partition, applied_next) in applied.partitions() {
                next.advance(partition, applied_next);
            }
        }
    }
    let events = events
        .into_iter()
        .map(|row| LoggedEvent {
            position: Position { partition: row.kafka_partition, offset: row.kafka_offset },
            event: row.event,
        })
        .collect();
    Ok((events, next, has_more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppId {
        name.parse().unwrap()
    }

    #[test]
    fn tokens_round_trip_and_refuse_garbage_and_foreign_ones() {
        let print = fingerprint("chatsdk.channel-events.v1", &app("acme"));
        let mut token = SyncToken::default();
        token.advance(0, 17);
        token.advance(3, 5);
        token.advance(3, 2);
        let encoded = token.encode(&print);
        assert!(encoded.starts_with("s1."));
        let decoded = SyncToken::decode(&encoded, &print).unwrap();
        assert_eq!(decoded, token);
        assert_eq!((decoded.next(3), decoded.next(9)), (5, 0), "advance never moves back; absent is 0");

        let other_app = fingerprint("chatsdk.channel-events.v1", &app("globex"));
        let other_topic = fingerprint("chatsdk.channel-events.v2", &app("acme"));
        assert_eq!(SyncToken::decode(&encoded, &other_app), Err(TokenError::Foreign));
        assert_eq!(SyncToken::decode(&encoded, &other_topic), Err(TokenError::Foreign));
        for garbage in ["", "s1.", "s2.abc", "p1.MDox", "s1.!!!", "s1.bm8gYmFy"] {
            assert_eq!(SyncToken::decode(garbage, &print), Err(TokenError::Format), "{garbage}");
        }
        let negative = format!("s1.{}", URL_SAFE_NO_PAD.encode(format!("{print}|0:-1")));
        assert_eq!(SyncToken::decode(&negative, &print), Err(TokenError::Format));
        let repeated = format!("s1.{}", URL_SAFE_NO_PAD.encode(format!("{print}|0:1,0:2")));
        assert_eq!(SyncToken::decode(&repeated, &print), Err(TokenError::Format));
        assert!(token.covers(Position { partition: 0, offset: 16 }));
        assert!(!token.covers(Position { partition: 0, offset: 17 }));
    }
}
