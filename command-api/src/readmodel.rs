//! What authorization reads from the projector's read models: channels, memberships, messages, and how far
//! the projector has come. Reads only; channel and membership state is cached for a short TTL, and a
//! command carrying `min_position` first waits for the projector, then reads fresh.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chatsdk_client::SessionPosition;
use chatsdk_schemas::events::{ChannelType, Role};
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use sqlx::PgPool;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    pub channel_type: ChannelType,
    pub archived: bool,
    pub partition: i32,
    /// The offset of the last event applied to the channel.
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    pub channel_id: String,
    pub author_id: String,
    pub is_reply: bool,
    pub deleted: bool,
    pub purged: bool,
    pub partition: i32,
    pub offset: i64,
}

/// A small TTL cache; when full, expired entries go first, then everything.
#[derive(Debug)]
struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|(loaded, _)| loaded.elapsed() < self.ttl).map(|(_, value)| value.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (loaded, _)| loaded.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[derive(Debug)]
pub struct ReadModel {
    pool: PgPool,
    consumer: String,
    topic: String,
    max_wait: Duration,
    channels: TtlCache<(AppId, ChannelId), Option<ChannelState>>,
    members: TtlCache<(AppId, ChannelId, UserId), Option<Role>>,
}

/// How the read is allowed to be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// From the cache when it has the entry.
    Cached,
    /// From the database (after a `min_position` wait, or to re-check a surprising answer).
    Fresh,
}

impl ReadModel {
    pub fn new(
        pool: PgPool,
        consumer: String,
        topic: String,
        ttl: Duration,
        capacity: usize,
        max_wait: Duration,
    ) -> Self {
        Self {
            pool,
            consumer,
            topic,
            max_wait,
            channels: TtlCache::new(ttl, capacity),
            members: TtlCache::new(ttl, capacity),
        }
    }

    pub async fn channel(
        &self,
        app: &AppId,
        channel: &ChannelId,
        freshness: Freshness,
    ) -> Result<Option<ChannelState>, ApiError> {
        let key = (app.clone(), channel.clone());
        if freshness == Freshness::Cached
            && let Some(state) = self.channels.get(&key)
        {
            return Ok(state);
        }
        let row = sqlx::query!(
            r#"SELECT channel_type, archived_at IS NOT NULL AS "archived!", kafka_partition, last_offset
               FROM channels WHERE app_id = $1 AND channel_id = $2"#,
            app.as_str(),
            channel.as_str(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| ApiError::database(&error))?;
        let state = row.and_then(|row| {
            Some(ChannelState {
                channel_type: serde_json::from_value(serde_json::Value::String(row.channel_type)).ok()?,
                archived: row.archived,
                partition: row.kafka_partition,
                last_offset: row.last_offset,
            })
        });
        self.channels.put(key, state.clone());
        Ok(state)
    }

    /// The user's role if they are an active member.
    pub async fn role(
        &self,
        app: &AppId,
        channel: &ChannelId,
        user: &UserId,
        freshness: Freshness,
    ) -> Result<Option<Role>, ApiError> {
        let key = (app.clone(), channel.clone(), user.clone());
        if freshness == Freshness::Cached
            && let Some(role) = self.members.get(&key)
        {
            return Ok(role);
        }
        let row = sqlx::query_scalar!(
            "SELECT role FROM members WHERE app_id = $1 AND channel_id = $2 AND user_id = $3 AND left_at IS NULL",
            app.as_str(),
            channel.as_str(),
            user.as_str(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| ApiError::database(&error))?;
        let role = row.and_then(|role| serde_json::from_value(serde_json::Value::String(role)).ok());
        self.members.put(key, role);
        Ok(role)
    }

    /// A message, uncached (edits and deletes must see the latest state the projector has).
    pub async fn message(&self, app: &AppId, message: MessageId) -> Result<Option<MessageState>, ApiError> {
        let row = sqlx::query!(
            r#"SELECT channel_id, author_id, parent_id IS NOT NULL AS "is_reply!", deleted_at IS NOT NULL AS "deleted!",
                      purged, kafka_partition, kafka_offset
               FROM messages WHERE app_id = $1 AND message_id = $2"#,
            app.as_str(),
            message.as_uuid(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| ApiError::database(&error))?;
        Ok(row.map(|row| MessageState {
            channel_id: row.channel_id,
            author_id: row.author_id,
            is_reply: row.is_reply,
            deleted: row.deleted,
            purged: row.purged,
            partition: row.kafka_partition,
            offset: row.kafka_offset,
        }))
    }

    /// Waits until the projector has applied every position in `target`. `Ok(false)` when the bound passed
    /// first.
    pub async fn wait_for(&self, target: &SessionPosition) -> Result<bool, ApiError> {
        let wanted: Vec<(i32, i64)> =
            target.positions().map(|position| (position.partition, position.offset)).collect();
        if wanted.is_empty() {
            return Ok(true);
        }
        let partitions: Vec<i32> = wanted.iter().map(|(partition, _)| *partition).collect();
        let deadline = Instant::now() + self.max_wait;
        let mut pause = Duration::from_millis(2);
        loop {
            let rows = sqlx::query!(
                "SELECT partition, next_offset FROM projector_checkpoints
                 WHERE consumer = $1 AND topic = $2 AND partition = ANY($3)",
                self.consumer,
                self.topic,
                &partitions,
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|error| ApiError::database(&error))?;
            let applied: HashMap<i32, i64> = rows.into_iter().map(|row| (row.partition, row.next_offset)).collect();
            let reached = wanted
                .iter()
                .all(|(partition, offset)| applied.get(partition).is_some_and(|next_offset| next_offset > offset));
            if reached {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_expire_and_a_full_cache_makes_room() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.put(1, "one");
        cache.put(2, "two");
        assert_eq!(cache.get(&1), Some("one"));
        cache.put(3, "three");
        assert_eq!(cache.get(&3), Some("three"));
        assert!(cache.entries.lock().map(|entries| entries.len()).unwrap_or(0) <= 2);

        let expired = TtlCache::new(Duration::ZERO, 10);
        expired.put(1, "one");
        assert_eq!(expired.get(&1), None);
    }
}
