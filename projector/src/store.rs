//! PostgreSQL side of the projection: load the rows a batch needs (one query per table), write the changed
//! rows back (one bulk `UNNEST` statement per table and kind of change), and advance the partition's
//! checkpoint in the same transaction, guarded by the offset the writer expects.

use std::collections::BTreeMap;

use anyhow::Context;
use chatsdk_schemas::events::{Attachment, ChannelType, Event, Role};
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::model::{ChannelRow, MemberRow, MessageRow, Needs, PinRow, PositionedEvent, ReadModel, Violation};

/// What one applied batch did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchOutcome {
    /// Events folded into the read models.
    pub applied: usize,
    /// Events that broke an invariant, with their offsets: nothing of them was written.
    pub violations: Vec<(i64, Violation)>,
    /// Rows written per table.
    pub changes: BTreeMap<&'static str, usize>,
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The stored checkpoint is not where this writer expected it: another owner of the partition moved it
    /// (after a rebalance) or the batch does not start at the checkpoint. Nothing was written; re-read the
    /// checkpoint and seek there.
    #[error("checkpoint of partition {partition} is not at {expected}: another owner moved it")]
    Stale { partition: i32, expected: i64 },
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

/// The stored checkpoint: the next offset to apply (0 when the partition was never applied).
pub async fn checkpoint(pool: &PgPool, consumer: &str, topic: &str, partition: i32) -> anyhow::Result<i64> {
    let stored: Option<i64> = sqlx::query_scalar!(
        "SELECT next_offset FROM projector_checkpoints WHERE consumer = $1 AND topic = $2 AND partition = $3",
        consumer,
        topic,
        partition
    )
    .fetch_optional(pool)
    .await
    .context("reading the checkpoint")?;
    Ok(stored.unwrap_or(0))
}

/// Applies `events` (one partition, consecutive offsets from `expected_next`) and moves the checkpoint to
/// after the last one, in one transaction.
pub async fn apply_batch(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    partition: i32,
    expected_next: i64,
    events: &[PositionedEvent],
) -> Result<BatchOutcome, BatchError> {
    let Some(last) = events.last() else { return Ok(BatchOutcome::default()) };
    let next = last.offset + 1;
    begin_batch(pool, consumer, topic, partition, expected_next..next, events).await?.commit().await
}

/// A batch folded and written inside its still-open transaction: the caller sends what must leave the
/// process first (dead letters), then commits. Dropping it rolls everything back.
#[derive(Debug)]
pub struct PreparedBatch {
    transaction: sqlx::Transaction<'static, sqlx::Postgres>,
    outcome: BatchOutcome,
}

impl PreparedBatch {
    pub fn outcome(&self) -> &BatchOutcome {
        &self.outcome
    }

    pub async fn commit(self) -> Result<BatchOutcome, BatchError> {
        self.transaction.commit().await.context("committing the batch")?;
        Ok(self.outcome)
    }
}

/// Opens the batch transaction covering the offsets `range` of `partition`: moves the checkpoint from
/// `range.start` to `range.end` first (taking the row lock, so a concurrent writer of the partition waits,
/// then finds the checkpoint moved and fails as stale), then loads, folds and writes `events` — the decodable
/// records of the range, in offset order. Records of the range missing from `events` (undecodable) are
/// skipped by the checkpoint all the same.
pub async fn begin_batch(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    partition: i32,
    range: std::ops::Range<i64>,
    events: &[PositionedEvent],
) -> Result<PreparedBatch, BatchError> {
    debug_assert!(events.iter().all(|event| event.partition == partition), "a batch holds one partition");
    debug_assert!(events.windows(2).all(|pair| pair[0].offset < pair[1].offset), "events in offset order");
    debug_assert!(events.iter().all(|event| range.contains(&event.offset)), "events inside the batch range");
    let mut transaction = pool.begin().await.context("beginning the batch transaction")?;
    let moved = advance_checkpoint(&mut transaction, consumer, topic, partition, range.start, range.end).await?;
    if !moved {
        return Err(BatchError::Stale { partition, expected: range.start });
    }
    let mut model = load(&mut transaction, &Needs::of(events)).await?;
    let mut outcome = BatchOutcome::default();
    let mut applied = Vec::with_capacity(events.len());
    for event in events {
        match model.apply(event) {
            Ok(()) => {
                outcome.applied += 1;
                applied.push(event);
            }
            Err(violation) => outcome.violations.push((event.offset, violation)),
        }
    }
    applied.retain(|event| !model.repeats.contains(&event.offset));
    write(&mut transaction, &model).await?;
    write_change_feed(&mut transaction, &applied).await?;
    outcome.changes = model.change_counts();
    Ok(PreparedBatch { transaction, outcome })
}

async fn advance_checkpoint(
    connection: &mut PgConnection,
    consumer: &str,
    topic: &str,
    partition: i32,
    expected: i64,
    next: i64,
) -> anyhow::Result<bool> {
    let result = if expected == 0 {
        // The first batch of a partition creates the row, unless someone else already did.
        sqlx::query!(
            "INSERT INTO projector_checkpoints (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $5) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now() \
             WHERE projector_checkpoints.next_offset = $4",
            consumer,
            topic,
            partition,
            expected,
            next
        )
        .execute(connection)
        .await
    } else {
        sqlx::query!(
            "UPDATE projector_checkpoints SET next_offset = $5, updated_at = now() \
             WHERE consumer = $1 AND topic = $2 AND partition = $3 AND next_offset = $4",
            consumer,
            topic,
            partition,
            expected,
            next
        )
        .execute(connection)
        .await
    }
    .context("advancing the checkpoint")?;
    Ok(result.rows_affected() == 1)
}

fn parse<T: DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    serde_json::from_value(Value::String(text.to_owned())).with_context(|| format!("unexpected value {text:?}"))
}

fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

fn id<T: std::str::FromStr>(text: String) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|error| anyhow::anyhow!("stored id {text:?}: {error}"))
}

/// Loads every row `needs` names: one query per table.
pub async fn load(connection: &mut PgConnection, needs: &Needs) -> anyhow::Result<ReadModel> {
    let mut model = ReadModel::default();

    let (apps, channels): (Vec<String>, Vec<String>) =
        needs.channels.iter().map(|(app, channel)| (app.to_string(), channel.to_string())).unzip();
    let rows = sqlx::query!(
        "SELECT c.app_id, c.channel_id, channel_type, name, topic, custom::text AS \"custom!\", created_by, created_at, \
                updated_at, archived_at, kafka_partition, last_offset, message_count, last_message_id, \
                last_message_at, last_message_offset \
         FROM channels c JOIN UNNEST($1::text[], $2::text[]) AS k(app_id, channel_id) USING (app_id, channel_id)",
        &apps,
        &channels
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading channels")?;
    for row in rows {
        let custom: String = row.custom;
        model.channels.load(
            (id(row.app_id)?, id(row.channel_id)?),
            ChannelRow {
                channel_type: parse::<ChannelType>(&row.channel_type)?,
                name: row.name,
                topic: row.topic,
                custom: serde_json::from_str(&custom).context("channels.custom")?,
                created_by: id(row.created_by)?,
                created_at: row.created_at,
                updated_at: row.updated_at,
                archived_at: row.archived_at,
                partition: row.kafka_partition,
                last_offset: row.last_offset,
                message_count: row.message_count,
                last_message_id: row.last_message_id.map(MessageId::from_uuid),
                last_message_at: row.last_message_at,
                last_message_offset: row.last_message_offset,
            },
        );
    }

    let mut member_columns: [Vec<String>; 3] = Default::default();
    for (app, channel, user) in &needs.members {
        member_columns[0].push(app.to_string());
        member_columns[1].push(channel.to_string());
        member_columns[2].push(user.to_string());
    }
    let rows = sqlx::query!(
        "SELECT m.app_id, m.channel_id, m.user_id, role, joined_at, joined_offset, left_at, read_offset, read_count \
         FROM members m JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(app_id, channel_id, user_id) \
              USING (app_id, channel_id, user_id)",
        &member_columns[0],
        &member_columns[1],
        &member_columns[2]
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading members")?;
    for row in rows {
        model.members.load(
            (id(row.app_id)?, id(row.channel_id)?, id(row.user_id)?),
            MemberRow {
                role: parse::<Role>(&row.role)?,
                joined_at: row.joined_at,
                joined_offset: row.joined_offset,
                left_at: row.left_at,
                read_offset: row.read_offset,
                read_count: row.read_count,
            },
        );
    }

    let (message_apps, message_ids): (Vec<String>, Vec<Uuid>) =
        needs.messages.iter().map(|(app, message)| (app.to_string(), *message.as_uuid())).unzip();
    let rows = sqlx::query!(
        "SELECT m.app_id, m.message_id, channel_id, author_id, client_msg_id, text, to_jsonb(mentions)::text AS \"mentions!\", \
                attachments::text AS \"attachments!\", custom::text AS custom, parent_id, reply_count, last_reply_at, \
                ordinal, kafka_partition, kafka_offset, created_at, edited_at, deleted_at, purged \
         FROM messages m JOIN UNNEST($1::text[], $2::uuid[]) AS k(app_id, message_id) USING (app_id, message_id)",
        &message_apps,
        &message_ids
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading messages")?;
    for row in rows {
        let mentions: String = row.mentions;
        let attachments: String = row.attachments;
        let custom: Option<String> = row.custom;
        model.messages.load(
            (id(row.app_id)?, MessageId::from_uuid(row.message_id)),
            MessageRow {
                channel_id: id(row.channel_id)?,
                author_id: id(row.author_id)?,
                client_msg_id: row.client_msg_id,
                text: row.text,
                mentions: serde_json::from_str(&mentions).context("messages.mentions")?,
                attachments: serde_json::from_str::<Vec<Attachment>>(&attachments).context("messages.attachments")?,
                custom: custom.map(|text| serde_json::from_str(&text)).transpose().context("messages.custom")?,
                parent_id: row.parent_id.map(MessageId::from_uuid),
                reply_count: row.reply_count,
                last_reply_at: row.last_reply_at,
                ordinal: row.ordinal,
                partition: row.kafka_partition,
                offset: row.kafka_offset,
                created_at: row.created_at,
                edited_at: row.edited_at,
                deleted_at: row.deleted_at,
                purged: row.purged,
            },
        );
    }

    let mut reaction_columns: (Vec<String>, Vec<Uuid>, Vec<String>, Vec<String>) = Default::default();
    for (app, message, emoji, user) in &needs.reactions {
        reaction_columns.0.push(app.to_string());
        reaction_columns.1.push(*message.as_uuid());
        reaction_columns.2.push(emoji.clone());
        reaction_columns.3.push(user.to_string());
    }
    let rows = sqlx::query!(
        "SELECT r.app_id, r.message_id, r.emoji, r.user_id, created_at FROM reactions r \
         JOIN UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[]) AS k(app_id, message_id, emoji, user_id) \
              USING (app_id, message_id, emoji, user_id)",
        &reaction_columns.0,
        &reaction_columns.1,
        &reaction_columns.2,
        &reaction_columns.3
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading reactions")?;
    for row in rows {
        model
            .reactions
            .load((id(row.app_id)?, MessageId::from_uuid(row.message_id), row.emoji, id(row.user_id)?), row.created_at);
    }

    let mut count_columns: (Vec<String>, Vec<Uuid>, Vec<String>) = Default::default();
    for (app, message, emoji) in &needs.reaction_counts {
        count_columns.0.push(app.to_string());
        count_columns.1.push(*message.as_uuid());
        count_columns.2.push(emoji.clone());
    }
    let rows = sqlx::query!(
        "SELECT c.app_id, c.message_id, c.emoji, count FROM reaction_counts c \
         JOIN UNNEST($1::text[], $2::uuid[], $3::text[]) AS k(app_id, message_id, emoji) USING (app_id, message_id, emoji)",
        &count_columns.0,
        &count_columns.1,
        &count_columns.2
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading reaction counts")?;
    for row in rows {
        model.reaction_counts.load((id(row.app_id)?, MessageId::from_uuid(row.message_id), row.emoji), row.count);
    }

    let mut pin_columns: (Vec<String>, Vec<String>, Vec<Uuid>) = Default::default();
    for (app, channel, message) in &needs.pins {
        pin_columns.0.push(app.to_string());
        pin_columns.1.push(channel.to_string());
        pin_columns.2.push(*message.as_uuid());
    }
    let rows = sqlx::query!(
        "SELECT p.app_id, p.channel_id, p.message_id, pinned_by, pinned_at FROM pins p \
         JOIN UNNEST($1::text[], $2::text[], $3::uuid[]) AS k(app_id, channel_id, message_id) \
              USING (app_id, channel_id, message_id)",
        &pin_columns.0,
        &pin_columns.1,
        &pin_columns.2
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading pins")?;
    for row in rows {
        model.pins.load(
            (id(row.app_id)?, id(row.channel_id)?, MessageId::from_uuid(row.message_id)),
            PinRow { pinned_by: id(row.pinned_by)?, pinned_at: row.pinned_at },
        );
    }

    let mut pair_columns: (Vec<String>, Vec<String>, Vec<String>) = Default::default();
    for (app, low, high) in &needs.dm_pairs {
        pair_columns.0.push(app.to_string());
        pair_columns.1.push(low.to_string());
        pair_columns.2.push(high.to_string());
    }
    let rows = sqlx::query!(
        "SELECT d.app_id, d.user_low, d.user_high, channel_id FROM dm_pairs d \
         JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(app_id, user_low, user_high) USING (app_id, user_low, user_high)",
        &pair_columns.0,
        &pair_columns.1,
        &pair_columns.2
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading dm pairs")?;
    for row in rows {
        model.dm_pairs.load((id(row.app_id)?, id(row.user_low)?, id(row.user_high)?), id(row.channel_id)?);
    }

    let mut ordinal_columns: (Vec<String>, Vec<String>, Vec<i64>) = Default::default();
    for (app, channel, offset) in &needs.ordinals_at {
        ordinal_columns.0.push(app.to_string());
        ordinal_columns.1.push(channel.to_string());
        ordinal_columns.2.push(*offset);
    }
    let rows = sqlx::query!(
        "SELECT k.app_id AS \"app_id!\", k.channel_id AS \"channel_id!\", k.at_offset AS \"at_offset!\", \
                (SELECT max(m.ordinal) FROM messages m \
                 WHERE m.app_id = k.app_id AND m.channel_id = k.channel_id AND m.kafka_offset <= k.at_offset) AS ordinal \
         FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS k(app_id, channel_id, at_offset)",
        &ordinal_columns.0,
        &ordinal_columns.1,
        &ordinal_columns.2
    )
    .fetch_all(&mut *connection)
    .await
    .context("loading read-marker ordinals")?;
    for row in rows {
        let ordinal: Option<i64> = row.ordinal;
        model
            .ordinals_at
            .insert((id::<AppId>(row.app_id)?, id::<ChannelId>(row.channel_id)?, row.at_offset), ordinal.unwrap_or(0));
    }
    Ok(model)
}

/// Writes every changed row: one statement per table and kind of change, whatever the batch size.
pub async fn write(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    write_channels(connection, model).await?;
    write_members(connection, model).await?;
    write_messages(connection, model).await?;
    write_reactions(connection, model).await?;
    write_pins(connection, model).await?;
    write_dm_pairs(connection, model).await?;
    write_spans(connection, model).await
}

async fn write_channels(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    if model.channels.is_unchanged() {
        return Ok(());
    }
    let mut columns = ChannelColumns::default();
    for ((app, channel), row) in model.channels.upserts() {
        columns.push(app, channel, row);
    }
    sqlx::query!(
        "INSERT INTO channels (app_id, channel_id, channel_type, name, topic, custom, created_by, created_at, updated_at, \
                               archived_at, kafka_partition, last_offset, message_count, last_message_id, \
                               last_message_at, last_message_offset) \
         SELECT app_id, channel_id, channel_type, name, topic, custom::jsonb, created_by, created_at, updated_at, \
                archived_at, kafka_partition, last_offset, message_count, last_message_id, last_message_at, \
                last_message_offset \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::int[], $12::bigint[], $13::bigint[], \
                     $14::uuid[], $15::timestamptz[], $16::bigint[]) \
              AS u(app_id, channel_id, channel_type, name, topic, custom, created_by, created_at, updated_at, archived_at, \
                   kafka_partition, last_offset, message_count, last_message_id, last_message_at, last_message_offset) \
         ON CONFLICT (app_id, channel_id) DO UPDATE SET \
             name = EXCLUDED.name, topic = EXCLUDED.topic, custom = EXCLUDED.custom, updated_at = EXCLUDED.updated_at, \
             archived_at = EXCLUDED.archived_at, last_offset = EXCLUDED.last_offset, \
             message_count = EXCLUDED.message_count, last_message_id = EXCLUDED.last_message_id, \
             last_message_at = EXCLUDED.last_message_at, last_message_offset = EXCLUDED.last_message_offset",
        &columns.app_id,
        &columns.channel_id,
        &columns.channel_type,
        &columns.name as &[Option<String>],
        &columns.topic as &[Option<String>],
        &columns.custom,
        &columns.created_by,
        &columns.created_at,
        &columns.updated_at,
        &columns.archived_at as &[Option<DateTime<Utc>>],
        &columns.partition,
        &columns.last_offset,
        &columns.message_count,
        &columns.last_message_id as &[Option<Uuid>],
        &columns.last_message_at as &[Option<DateTime<Utc>>],
        &columns.last_message_offset as &[Option<i64>]
    )
    .execute(&mut *connection)
    .await
    .context("writing channels")?;
    Ok(())
}

#[derive(Default)]
struct ChannelColumns {
    app_id: Vec<String>,
    channel_id: Vec<String>,
    channel_type: Vec<String>,
    name: Vec<Option<String>>,
    topic: Vec<Option<String>>,
    custom: Vec<String>,
    created_by: Vec<String>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    archived_at: Vec<Option<DateTime<Utc>>>,
    partition: Vec<i32>,
    last_offset: Vec<i64>,
    message_count: Vec<i64>,
    last_message_id: Vec<Option<Uuid>>,
    last_message_at: Vec<Option<DateTime<Utc>>>,
    last_message_offset: Vec<Option<i64>>,
}

impl ChannelColumns {
    fn push(&mut self, app: &AppId, channel: &ChannelId, row: &ChannelRow) {
        self.app_id.push(app.to_string());
        self.channel_id.push(channel.to_string());
        self.channel_type.push(name_of(&row.channel_type));
        self.name.push(row.name.clone());
        self.topic.push(row.topic.clone());
        self.custom.push(Value::Object(row.custom.clone()).to_string());
        self.created_by.push(row.created_by.to_string());
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.archived_at.push(row.archived_at);
        self.partition.push(row.partition);
        self.last_offset.push(row.last_offset);
        self.message_count.push(row.message_count);
        self.last_message_id.push(row.last_message_id.map(|id| *id.as_uuid()));
        self.last_message_at.push(row.last_message_at);
        self.last_message_offset.push(row.last_message_offset);
    }
}

async fn write_members(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    if model.members.is_unchanged() {
        return Ok(());
    }
    let mut app_id = Vec::new();
    let mut channel_id = Vec::new();
    let mut user_id = Vec::new();
    let mut role = Vec::new();
    let mut joined_at = Vec::new();
    let mut joined_offset = Vec::new();
    let mut left_at = Vec::new();
    let mut read_offset = Vec::new();
    let mut read_count = Vec::new();
    for ((app, channel, user), row) in model.members.upserts() {
        app_id.push(app.to_string());
        channel_id.push(channel.to_string());
        user_id.push(user.to_string());
        role.push(name_of(&row.role));
        joined_at.push(row.joined_at);
        joined_offset.push(row.joined_offset);
        left_at.push(row.left_at);
        read_offset.push(row.read_offset);
        read_count.push(row.read_count);
    }
    sqlx::query!(
        "INSERT INTO members (app_id, channel_id, user_id, role, joined_at, joined_offset, left_at, read_offset, read_count) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], \
                              $7::timestamptz[], $8::bigint[], $9::bigint[]) \
         ON CONFLICT (app_id, channel_id, user_id) DO UPDATE SET \
             role = EXCLUDED.role, joined_at = EXCLUDED.joined_at, joined_offset = EXCLUDED.joined_offset, \
             left_at = EXCLUDED.left_at, read_offset = EXCLUDED.read_offset, read_count = EXCLUDED.read_count",
        &app_id,
        &channel_id,
        &user_id,
        &role,
        &joined_at,
        &joined_offset,
        &left_at as &[Option<DateTime<Utc>>],
        &read_offset as &[Option<i64>],
        &read_count
    )
    .execute(&mut *connection)
    .await
    .context("writing members")?;
    Ok(())
}

async fn write_messages(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    if model.messages.is_unchanged() {
        return Ok(());
    }
    let mut columns = MessageColumns::default();
    for ((app, message), row) in model.messages.upserts() {
        columns.push(app, *message, row)?;
    }
    sqlx::query!(
        "INSERT INTO messages (app_id, message_id, channel_id, author_id, client_msg_id, text, mentions, attachments, \
                               custom, parent_id, reply_count, last_reply_at, ordinal, kafka_partition, kafka_offset, \
                               created_at, edited_at, deleted_at, purged) \
         SELECT app_id, message_id, channel_id, author_id, client_msg_id, text, \
                ARRAY(SELECT jsonb_array_elements_text(mentions::jsonb)), attachments::jsonb, custom::jsonb, \
                parent_id, reply_count, last_reply_at, ordinal, kafka_partition, kafka_offset, created_at, edited_at, \
                deleted_at, purged \
         FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                     $9::text[], $10::uuid[], $11::int[], $12::timestamptz[], $13::bigint[], $14::int[], $15::bigint[], \
                     $16::timestamptz[], $17::timestamptz[], $18::timestamptz[], $19::bool[]) \
              AS u(app_id, message_id, channel_id, author_id, client_msg_id, text, mentions, attachments, custom, \
                   parent_id, reply_count, last_reply_at, ordinal, kafka_partition, kafka_offset, created_at, \
                   edited_at, deleted_at, purged) \
         ON CONFLICT (app_id, message_id) DO UPDATE SET \
             text = EXCLUDED.text, mentions = EXCLUDED.mentions, attachments = EXCLUDED.attachments, \
             custom = EXCLUDED.custom, reply_count = EXCLUDED.reply_count, last_reply_at = EXCLUDED.last_reply_at, \
             edited_at = EXCLUDED.edited_at, deleted_at = EXCLUDED.deleted_at, purged = EXCLUDED.purged",
        &columns.app_id,
        &columns.message_id,
        &columns.channel_id,
        &columns.author_id,
        &columns.client_msg_id as &[Option<String>],
        &columns.text,
        &columns.mentions,
        &columns.attachments,
        &columns.custom as &[Option<String>],
        &columns.parent_id as &[Option<Uuid>],
        &columns.reply_count,
        &columns.last_reply_at as &[Option<DateTime<Utc>>],
        &columns.ordinal as &[Option<i64>],
        &columns.partition,
        &columns.offset,
        &columns.created_at,
        &columns.edited_at as &[Option<DateTime<Utc>>],
        &columns.deleted_at as &[Option<DateTime<Utc>>],
        &columns.purged
    )
    .execute(&mut *connection)
    .await
    .context("writing messages")?;
    Ok(())
}

#[derive(Default)]
struct MessageColumns {
    app_id: Vec<String>,
    message_id: Vec<Uuid>,
    channel_id: Vec<String>,
    author_id: Vec<String>,
    client_msg_id: Vec<Option<String>>,
    text: Vec<String>,
    mentions: Vec<String>,
    attachments: Vec<String>,
    custom: Vec<Option<String>>,
    parent_id: Vec<Option<Uuid>>,
    reply_count: Vec<i32>,
    last_reply_at: Vec<Option<DateTime<Utc>>>,
    ordinal: Vec<Option<i64>>,
    partition: Vec<i32>,
    offset: Vec<i64>,
    created_at: Vec<DateTime<Utc>>,
    edited_at: Vec<Option<DateTime<Utc>>>,
    deleted_at: Vec<Option<DateTime<Utc>>>,
    purged: Vec<bool>,
}

impl MessageColumns {
    fn push(&mut self, app: &AppId, message: MessageId, row: &MessageRow) -> anyhow::Result<()> {
        self.app_id.push(app.to_string());
        self.message_id.push(*message.as_uuid());
        self.channel_id.push(row.channel_id.to_string());
        self.author_id.push(row.author_id.to_string());
        self.client_msg_id.push(row.client_msg_id.clone());
        self.text.push(row.text.clone());
        self.mentions.push(serde_json::to_string(&row.mentions).context("mentions")?);
        self.attachments.push(serde_json::to_string(&row.attachments).context("attachments")?);
        self.custom.push(row.custom.as_ref().map(|custom| Value::Object(custom.clone()).to_string()));
        self.parent_id.push(row.parent_id.map(|id| *id.as_uuid()));
        self.reply_count.push(row.reply_count);
        self.last_reply_at.push(row.last_reply_at);
        self.ordinal.push(row.ordinal);
        self.partition.push(row.partition);
        self.offset.push(row.offset);
        self.created_at.push(row.created_at);
        self.edited_at.push(row.edited_at);
        self.deleted_at.push(row.deleted_at);
        self.purged.push(row.purged);
        Ok(())
    }
}

/// app, message, emoji, user, created_at
type ReactionColumns = (Vec<String>, Vec<Uuid>, Vec<String>, Vec<String>, Vec<DateTime<Utc>>);
/// app, channel, message, pinned_by, pinned_at
type PinColumns = (Vec<String>, Vec<String>, Vec<Uuid>, Vec<String>, Vec<DateTime<Utc>>);

async fn write_reactions(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    if !model.reactions.is_unchanged() {
        let mut added: ReactionColumns = Default::default();
        for ((app, message, emoji, user), created_at) in model.reactions.upserts() {
            added.0.push(app.to_string());
            added.1.push(*message.as_uuid());
            added.2.push(emoji.clone());
            added.3.push(user.to_string());
            added.4.push(*created_at);
        }
        if !added.0.is_empty() {
            sqlx::query!(
                "INSERT INTO reactions (app_id, message_id, emoji, user_id, created_at) \
                 SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) \
                 ON CONFLICT DO NOTHING",
                &added.0,
                &added.1,
                &added.2,
                &added.3,
                &added.4
            )
            .execute(&mut *connection)
            .await
            .context("adding reactions")?;
        }
        let mut removed: (Vec<String>, Vec<Uuid>, Vec<String>, Vec<String>) = Default::default();
        for (app, message, emoji, user) in model.reactions.removals() {
            removed.0.push(app.to_string());
            removed.1.push(*message.as_uuid());
            removed.2.push(emoji.clone());
            removed.3.push(user.to_string());
        }
        if !removed.0.is_empty() {
            sqlx::query!(
                "DELETE FROM reactions r USING UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[]) \
                     AS k(app_id, message_id, emoji, user_id) \
                 WHERE r.app_id = k.app_id AND r.message_id = k.message_id AND r.emoji = k.emoji AND r.user_id = k.user_id",
                &removed.0,
                &removed.1,
                &removed.2,
                &removed.3
            )
            .execute(&mut *connection)
            .await
            .context("removing reactions")?;
        }
    }
    if model.reaction_counts.is_unchanged() {
        return Ok(());
    }
    let mut counted: (Vec<String>, Vec<Uuid>, Vec<String>, Vec<i32>) = Default::default();
    for ((app, message, emoji), count) in model.reaction_counts.upserts() {
        counted.0.push(app.to_string());
        counted.1.push(*message.as_uuid());
        counted.2.push(emoji.clone());
        counted.3.push(*count);
    }
    if !counted.0.is_empty() {
        sqlx::query!(
            "INSERT INTO reaction_counts (app_id, message_id, emoji, count) \
             SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::int[]) \
             ON CONFLICT (app_id, message_id, emoji) DO UPDATE SET count = EXCLUDED.count",
            &counted.0,
            &counted.1,
            &counted.2,
            &counted.3
        )
        .execute(&mut *connection)
        .await
        .context("writing reaction counts")?;
    }
    let mut emptied: (Vec<String>, Vec<Uuid>, Vec<String>) = Default::default();
    for (app, message, emoji) in model.reaction_counts.removals() {
        emptied.0.push(app.to_string());
        emptied.1.push(*message.as_uuid());
        emptied.2.push(emoji.clone());
    }
    if !emptied.0.is_empty() {
        sqlx::query!(
            "DELETE FROM reaction_counts c USING UNNEST($1::text[], $2::uuid[], $3::text[]) AS k(app_id, message_id, emoji) \
             WHERE c.app_id = k.app_id AND c.message_id = k.message_id AND c.emoji = k.emoji",
            &emptied.0,
            &emptied.1,
            &emptied.2
        )
        .execute(&mut *connection)
        .await
        .context("removing reaction counts")?;
    }
    Ok(())
}

async fn write_pins(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    if model.pins.is_unchanged() {
        return Ok(());
    }
    let mut pinned: PinColumns = Default::default();
    for ((app, channel, message), row) in model.pins.upserts() {
        pinned.0.push(app.to_string());
        pinned.1.push(channel.to_string());
        pinned.2.push(*message.as_uuid());
        pinned.3.push(row.pinned_by.to_string());
        pinned.4.push(row.pinned_at);
    }
    if !pinned.0.is_empty() {
        sqlx::query!(
            "INSERT INTO pins (app_id, channel_id, message_id, pinned_by, pinned_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::timestamptz[]) \
             ON CONFLICT (app_id, channel_id, message_id) DO UPDATE SET pinned_by = EXCLUDED.pinned_by, pinned_at = EXCLUDED.pinned_at",
            &pinned.0,
            &pinned.1,
            &pinned.2,
            &pinned.3,
            &pinned.4
        )
        .execute(&mut *connection)
        .await
        .context("writing pins")?;
    }
    let mut unpinned: (Vec<String>, Vec<String>, Vec<Uuid>) = Default::default();
    for (app, channel, message) in model.pins.removals() {
        unpinned.0.push(app.to_string());
        unpinned.1.push(channel.to_string());
        unpinned.2.push(*message.as_uuid());
    }
    if !unpinned.0.is_empty() {
        sqlx::query!(
            "DELETE FROM pins p USING UNNEST($1::text[], $2::text[], $3::uuid[]) AS k(app_id, channel_id, message_id) \
             WHERE p.app_id = k.app_id AND p.channel_id = k.channel_id AND p.message_id = k.message_id",
            &unpinned.0,
            &unpinned.1,
            &unpinned.2
        )
        .execute(&mut *connection)
        .await
        .context("removing pins")?;
    }
    Ok(())
}

async fn write_dm_pairs(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    if model.dm_pairs.is_unchanged() {
        return Ok(());
    }
    let mut pairs: (Vec<String>, Vec<String>, Vec<String>, Vec<String>) = Default::default();
    for ((app, low, high), channel) in model.dm_pairs.upserts() {
        pairs.0.push(app.to_string());
        pairs.1.push(low.to_string());
        pairs.2.push(high.to_string());
        pairs.3.push(channel.to_string());
    }
    sqlx::query!(
        "INSERT INTO dm_pairs (app_id, user_low, user_high, channel_id) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING",
        &pairs.0,
        &pairs.1,
        &pairs.2,
        &pairs.3
    )
    .execute(&mut *connection)
    .await
    .context("writing dm pairs")?;
    Ok(())
}

async fn write_spans(connection: &mut PgConnection, model: &ReadModel) -> anyhow::Result<()> {
    if model.spans.is_empty() {
        return Ok(());
    }
    #[derive(Default)]
    struct Columns {
        apps: Vec<String>,
        channels: Vec<String>,
        users: Vec<String>,
        from: Vec<i64>,
        to: Vec<Option<i64>>,
    }
    let mut spans = Columns::default();
    for (((app, channel, user), from), to) in &model.spans {
        spans.apps.push(app.to_string());
        spans.channels.push(channel.to_string());
        spans.users.push(user.to_string());
        spans.from.push(*from);
        spans.to.push(*to);
    }
    sqlx::query!(
        "INSERT INTO member_spans (app_id, channel_id, user_id, from_offset, to_offset) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
         ON CONFLICT (app_id, user_id, channel_id, from_offset) DO UPDATE SET to_offset = EXCLUDED.to_offset",
        &spans.apps,
        &spans.channels,
        &spans.users,
        &spans.from,
        &spans.to as &[Option<i64>],
    )
    .execute(&mut *connection)
    .await
    .context("writing membership spans")?;
    Ok(())
}

/// Appends the events that took effect to the change feed `GET /v1/sync` reads.
async fn write_change_feed(connection: &mut PgConnection, events: &[&PositionedEvent]) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    #[derive(Default)]
    struct Columns {
        apps: Vec<String>,
        channels: Vec<String>,
        partitions: Vec<i32>,
        offsets: Vec<i64>,
        events: Vec<serde_json::Value>,
        messages: Vec<Option<Uuid>>,
    }
    let mut rows = Columns::default();
    let mut purged: (Vec<String>, Vec<Uuid>) = Default::default();
    for event in events {
        let envelope = &event.envelope;
        rows.apps.push(envelope.app_id.to_string());
        rows.channels.push(envelope.channel_id.to_string());
        rows.partitions.push(event.partition);
        rows.offsets.push(event.offset);
        rows.events.push(envelope.to_value());
        rows.messages.push(match &envelope.event {
            Event::MessageSent(sent) => Some(*sent.message_id.as_uuid()),
            Event::MessageEdited(edited) => Some(*edited.message_id.as_uuid()),
            _ => None,
        });
        if let Event::MessageDeleted(deleted) = &envelope.event
            && deleted.hard
        {
            purged.0.push(envelope.app_id.to_string());
            purged.1.push(*deleted.message_id.as_uuid());
        }
    }
    sqlx::query!(
        "INSERT INTO channel_events (app_id, channel_id, kafka_partition, kafka_offset, event, message_id) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::bigint[], $5::jsonb[], $6::uuid[])",
        &rows.apps,
        &rows.channels,
        &rows.partitions,
        &rows.offsets,
        &rows.events,
        &rows.messages as &[Option<Uuid>],
    )
    .execute(&mut *connection)
    .await
    .context("writing the change feed")?;
    if !purged.0.is_empty() {
        // A hard delete purges the content from the feed too, as from `messages`: a sync from an older token
        // must not bring it back.
        sqlx::query!(
            r#"UPDATE channel_events e
               SET event = jsonb_set(e.event, '{payload}',
                   (e.event->'payload') - 'custom' || '{"text": "", "mentions": []}'::jsonb
                   || CASE WHEN e.event->'payload' ? 'attachments' THEN '{"attachments": []}'::jsonb
                           ELSE '{}'::jsonb END)
               FROM UNNEST($1::text[], $2::uuid[]) AS p(app_id, message_id)
               WHERE e.app_id = p.app_id AND e.message_id = p.message_id"#,
            &purged.0,
            &purged.1,
        )
        .execute(&mut *connection)
        .await
        .context("purging hard-deleted content from the change feed")?;
    }
    Ok(())
}

/// The read-model tables, in checksum order.
pub const READ_MODEL_TABLES: &[&str] = &[
    "channels",
    "members",
    "messages",
    "reactions",
    "reaction_counts",
    "pins",
    "dm_pairs",
    "member_spans",
    "channel_events",
];

/// A deterministic digest of every read-model row (not the checkpoints): two databases projected from the
/// same events have the same checksum.
pub async fn checksum(pool: &PgPool) -> anyhow::Result<String> {
    let mut digests = Vec::with_capacity(READ_MODEL_TABLES.len());
    for table in READ_MODEL_TABLES {
        // Table names come from the constant above, never from input.
        let query = format!("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t");
        let digest: String = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_one(pool)
            .await
            .with_context(|| format!("checksumming {table}"))?;
        digests.push(format!("{table}:{digest}"));
    }
    let combined: String = sqlx::query_scalar("SELECT md5($1)")
        .bind(digests.join(","))
        .fetch_one(pool)
        .await
        .context("combining checksums")?;
    Ok(combined)
}
