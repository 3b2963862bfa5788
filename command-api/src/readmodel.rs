//! What authorization reads from the projector's read models: channels, memberships, messages, and how far
//! the projector has come. Reads only; channel and membership state is cached for a short TTL, and a
//! command carrying `min_position` first waits for the projector, then reads fresh.

use std::sync::Arc;
use std::time::Duration;

use chatsdk_client::SessionPosition;
use chatsdk_schemas::events::{ChannelType, Role};
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UploadId, UserId};
use sqlx::PgPool;

use chatsdk_platform::api::cache::TtlCache;
use chatsdk_platform::api::error::ApiError;
use chatsdk_platform::api::parse::enum_named;
use chatsdk_platform::api::progress::Progress;

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

#[derive(Debug)]
pub struct ReadModel {
    pool: PgPool,
    max_wait: Duration,
    progress: Arc<Progress>,
    channels: TtlCache<(AppId, ChannelId), Snapshot<ChannelState>>,
    members: TtlCache<(AppId, ChannelId, UserId), Snapshot<Role>>,
}

/// A cached answer and the projector's next offset in its partition just before it was read: it reflects
/// every event below that offset.
#[derive(Debug, Clone)]
struct Snapshot<T> {
    applied: i64,
    value: Option<T>,
}

/// What one command needs to know about its channel, in one round trip.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub channel: Option<ChannelState>,
    /// The caller's role if they are an active member (`None` also when no user was asked about).
    pub role: Option<Role>,
    /// The message asked about, if it exists (in any channel of the app).
    pub message: Option<MessageState>,
}

/// The offset a position set requires in `partition`, if any.
fn required(min: Option<&SessionPosition>, partition: i32) -> Option<i64> {
    min.and_then(|min| min.positions().find(|position| position.partition == partition)).map(|position| position.offset)
}

impl<T: Clone> Snapshot<T> {
    /// Usable for a command that must see `min`: a positive answer read after the projector passed the
    /// channel's required offset. Negative answers are always re-read: a new channel or membership must not
    /// be refused for a cache lifetime.
    fn usable(&self, partition: i32, min: Option<&SessionPosition>) -> Option<T> {
        let value = self.value.clone()?;
        match required(min, partition) {
            Some(offset) if self.applied <= offset => None,
            _ => Some(value),
        }
    }
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
        let progress = Progress::new(pool.clone(), consumer, topic);
        Self { pool, max_wait, progress, channels: TtlCache::new(ttl, capacity), members: TtlCache::new(ttl, capacity) }
    }

    fn applied(&self, partition: i32) -> i64 {
        self.progress.applied().get(&partition).copied().unwrap_or(0)
    }

    /// The channel, the caller's role and a message, from the caches where they reflect `min`, else from
    /// the database in one query.
    pub async fn access(
        &self,
        app: &AppId,
        channel: &ChannelId,
        user: Option<&UserId>,
        message: Option<MessageId>,
        min: Option<&SessionPosition>,
    ) -> Result<Access, ApiError> {
        let channel_key = (app.clone(), channel.clone());
        let cached_channel = self.channels.get(&channel_key).and_then(|snapshot| {
            let partition = snapshot.value.as_ref()?.partition;
            snapshot.usable(partition, min)
        });
        if let Some(state) = cached_channel {
            let member_key = user.map(|user| (app.clone(), channel.clone(), user.clone()));
            let cached_role = match &member_key {
                None => Some(None),
                Some(key) => self.members.get(key).and_then(|snapshot| snapshot.usable(state.partition, min)).map(Some),
            };
            if let Some(role) = cached_role {
                let message = match message {
                    Some(message) => self.message(app, message).await?,
                    None => None,
                };
                return Ok(Access { channel: Some(state), role, message });
            }
        }
        self.load(app, channel, user, message).await
    }

    /// Reads the channel, the user's role and the message in one query, and caches the first two.
    async fn load(
        &self,
        app: &AppId,
        channel: &ChannelId,
        user: Option<&UserId>,
        message: Option<MessageId>,
    ) -> Result<Access, ApiError> {
        let applied_before = self.progress.applied();
        let row = sqlx::query!(
            r#"SELECT c.channel_type, c.archived_at IS NOT NULL AS "archived!", c.kafka_partition, c.last_offset,
                      m.role AS "role?",
                      msg.channel_id AS "message_channel?", msg.author_id AS "message_author?",
                      msg.parent_id IS NOT NULL AS "message_is_reply?", msg.deleted_at IS NOT NULL AS "message_deleted?",
                      msg.purged AS "message_purged?", msg.kafka_partition AS "message_partition?",
                      msg.kafka_offset AS "message_offset?"
               FROM channels c
               LEFT JOIN members m
                 ON m.app_id = c.app_id AND m.channel_id = c.channel_id AND m.user_id = $3 AND m.left_at IS NULL
               LEFT JOIN messages msg ON msg.app_id = c.app_id AND msg.message_id = $4
               WHERE c.app_id = $1 AND c.channel_id = $2"#,
            app.as_str(),
            channel.as_str(),
            user.map(UserId::as_str),
            message.map(|message| *message.as_uuid()),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| ApiError::database(&error))?;
        let Some(row) = row else {
            self.channels.put((app.clone(), channel.clone()), Snapshot { applied: 0, value: None });
            return Ok(Access::default());
        };
        let applied = applied_before.get(&row.kafka_partition).copied().unwrap_or(0);
        let state = enum_named::<ChannelType>(&row.channel_type).map(|channel_type| ChannelState {
            channel_type,
            archived: row.archived,
            partition: row.kafka_partition,
            last_offset: row.last_offset,
        });
        let role = row.role.as_deref().and_then(enum_named::<Role>);
        self.channels.put((app.clone(), channel.clone()), Snapshot { applied, value: state.clone() });
        if let Some(user) = user {
            self.members.put((app.clone(), channel.clone(), user.clone()), Snapshot { applied, value: role });
        }
        let message = match (row.message_channel, row.message_author, row.message_partition, row.message_offset) {
            (Some(channel_id), Some(author_id), Some(partition), Some(offset)) => Some(MessageState {
                channel_id,
                author_id,
                is_reply: row.message_is_reply.unwrap_or(false),
                deleted: row.message_deleted.unwrap_or(false),
                purged: row.message_purged.unwrap_or(false),
                partition,
                offset,
            }),
            _ => None,
        };
        Ok(Access { channel: state, role, message })
    }

    /// The partition of a channel this node has seen, if any (without a query).
    pub fn known_partition(&self, app: &AppId, channel: &ChannelId) -> Option<i32> {
        let snapshot = self.channels.get(&(app.clone(), channel.clone()))?;
        snapshot.value.map(|state| state.partition)
    }

    /// Another user's role in a channel whose state the caller loaded (for member commands).
    pub async fn role(
        &self,
        app: &AppId,
        channel: &ChannelId,
        partition: i32,
        user: &UserId,
        min: Option<&SessionPosition>,
    ) -> Result<Option<Role>, ApiError> {
        let key = (app.clone(), channel.clone(), user.clone());
        if let Some(role) = self.members.get(&key).and_then(|snapshot| snapshot.usable(partition, min)) {
            return Ok(Some(role));
        }
        let applied = self.applied(partition);
        let row = sqlx::query_scalar!(
            "SELECT role FROM members WHERE app_id = $1 AND channel_id = $2 AND user_id = $3 AND left_at IS NULL",
            app.as_str(),
            channel.as_str(),
            user.as_str(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| ApiError::database(&error))?;
        let role = row.as_deref().and_then(enum_named::<Role>);
        self.members.put(key, Snapshot { applied, value: role });
        Ok(role)
    }

    /// Whether a message of the app carries this upload (the projector has applied its completion).
    pub async fn upload_attached(&self, app: &AppId, upload: UploadId) -> Result<bool, ApiError> {
        sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM messages
                              WHERE app_id = $1 AND attachments @> jsonb_build_array(jsonb_build_object('upload_id', $2::text)))
               AS "attached!""#,
            app.as_str(),
            upload.to_string(),
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|error| ApiError::database(&error))
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

    /// Waits until the projector has applied every position in `target` (`Ok(false)` when the bound passed).
    pub async fn wait_for(&self, target: &SessionPosition) -> Result<bool, ApiError> {
        self.progress.wait_for(target, self.max_wait).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> SessionPosition {
        let mut position = SessionPosition::default();
        position.observe(chatsdk_client::Position { partition, offset });
        position
    }

    #[test]
    fn a_cached_answer_serves_a_position_only_if_it_was_read_after_the_projector_passed_it() {
        // Read when the projector's next offset in partition 3 was 100: it reflects offsets 0..=99.
        let snapshot = Snapshot { applied: 100, value: Some(Role::Admin) };
        assert_eq!(snapshot.usable(3, None), Some(Role::Admin));
        assert_eq!(snapshot.usable(3, Some(&at(3, 99))), Some(Role::Admin));
        assert_eq!(snapshot.usable(3, Some(&at(3, 100))), None, "offset 100 may have changed it");
        assert_eq!(snapshot.usable(3, Some(&at(4, 5_000))), Some(Role::Admin), "other partitions do not matter");
        let negative: Snapshot<Role> = Snapshot { applied: 100, value: None };
        assert_eq!(negative.usable(3, None), None, "a negative answer is always re-read");
    }
}
