//! The read models as plain data, and the pure projection: [`ReadModel::apply`] folds one event into the rows
//! loaded for its batch. No IO here: `store` loads the rows a batch needs ([`Needs`]), the fold runs in
//! memory, and `store` writes the dirty rows back with one bulk statement per table.
//!
//! An event that breaks an invariant (an edit of an unknown message, a second `channel.created` for the same
//! channel…) is a [`Violation`]: it changes nothing and the projector sends it to the dead-letter topic.
//! Harmless repeats (a second identical reaction, removing a member who already left, a retried
//! `message.sent` with an id already taken) are no-ops: the first one wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chatsdk_schemas::Envelope;
use chatsdk_schemas::events::{Attachment, ChannelType, Event, MessageSent, Role};
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub type ChannelKey = (AppId, ChannelId);
pub type MemberKey = (AppId, ChannelId, UserId);
pub type MessageKey = (AppId, MessageId);
pub type ReactionKey = (AppId, MessageId, String, UserId);
pub type ReactionCountKey = (AppId, MessageId, String);
pub type PinKey = (AppId, ChannelId, MessageId);
/// `(app, lower user id, higher user id)`.
pub type DmKey = (AppId, UserId, UserId);
/// `(app, channel, offset)`: "the ordinal of the last top-level message at or before this offset".
pub type OrdinalKey = (AppId, ChannelId, i64);

/// An event with its position in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionedEvent {
    pub partition: i32,
    pub offset: i64,
    pub envelope: Envelope,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRow {
    pub channel_type: ChannelType,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub custom: Map<String, Value>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    pub partition: i32,
    pub last_offset: i64,
    pub message_count: i64,
    pub last_message_id: Option<MessageId>,
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_message_offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    pub joined_offset: i64,
    pub left_at: Option<DateTime<Utc>>,
    pub read_offset: Option<i64>,
    pub read_count: i64,
}

impl MemberRow {
    pub fn is_active(&self) -> bool {
        self.left_at.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub client_msg_id: Option<String>,
    pub text: String,
    pub mentions: Vec<UserId>,
    pub attachments: Vec<Attachment>,
    pub custom: Option<Map<String, Value>>,
    pub parent_id: Option<MessageId>,
    pub reply_count: i32,
    pub last_reply_at: Option<DateTime<Utc>>,
    pub ordinal: Option<i64>,
    pub partition: i32,
    pub offset: i64,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub purged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PinRow {
    pub pinned_by: UserId,
    pub pinned_at: DateTime<Utc>,
}

/// Why an event cannot be applied. The event changes nothing and goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("channel already exists")]
    ChannelExists,
    #[error("unknown channel")]
    UnknownChannel,
    #[error("unknown message {0}")]
    UnknownMessage(MessageId),
    #[error("message {0} belongs to another channel")]
    MessageInOtherChannel(MessageId),
    #[error("{0} is not a member")]
    NotAMember(UserId),
    #[error("parent {0} is unknown, in another channel, or itself a reply")]
    InvalidParent(MessageId),
    #[error("{0} is listed twice among the initial members")]
    DuplicateInitialMember(UserId),
    #[error("a dm needs exactly two distinct members")]
    DmNeedsTwoMembers,
    #[error("a dm between these users exists already")]
    DmExists,
    #[error("read marker {up_to} is beyond the event's own offset {offset}")]
    ReadBeyondEvent { up_to: i64, offset: i64 },
}

/// Rows of one table: those loaded (or created) for the batch, and which changed.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    rows: HashMap<K, V>,
    dirty: BTreeSet<K>,
    removed: BTreeSet<K>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self { rows: HashMap::new(), dirty: BTreeSet::new(), removed: BTreeSet::new() }
    }
}

impl<K: Clone + Ord + std::hash::Hash, V> Table<K, V> {
    /// Puts a row as loaded from the database (not dirty).
    pub fn load(&mut self, key: K, row: V) {
        self.rows.insert(key, row);
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.rows.get(key)
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.rows.contains_key(key) {
            self.dirty.insert(key.clone());
            self.removed.remove(key);
        }
        self.rows.get_mut(key)
    }

    fn insert(&mut self, key: K, row: V) {
        self.dirty.insert(key.clone());
        self.removed.remove(&key);
        self.rows.insert(key, row);
    }

    fn remove(&mut self, key: &K) {
        if self.rows.remove(key).is_some() {
            self.dirty.remove(key);
            self.removed.insert(key.clone());
        }
    }

    /// Rows to upsert: changed and still present.
    pub fn upserts(&self) -> impl Iterator<Item = (&K, &V)> {
        self.dirty.iter().filter_map(|key| self.rows.get(key).map(|row| (key, row)))
    }

    /// Keys to delete.
    pub fn removals(&self) -> impl Iterator<Item = &K> {
        self.removed.iter()
    }

    pub fn is_unchanged(&self) -> bool {
        self.dirty.is_empty() && self.removed.is_empty()
    }
}

/// The rows one batch touches. `store` fills it from [`Needs`], then every event is applied in offset order.
#[derive(Debug, Clone, Default)]
pub struct ReadModel {
    pub channels: Table<ChannelKey, ChannelRow>,
    pub members: Table<MemberKey, MemberRow>,
    pub messages: Table<MessageKey, MessageRow>,
    /// Present reaction → its time.
    pub reactions: Table<ReactionKey, DateTime<Utc>>,
    pub reaction_counts: Table<ReactionCountKey, i32>,
    pub pins: Table<PinKey, PinRow>,
    pub dm_pairs: Table<DmKey, ChannelId>,
    /// Loaded answers to "last ordinal at or before offset" for the read markers of the batch.
    pub ordinals_at: HashMap<OrdinalKey, i64>,
    /// Top-level messages sent earlier in this batch, per channel: (offset, ordinal), ascending.
    sent_in_batch: HashMap<ChannelKey, Vec<(i64, i64)>>,
    /// Membership spans begun or ended in this batch: (member, from offset) → the offset that ended it.
    pub spans: BTreeMap<(MemberKey, i64), Option<i64>>,
    /// Offsets of events that changed nothing because they repeat an earlier one (a retried send): they
    /// stay out of the change feed, so a client never sees one message arrive twice.
    pub repeats: BTreeSet<i64>,
}

/// The keys a batch reads, so `store` can load them all with one query per table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    pub channels: BTreeSet<ChannelKey>,
    pub members: BTreeSet<MemberKey>,
    pub messages: BTreeSet<MessageKey>,
    pub reactions: BTreeSet<ReactionKey>,
    pub reaction_counts: BTreeSet<ReactionCountKey>,
    pub pins: BTreeSet<PinKey>,
    pub dm_pairs: BTreeSet<DmKey>,
    pub ordinals_at: BTreeSet<OrdinalKey>,
}

impl Needs {
    pub fn of(events: &[PositionedEvent]) -> Self {
        let mut needs = Self::default();
        for positioned in events {
            let envelope = &positioned.envelope;
            let app = &envelope.app_id;
            let channel = &envelope.channel_id;
            needs.channels.insert((app.clone(), channel.clone()));
            let member = |user: &UserId| (app.clone(), channel.clone(), user.clone());
            match &envelope.event {
                Event::ChannelCreated(created) => {
                    needs.members.extend(created.members.iter().map(|initial| member(&initial.user_id)));
                    if let Some(pair) = dm_key(app, &created.members) {
                        needs.dm_pairs.insert(pair);
                    }
                }
                Event::MemberAdded(added) => {
                    needs.members.insert(member(&added.user_id));
                }
                Event::MemberRemoved(removed) => {
                    needs.members.insert(member(&removed.user_id));
                }
                Event::MemberRoleChanged(changed) => {
                    needs.members.insert(member(&changed.user_id));
                }
                Event::MessageSent(sent) => {
                    needs.members.insert(member(&envelope.actor_id));
                    needs.messages.insert((app.clone(), sent.message_id));
                    if let Some(parent) = sent.parent_id {
                        needs.messages.insert((app.clone(), parent));
                    }
                }
                Event::MessageEdited(edited) => {
                    needs.messages.insert((app.clone(), edited.message_id));
                }
                Event::MessageDeleted(deleted) => {
                    needs.messages.insert((app.clone(), deleted.message_id));
                }
                Event::ReactionAdded(reaction) | Event::ReactionRemoved(reaction) => {
                    needs.messages.insert((app.clone(), reaction.message_id));
                    needs.reactions.insert((
                        app.clone(),
                        reaction.message_id,
                        reaction.emoji.clone(),
                        envelope.actor_id.clone(),
                    ));
                    needs.reaction_counts.insert((app.clone(), reaction.message_id, reaction.emoji.clone()));
                }
                Event::MessagePinned(pin) | Event::MessageUnpinned(pin) => {
                    needs.messages.insert((app.clone(), pin.message_id));
                    needs.pins.insert((app.clone(), channel.clone(), pin.message_id));
                }
                Event::ReadMarked(read) => {
                    needs.members.insert(member(&envelope.actor_id));
                    needs.ordinals_at.insert((app.clone(), channel.clone(), offset_i64(read.up_to_offset)));
                }
                Event::ChannelUpdated(_) | Event::ChannelArchived(_) => {}
            }
        }
        needs
    }
}

/// Offsets are `i64` in Kafka and PostgreSQL; a marker beyond `i64::MAX` is clamped (and is then beyond the
/// event's own offset, a violation).
fn offset_i64(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

fn dm_key(app: &AppId, members: &[chatsdk_schemas::events::ChannelMember]) -> Option<DmKey> {
    let [first, second] = members else { return None };
    let (low, high) = if first.user_id <= second.user_id {
        (first.user_id.clone(), second.user_id.clone())
    } else {
        (second.user_id.clone(), first.user_id.clone())
    };
    Some((app.clone(), low, high))
}

impl ReadModel {
    /// Folds one event into the rows. On a [`Violation`] nothing was changed.
    pub fn apply(&mut self, positioned: &PositionedEvent) -> Result<(), Violation> {
        let envelope = &positioned.envelope;
        let channel_key = (envelope.app_id.clone(), envelope.channel_id.clone());
        if let Event::ChannelCreated(created) = &envelope.event {
            return self.create_channel(positioned, channel_key, created);
        }
        if self.channels.get(&channel_key).is_none() {
            return Err(Violation::UnknownChannel);
        }
        match &envelope.event {
            Event::ChannelCreated(_) => unreachable!("handled above"),
            Event::ChannelUpdated(update) => {
                self.touch_channel(&channel_key, positioned, |channel| {
                    if let Some(name) = &update.name {
                        channel.name = Some(name.clone());
                    }
                    if let Some(topic) = &update.topic {
                        channel.topic = Some(topic.clone());
                    }
                    if let Some(custom) = &update.custom {
                        channel.custom = custom.clone();
                    }
                    channel.updated_at = envelope.occurred_at;
                });
            }
            Event::ChannelArchived(_) => {
                self.touch_channel(&channel_key, positioned, |channel| {
                    channel.archived_at.get_or_insert(envelope.occurred_at);
                    channel.updated_at = envelope.occurred_at;
                });
            }
            Event::MemberAdded(added) => self.add_member(positioned, &channel_key, &added.user_id, added.role),
            Event::MemberRemoved(removed) => {
                let key = member_key(&channel_key, &removed.user_id);
                if let Some(member) = self.members.get(&key).filter(|member| member.is_active()).cloned() {
                    self.spans.insert((key.clone(), member.joined_offset), Some(positioned.offset));
                    self.members.insert(key, MemberRow { left_at: Some(envelope.occurred_at), ..member });
                }
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::MemberRoleChanged(changed) => {
                let key = member_key(&channel_key, &changed.user_id);
                let Some(member) = self.members.get(&key).filter(|member| member.is_active()).cloned() else {
                    return Err(Violation::NotAMember(changed.user_id.clone()));
                };
                self.members.insert(key, MemberRow { role: changed.role, ..member });
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::MessageSent(sent) => self.send_message(positioned, &channel_key, sent)?,
            Event::MessageEdited(edited) => {
                let key = self.message_in_channel(&channel_key, edited.message_id)?;
                match self.messages.get(&key).filter(|message| message.deleted_at.is_none()).cloned() {
                    Some(message) => {
                        self.messages.insert(
                            key,
                            MessageRow {
                                text: edited.text.clone(),
                                mentions: edited.mentions.clone(),
                                edited_at: Some(envelope.occurred_at),
                                ..message
                            },
                        );
                    }
                    // An edit that lost the race with a delete changes nothing, and its text must not reach
                    // the change feed either.
                    None => {
                        self.repeats.insert(positioned.offset);
                    }
                }
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::MessageDeleted(deleted) => {
                let key = self.message_in_channel(&channel_key, deleted.message_id)?;
                if let Some(message) = self.messages.get_mut(&key) {
                    message.deleted_at.get_or_insert(envelope.occurred_at);
                    if deleted.hard {
                        message.purged = true;
                        message.text.clear();
                        message.mentions.clear();
                        message.attachments.clear();
                        message.custom = None;
                    }
                }
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::ReactionAdded(reaction) => {
                let message_key = self.message_in_channel(&channel_key, reaction.message_id)?;
                let key = (message_key.0.clone(), message_key.1, reaction.emoji.clone(), envelope.actor_id.clone());
                if self.reactions.get(&key).is_none() {
                    self.reactions.insert(key, envelope.occurred_at);
                    let count_key = (message_key.0, message_key.1, reaction.emoji.clone());
                    let count = self.reaction_counts.get(&count_key).copied().unwrap_or(0);
                    self.reaction_counts.insert(count_key, count + 1);
                }
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::ReactionRemoved(reaction) => {
                let message_key = self.message_in_channel(&channel_key, reaction.message_id)?;
                let key = (message_key.0.clone(), message_key.1, reaction.emoji.clone(), envelope.actor_id.clone());
                if self.reactions.get(&key).is_some() {
                    self.reactions.remove(&key);
                    let count_key = (message_key.0, message_key.1, reaction.emoji.clone());
                    match self.reaction_counts.get(&count_key).copied().unwrap_or(0) {
                        count if count > 1 => self.reaction_counts.insert(count_key, count - 1),
                        _ => self.reaction_counts.remove(&count_key),
                    }
                }
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::MessagePinned(pin) => {
                self.message_in_channel(&channel_key, pin.message_id)?;
                let key = (channel_key.0.clone(), channel_key.1.clone(), pin.message_id);
                if self.pins.get(&key).is_none() {
                    self.pins
                        .insert(key, PinRow { pinned_by: envelope.actor_id.clone(), pinned_at: envelope.occurred_at });
                }
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::MessageUnpinned(pin) => {
                self.message_in_channel(&channel_key, pin.message_id)?;
                self.pins.remove(&(channel_key.0.clone(), channel_key.1.clone(), pin.message_id));
                self.touch_channel(&channel_key, positioned, |_| {});
            }
            Event::ReadMarked(read) => self.mark_read(positioned, &channel_key, offset_i64(read.up_to_offset))?,
        }
        Ok(())
    }

    fn create_channel(
        &mut self,
        positioned: &PositionedEvent,
        channel_key: ChannelKey,
        created: &chatsdk_schemas::events::ChannelCreated,
    ) -> Result<(), Violation> {
        let envelope = &positioned.envelope;
        if self.channels.get(&channel_key).is_some() {
            return Err(Violation::ChannelExists);
        }
        let mut seen = BTreeSet::new();
        if let Some(duplicate) = created.members.iter().find(|initial| !seen.insert(&initial.user_id)) {
            return Err(Violation::DuplicateInitialMember(duplicate.user_id.clone()));
        }
        let dm_pair = if created.channel_type == ChannelType::Dm {
            let pair = dm_key(&envelope.app_id, &created.members).filter(|(_, low, high)| low != high);
            let Some(pair) = pair else { return Err(Violation::DmNeedsTwoMembers) };
            if self.dm_pairs.get(&pair).is_some() {
                return Err(Violation::DmExists);
            }
            Some(pair)
        } else {
            None
        };
        self.channels.insert(
            channel_key.clone(),
            ChannelRow {
                channel_type: created.channel_type,
                name: created.name.clone(),
                topic: created.topic.clone(),
                custom: created.custom.clone().unwrap_or_default(),
                created_by: envelope.actor_id.clone(),
                created_at: envelope.occurred_at,
                updated_at: envelope.occurred_at,
                archived_at: None,
                partition: positioned.partition,
                last_offset: positioned.offset,
                message_count: 0,
                last_message_id: None,
                last_message_at: None,
                last_message_offset: None,
            },
        );
        for initial in &created.members {
            let key = member_key(&channel_key, &initial.user_id);
            self.spans.insert((key.clone(), positioned.offset), None);
            self.members.insert(key, new_member(positioned, initial.role, 0));
        }
        if let Some(pair) = dm_pair {
            self.dm_pairs.insert(pair, channel_key.1);
        }
        Ok(())
    }

    fn add_member(&mut self, positioned: &PositionedEvent, channel_key: &ChannelKey, user: &UserId, role: Role) {
        let key = member_key(channel_key, user);
        let already_member = self.members.get(&key).is_some_and(MemberRow::is_active);
        if !already_member {
            // History before joining counts as read.
            let message_count = self.channels.get(channel_key).map_or(0, |channel| channel.message_count);
            self.spans.insert((key.clone(), positioned.offset), None);
            self.members.insert(key, new_member(positioned, role, message_count));
        }
        self.touch_channel(channel_key, positioned, |_| {});
    }

    fn send_message(
        &mut self,
        positioned: &PositionedEvent,
        channel_key: &ChannelKey,
        sent: &MessageSent,
    ) -> Result<(), Violation> {
        let envelope = &positioned.envelope;
        let key = (channel_key.0.clone(), sent.message_id);
        if self.messages.get(&key).is_some() {
            // A retried send: the first message.sent with this id wins.
            self.repeats.insert(positioned.offset);
            self.touch_channel(channel_key, positioned, |_| {});
            return Ok(());
        }
        if let Some(parent_id) = sent.parent_id {
            let parent_key = (channel_key.0.clone(), parent_id);
            let parent_is_root = self
                .messages
                .get(&parent_key)
                .is_some_and(|parent| parent.channel_id == channel_key.1 && parent.parent_id.is_none());
            if !parent_is_root {
                return Err(Violation::InvalidParent(parent_id));
            }
            if let Some(parent) = self.messages.get_mut(&parent_key) {
                parent.reply_count += 1;
                parent.last_reply_at = Some(envelope.occurred_at);
            }
        }
        let ordinal = if sent.parent_id.is_none() {
            let mut ordinal = 0;
            self.touch_channel(channel_key, positioned, |channel| {
                channel.message_count += 1;
                ordinal = channel.message_count;
                channel.last_message_id = Some(sent.message_id);
                channel.last_message_at = Some(envelope.occurred_at);
                channel.last_message_offset = Some(positioned.offset);
            });
            self.sent_in_batch.entry(channel_key.clone()).or_default().push((positioned.offset, ordinal));
            // The author has read up to their own message.
            let author_key = member_key(channel_key, &envelope.actor_id);
            if let Some(author) = self.members.get(&author_key).filter(|member| member.is_active()).cloned() {
                self.members.insert(
                    author_key,
                    MemberRow {
                        read_offset: Some(positioned.offset.max(author.read_offset.unwrap_or(0))),
                        read_count: ordinal.max(author.read_count),
                        ..author
                    },
                );
            }
            Some(ordinal)
        } else {
            self.touch_channel(channel_key, positioned, |_| {});
            None
        };
        self.messages.insert(
            key,
            MessageRow {
                channel_id: channel_key.1.clone(),
                author_id: envelope.actor_id.clone(),
                client_msg_id: sent.client_msg_id.clone(),
                text: sent.text.clone(),
                mentions: sent.mentions.clone(),
                attachments: sent.attachments.clone(),
                custom: sent.custom.clone(),
                parent_id: sent.parent_id,
                reply_count: 0,
                last_reply_at: None,
                ordinal,
                partition: positioned.partition,
                offset: positioned.offset,
                created_at: envelope.occurred_at,
                edited_at: None,
                deleted_at: None,
                purged: false,
            },
        );
        Ok(())
    }

    fn mark_read(
        &mut self,
        positioned: &PositionedEvent,
        channel_key: &ChannelKey,
        up_to: i64,
    ) -> Result<(), Violation> {
        let envelope = &positioned.envelope;
        if up_to > positioned.offset {
            return Err(Violation::ReadBeyondEvent { up_to, offset: positioned.offset });
        }
        let key = member_key(channel_key, &envelope.actor_id);
        let Some(member) = self.members.get(&key).filter(|member| member.is_active()).cloned() else {
            return Err(Violation::NotAMember(envelope.actor_id.clone()));
        };
        let ordinal = self.ordinal_at(channel_key, up_to);
        self.members.insert(
            key,
            MemberRow {
                read_offset: Some(up_to.max(member.read_offset.unwrap_or(0))),
                read_count: ordinal.max(member.read_count),
                ..member
            },
        );
        self.touch_channel(channel_key, positioned, |_| {});
        Ok(())
    }

    /// The ordinal of the last top-level message at or before `offset`: from messages sent earlier in this
    /// batch if any qualifies (they are newer than anything stored), else from what `store` loaded.
    fn ordinal_at(&self, channel_key: &ChannelKey, offset: i64) -> i64 {
        let in_batch = self
            .sent_in_batch
            .get(channel_key)
            .and_then(|sent| sent.iter().rev().find(|(sent_offset, _)| *sent_offset <= offset))
            .map(|(_, ordinal)| *ordinal);
        in_batch.unwrap_or_else(|| {
            self.ordinals_at.get(&(channel_key.0.clone(), channel_key.1.clone(), offset)).copied().unwrap_or(0)
        })
    }

    /// The message must exist and belong to this channel.
    fn message_in_channel(&self, channel_key: &ChannelKey, message_id: MessageId) -> Result<MessageKey, Violation> {
        let key = (channel_key.0.clone(), message_id);
        match self.messages.get(&key) {
            None => Err(Violation::UnknownMessage(message_id)),
            Some(message) if message.channel_id != channel_key.1 => Err(Violation::MessageInOtherChannel(message_id)),
            Some(_) => Ok(key),
        }
    }

    /// Records that the channel saw this event (its position), then applies `change`.
    fn touch_channel(
        &mut self,
        channel_key: &ChannelKey,
        positioned: &PositionedEvent,
        change: impl FnOnce(&mut ChannelRow),
    ) {
        if let Some(channel) = self.channels.get_mut(channel_key) {
            channel.last_offset = channel.last_offset.max(positioned.offset);
            change(channel);
        }
    }

    /// Per table, how many rows changed (for metrics and tests).
    pub fn change_counts(&self) -> BTreeMap<&'static str, usize> {
        fn count<K: Clone + Ord + std::hash::Hash, V>(table: &Table<K, V>) -> usize {
            table.upserts().count() + table.removals().count()
        }
        BTreeMap::from([
            ("channels", count(&self.channels)),
            ("members", count(&self.members)),
            ("messages", count(&self.messages)),
            ("reactions", count(&self.reactions)),
            ("reaction_counts", count(&self.reaction_counts)),
            ("pins", count(&self.pins)),
            ("dm_pairs", count(&self.dm_pairs)),
        ])
    }
}

fn member_key(channel_key: &ChannelKey, user: &UserId) -> MemberKey {
    (channel_key.0.clone(), channel_key.1.clone(), user.clone())
}

fn new_member(positioned: &PositionedEvent, role: Role, read_count: i64) -> MemberRow {
    MemberRow {
        role,
        joined_at: positioned.envelope.occurred_at,
        joined_offset: positioned.offset,
        left_at: None,
        read_offset: None,
        read_count,
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
