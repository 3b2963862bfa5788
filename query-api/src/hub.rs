//! The realtime hub of one node: a bounded buffer of recent events per partition, the open connections,
//! and which connection sees which channel.
//!
//! One dispatcher (the Kafka tail) feeds events in log order. Under one lock it appends the event to its
//! partition's buffer, applies membership changes to the connections of the users concerned, and pushes
//! the event into the bounded queue of every connection that may see it. A connection registers under the
//! same lock, so the events it replays from the buffer and the ones queued for it afterwards neither
//! overlap nor leave a gap.
//!
//! Visibility is exact: a connection loads the user's membership spans from the read model (exact below
//! the projector's checkpoint `applied`) and follows membership events at or above it from the log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chatsdk_schemas::events::{Envelope, Event};
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use tokio::sync::{Notify, mpsc};

use crate::sync::SyncToken;

/// One record of the event topic as the hub keeps it.
#[derive(Debug)]
pub struct Item {
    pub partition: i32,
    pub offset: i64,
    /// `None` for a record that could not be decoded: it only advances positions.
    pub event: Option<LoggedItem>,
}

#[derive(Debug)]
pub struct LoggedItem {
    pub app: AppId,
    pub channel: ChannelId,
    /// Users whose membership this event changes: `true` added, `false` removed.
    pub membership: Vec<(UserId, bool)>,
    /// For `message.sent`: the id, so a retried send appended twice is delivered once.
    pub sent: Option<MessageId>,
    /// A `channel.created`: a second one for the same channel (two nodes creating it at once) is refused by
    /// the projector, so the hub ignores it too.
    pub creates: bool,
    /// The envelope as JSON text (`Envelope::to_value`), serialized once for every receiver.
    pub json: Arc<str>,
}

impl Item {
    pub fn from_envelope(partition: i32, offset: i64, envelope: &Envelope) -> Self {
        let membership = match &envelope.event {
            Event::ChannelCreated(created) => {
                created.members.iter().map(|member| (member.user_id.clone(), true)).collect()
            }
            Event::MemberAdded(added) => vec![(added.user_id.clone(), true)],
            Event::MemberRemoved(removed) => vec![(removed.user_id.clone(), false)],
            _ => Vec::new(),
        };
        let sent = match &envelope.event {
            Event::MessageSent(sent) => Some(sent.message_id),
            _ => None,
        };
        Self {
            partition,
            offset,
            event: Some(LoggedItem {
                app: envelope.app_id.clone(),
                channel: envelope.channel_id.clone(),
                membership,
                sent,
                creates: matches!(envelope.event, Event::ChannelCreated(_)),
                json: envelope.to_value().to_string().into(),
            }),
        }
    }
}

/// What a connection's queue carries.
#[derive(Debug, Clone)]
pub enum Outbound {
    Event(Arc<Item>),
    Ephemeral(Arc<str>),
    /// Everything before these positions that the connection may see was queued before this marker.
    Head(Arc<SyncToken>),
}

/// A user's membership in one channel: spans of offsets, both ends inclusive, the last maybe open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans(Vec<(i64, Option<i64>)>);

impl Spans {
    pub fn push(&mut self, from: i64, to: Option<i64>) {
        self.0.push((from, to));
    }

    pub fn contains(&self, offset: i64) -> bool {
        self.0.iter().any(|(from, to)| *from <= offset && to.is_none_or(|to| offset <= to))
    }

    pub fn is_open(&self) -> bool {
        self.0.iter().any(|(_, to)| to.is_none())
    }

    /// Whether some span still covers an offset after `offset` (the connection must keep receiving).
    pub fn reaches_beyond(&self, offset: i64) -> bool {
        self.0.iter().any(|(_, to)| to.is_none_or(|to| to > offset))
    }

    fn open(&mut self, at: i64) {
        if !self.is_open() {
            self.0.push((at, None));
        }
    }

    fn close(&mut self, at: i64) {
        for span in &mut self.0 {
            if span.1.is_none() && span.0 <= at {
                span.1 = Some(at);
            }
        }
    }
}

/// What the read model said about a user when their connection opened.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    pub channels: HashMap<ChannelId, (i32, Spans)>,
    /// The projector's next offset per partition when the spans were read: exact below it.
    pub applied: SyncToken,
    /// The channels among them that are not public (as the read model says): presence is told there only,
    /// public channels being large audiences.
    pub private: HashSet<ChannelId>,
}

#[derive(Debug)]
struct Connection {
    app: AppId,
    user: UserId,
    channels: HashMap<ChannelId, (i32, Spans)>,
    applied: SyncToken,
    private: HashSet<ChannelId>,
    queue: mpsc::Sender<Outbound>,
    overflow: Arc<Overflow>,
}

impl Connection {
    fn sees(&self, channel: &ChannelId, offset: i64) -> bool {
        self.channels.get(channel).is_some_and(|(_, spans)| spans.contains(offset))
    }

    /// Follows a membership event of the log unless the read model already reflected it.
    fn follow(&mut self, channel: &ChannelId, partition: i32, offset: i64, added: bool) {
        if offset < self.applied.next(partition) {
            return;
        }
        let (_, spans) = self.channels.entry(channel.clone()).or_insert_with(|| (partition, Spans::default()));
        if added { spans.open(offset) } else { spans.close(offset) }
    }
}

/// Set when a connection's queue overflowed: the hub stopped feeding it, the connection must resync.
#[derive(Debug, Default)]
pub struct Overflow {
    pub happened: AtomicBool,
    pub notify: Notify,
}

#[derive(Debug)]
struct Buffer {
    items: VecDeque<Arc<Item>>,
    /// Every offset from here to `next` is in `items` (or was never a record).
    covered_from: i64,
    /// The offset after the last record seen.
    next: i64,
    /// `message.sent` ids in the buffer (with the first one's offset), so a retried send appended twice is
    /// delivered once.
    sent: HashMap<MessageId, i64>,
    /// Channels created in the buffer, with the creating offset.
    created: HashMap<(AppId, ChannelId), i64>,
    /// Offsets of buffered records that are repeats (never delivered).
    repeats: HashSet<i64>,
}

impl Buffer {
    /// Whether `item` repeats an earlier event the projector ignores or refuses (a retried send, a second
    /// create of one channel); remembers it otherwise.
    fn is_repeat(&mut self, item: &Item) -> bool {
        let Some(event) = &item.event else { return false };
        if let Some(id) = event.sent {
            return *self.sent.entry(id).or_insert(item.offset) != item.offset;
        }
        if event.creates {
            let key = (event.app.clone(), event.channel.clone());
            return *self.created.entry(key).or_insert(item.offset) != item.offset;
        }
        false
    }

    fn evict(&mut self, evicted: &Item) {
        self.covered_from = evicted.offset + 1;
        self.repeats.remove(&evicted.offset);
        let Some(event) = &evicted.event else { return };
        if let Some(id) = event.sent
            && self.sent.get(&id) == Some(&evicted.offset)
        {
            self.sent.remove(&id);
        }
        if event.creates {
            let key = (event.app.clone(), event.channel.clone());
            if self.created.get(&key) == Some(&evicted.offset) {
                self.created.remove(&key);
            }
        }
    }

    /// Index of the first buffered record at or after `offset`.
    fn position_of(&self, offset: i64) -> usize {
        self.items.partition_point(|item| item.offset < offset)
    }
}

#[derive(Debug, Default)]
struct State {
    buffers: HashMap<i32, Buffer>,
    /// Partitions whose tail has not reached the end it had at start: partition → that end.
    catching_up: HashMap<i32, i64>,
    connections: HashMap<u64, Connection>,
    by_channel: HashMap<(AppId, ChannelId), HashSet<u64>>,
    by_user: HashMap<(AppId, UserId), HashSet<u64>>,
}

impl State {
    /// The position after the last record of every partition.
    fn head(&self) -> SyncToken {
        let mut head = SyncToken::default();
        for (partition, buffer) in &self.buffers {
            head.advance(*partition, buffer.next);
        }
        head
    }
}

/// Why a connection cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("the token is older than this node's buffer")]
    TokenTooOld,
    #[error("this node is not tailing the log yet")]
    NotReady,
    /// The read model is further behind than this node's buffer: membership changes in between are known
    /// to neither, so the connection could not be exact.
    #[error("the read model is further behind than this node's buffer")]
    ProjectionBehind,
}

/// A registered connection: what to replay before reading the queue.
#[derive(Debug)]
pub struct Started {
    pub id: u64,
    pub replay: Vec<Arc<Item>>,
    /// The token the connection starts from (the given one, or this node's head).
    pub cursor: SyncToken,
    pub overflow: Arc<Overflow>,
}

#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    capacity: usize,
    next_id: AtomicU64,
    /// Set once the tail has read up to the log's end as it was when the tail started.
    ready: AtomicBool,
    /// Set once the ephemeral tail is assigned (typing and presence reach this node's sockets).
    ephemeral: AtomicBool,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            ready: AtomicBool::new(false),
            ephemeral: AtomicBool::new(false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.ephemeral.load(Ordering::Acquire)
    }

    /// The ephemeral topic's tail is assigned.
    pub fn ephemeral_assigned(&self) {
        self.ephemeral.store(true, Ordering::Release);
    }

    /// The tail starts reading `partition` at `offset`; the hub is ready once every partition reached the
    /// `end` given here (so a socket does not start while this node is still catching up).
    pub fn start_partition(&self, partition: i32, offset: i64, end: i64) {
        let mut state = self.state();
        let state = &mut *state;
        let buffer = state.buffers.entry(partition).or_insert_with(|| Buffer {
            items: VecDeque::new(),
            covered_from: offset,
            next: offset,
            sent: HashMap::new(),
            created: HashMap::new(),
            repeats: HashSet::new(),
        });
        if buffer.next < end {
            state.catching_up.insert(partition, end);
        }
    }

    /// Every partition is assigned: the hub is ready when none of them is still catching up.
    pub fn assigned(&self) {
        if self.state().catching_up.is_empty() {
            self.ready.store(true, Ordering::Release);
        }
    }

    pub fn connections(&self) -> usize {
        self.state().connections.len()
    }

    /// The position after the last record of every partition.
    pub fn head(&self) -> SyncToken {
        self.state().head()
    }

    /// Appends a record of the log and queues it for every connection that sees it. Returns how many
    /// connections it was queued for.
    pub fn dispatch(&self, item: Item) -> usize {
        let item = Arc::new(item);
        let mut state = self.state();
        let state = &mut *state;
        let Some(buffer) = state.buffers.get_mut(&item.partition) else { return 0 };
        if item.offset < buffer.next {
            return 0; // Already seen (a re-delivery after a seek).
        }
        let repeat = buffer.is_repeat(&item);
        if repeat {
            buffer.repeats.insert(item.offset);
        }
        buffer.next = item.offset + 1;
        buffer.items.push_back(Arc::clone(&item));
        while buffer.items.len() > self.capacity {
            if let Some(evicted) = buffer.items.pop_front() {
                buffer.evict(&evicted);
            }
        }
        if state.catching_up.get(&item.partition).is_some_and(|end| buffer.next >= *end) {
            state.catching_up.remove(&item.partition);
            if state.catching_up.is_empty() {
                self.ready.store(true, Ordering::Release);
            }
        }
        let Some(event) = &item.event else { return 0 };
        if repeat {
            return 0;
        }
        for (user, added) in &event.membership {
            let ids = state.by_user.get(&(event.app.clone(), user.clone())).cloned().unwrap_or_default();
            for id in ids {
                if let Some(connection) = state.connections.get_mut(&id) {
                    connection.follow(&event.channel, item.partition, item.offset, *added);
                    if *added {
                        state.by_channel.entry((event.app.clone(), event.channel.clone())).or_default().insert(id);
                    }
                }
            }
        }
        let key = (event.app.clone(), event.channel.clone());
        let mut delivered = 0;
        let mut overflowed = Vec::new();
        let mut departed = Vec::new();
        if let Some(ids) = state.by_channel.get(&key) {
            for id in ids {
                let Some(connection) = state.connections.get(id) else { continue };
                if connection.sees(&event.channel, item.offset) {
                    match connection.queue.try_send(Outbound::Event(Arc::clone(&item))) {
                        Ok(()) => delivered += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(*id),
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                let stays =
                    connection.channels.get(&event.channel).is_some_and(|(_, spans)| spans.reaches_beyond(item.offset));
                if !stays {
                    departed.push(*id);
                }
            }
        }
        if let Some(ids) = state.by_channel.get_mut(&key) {
            for id in &departed {
                ids.remove(id);
            }
            if ids.is_empty() {
                state.by_channel.remove(&key);
            }
        }
        for id in overflowed {
            Self::overflow(state, id);
        }
        delivered
    }

    /// An ephemeral event (typing, presence) for the members of `channels` on this node, except `sender`'s
    /// own sockets, each socket once; dropped for a socket whose queue is half full (it is not part of the
    /// log and nothing can resume it).
    pub fn tell(&self, app: &AppId, channels: &[ChannelId], sender: &UserId, json: Arc<str>) -> usize {
        let state = self.state();
        let mut told = HashSet::new();
        for channel in channels {
            let Some(ids) = state.by_channel.get(&(app.clone(), channel.clone())) else { continue };
            for id in ids {
                let Some(connection) = state.connections.get(id) else { continue };
                let member = connection.channels.get(channel).is_some_and(|(_, spans)| spans.is_open());
                // Only into a queue with room to spare: a burst of ephemeral frames must not fill a queue and
                // make the next log event overflow it.
                let spare = connection.queue.capacity() * 2 > connection.queue.max_capacity();
                if member
                    && spare
                    && &connection.user != sender
                    && !told.contains(id)
                    && connection.queue.try_send(Outbound::Ephemeral(Arc::clone(&json))).is_ok()
                {
                    told.insert(*id);
                }
            }
        }
        told.len()
    }

    /// The channels whose members hear of a connection's user going on- or offline: those they are a
    /// member of now and that the read model knew as not public when the socket opened (a public channel is a
    /// large audience; a channel joined since is told at the next connection).
    pub fn presence_channels(&self, id: u64) -> Vec<ChannelId> {
        let state = self.state();
        let Some(connection) = state.connections.get(&id) else { return Vec::new() };
        connection
            .channels
            .iter()
            .filter(|(channel, (_, spans))| spans.is_open() && connection.private.contains(*channel))
            .map(|(channel, _)| channel.clone())
            .collect()
    }

    /// Queues a `Head` marker for every connection, so idle ones can hand out fresh resume tokens.
    pub fn broadcast_head(&self) {
        let state = self.state();
        let head = Arc::new(state.head());
        for connection in state.connections.values() {
            // A full queue will overflow on its own; the marker is only an optimisation.
            let _ = connection.queue.try_send(Outbound::Head(Arc::clone(&head)));
        }
    }

    fn overflow(state: &mut State, id: u64) {
        if let Some(connection) = Self::unregister_locked(state, id) {
            connection.overflow.happened.store(true, Ordering::Release);
            connection.overflow.notify.notify_one();
        }
    }

    /// Registers a connection of `user` resuming after `token` (or starting at this node's head).
    pub fn register(
        &self,
        app: &AppId,
        user: &UserId,
        membership: Membership,
        token: Option<&SyncToken>,
        queue: mpsc::Sender<Outbound>,
    ) -> Result<Started, StartError> {
        if !self.is_ready() {
            return Err(StartError::NotReady);
        }
        let mut state = self.state();
        let state = &mut *state;
        let mut connection = Connection {
            app: app.clone(),
            user: user.clone(),
            channels: membership.channels,
            applied: membership.applied,
            private: membership.private,
            queue,
            overflow: Arc::default(),
        };
        let mut cursor = SyncToken::default();
        // A token too old first: the client can act on it (sync, then reconnect).
        let too_old = |(partition, buffer): (&i32, &Buffer)| {
            token.is_some_and(|token| token.next(*partition) < buffer.covered_from)
        };
        if state.buffers.iter().any(too_old) {
            return Err(StartError::TokenTooOld);
        }
        for (partition, buffer) in &state.buffers {
            if connection.applied.next(*partition) < buffer.covered_from {
                return Err(StartError::ProjectionBehind);
            }
            match token {
                Some(token) if token.next(*partition) < buffer.covered_from => return Err(StartError::TokenTooOld),
                Some(token) => cursor.advance(*partition, token.next(*partition)),
                None => cursor.advance(*partition, buffer.next),
            }
        }
        // Membership changes the read model had not applied when the spans were read, then the replay: both
        // start in the buffer where they are needed, not at its beginning.
        let mut partitions: Vec<_> = state.buffers.iter().collect();
        partitions.sort_by_key(|(partition, _)| **partition);
        let mut replay = Vec::new();
        for (partition, buffer) in partitions {
            let (applied, from) = (connection.applied.next(*partition), cursor.next(*partition));
            for item in buffer.items.range(buffer.position_of(applied.min(from))..) {
                let Some(event) = &item.event else { continue };
                if &event.app != app || buffer.repeats.contains(&item.offset) {
                    continue;
                }
                if item.offset >= applied {
                    for (member, added) in &event.membership {
                        if member == user {
                            connection.follow(&event.channel, *partition, item.offset, *added);
                        }
                    }
                }
                if item.offset >= from && connection.sees(&event.channel, item.offset) {
                    replay.push(Arc::clone(item));
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        for (channel, (partition, spans)) in &connection.channels {
            // Every channel the user is in at this node's head or later — also one they leave at an offset
            // the tail has not reached yet: its events up to the removal are still to come.
            let head = state.buffers.get(partition).map_or(0, |buffer| buffer.next);
            if spans.reaches_beyond(head - 1) {
                state.by_channel.entry((app.clone(), channel.clone())).or_default().insert(id);
            }
        }
        state.by_user.entry((app.clone(), user.clone())).or_default().insert(id);
        let overflow = Arc::clone(&connection.overflow);
        state.connections.insert(id, connection);
        Ok(Started { id, replay, cursor, overflow })
    }

    /// Whether a connection's user is a member of `channel` now (for typing).
    pub fn is_member(&self, id: u64, channel: &ChannelId) -> bool {
        let state = self.state();
        state
            .connections
            .get(&id)
            .and_then(|connection| connection.channels.get(channel))
            .is_some_and(|(_, spans)| spans.is_open())
    }

    pub fn unregister(&self, id: u64) {
        let mut state = self.state();
        Self::unregister_locked(&mut state, id);
    }

    fn unregister_locked(state: &mut State, id: u64) -> Option<Connection> {
        let connection = state.connections.remove(&id)?;
        for channel in connection.channels.keys() {
            let key = (connection.app.clone(), channel.clone());
            if let Some(ids) = state.by_channel.get_mut(&key) {
                ids.remove(&id);
                if ids.is_empty() {
                    state.by_channel.remove(&key);
                }
            }
        }
        let key = (connection.app.clone(), connection.user.clone());
        if let Some(ids) = state.by_user.get_mut(&key) {
            ids.remove(&id);
            if ids.is_empty() {
                state.by_user.remove(&key);
            }
        }
        Some(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<T: std::str::FromStr>(text: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        text.parse().unwrap()
    }

    /// An event of channel `channel` in partition 0.
    fn item(offset: i64, channel: &str, membership: &[(&str, bool)]) -> Item {
        Item {
            partition: 0,
            offset,
            event: Some(LoggedItem {
                app: id("acme"),
                channel: id(channel),
                membership: membership.iter().map(|(user, added)| (id(user), *added)).collect(),
                sent: None,
                creates: false,
                json: format!("{{\"offset\":{offset}}}").into(),
            }),
        }
    }

    fn hub(capacity: usize) -> Hub {
        let hub = Hub::new(capacity);
        hub.start_partition(0, 0, 0);
        hub.assigned();
        hub.ephemeral_assigned();
        hub
    }

    /// Bob, a member of `general` since offset 0 according to the read model at `applied`.
    fn bob(applied: i64) -> Membership {
        let mut spans = Spans::default();
        spans.push(0, None);
        let mut membership = Membership::default();
        membership.channels.insert(id("general"), (0, spans));
        membership.applied.advance(0, applied);
        membership
    }

    fn offsets(items: &[Arc<Item>]) -> Vec<i64> {
        items.iter().map(|item| item.offset).collect()
    }

    fn drain(queue: &mut mpsc::Receiver<Outbound>) -> Vec<i64> {
        let mut offsets = Vec::new();
        while let Ok(outbound) = queue.try_recv() {
            if let Outbound::Event(item) = outbound {
                offsets.push(item.offset);
            }
        }
        offsets
    }

    #[test]
    fn a_resumed_connection_gets_the_buffer_after_its_token_then_live_events_without_overlap() {
        let hub = hub(100);
        for offset in 0..5 {
            hub.dispatch(item(offset, if offset == 2 { "elsewhere" } else { "general" }, &[]));
        }
        let mut token = SyncToken::default();
        token.advance(0, 1);
        let (sender, mut queue) = mpsc::channel(16);
        let started = hub.register(&id("acme"), &id("bob"), bob(5), Some(&token), sender).unwrap();
        assert_eq!(offsets(&started.replay), vec![1, 3, 4], "after the token, only bob's channels");
        assert_eq!(started.cursor.next(0), 1);
        hub.dispatch(item(5, "general", &[]));
        hub.dispatch(item(6, "elsewhere", &[]));
        assert_eq!(drain(&mut queue), vec![5]);
    }

    #[test]
    fn a_token_before_the_buffer_is_refused_and_a_missing_one_starts_at_the_head() {
        let hub = hub(3);
        for offset in 0..6 {
            hub.dispatch(item(offset, "general", &[]));
        }
        let mut old = SyncToken::default();
        old.advance(0, 2);
        let (sender, _queue) = mpsc::channel(16);
        let refused = hub.register(&id("acme"), &id("bob"), bob(6), Some(&old), sender.clone());
        assert_eq!(refused.err(), Some(StartError::TokenTooOld));
        old.advance(0, 3);
        assert!(hub.register(&id("acme"), &id("bob"), bob(6), Some(&old), sender.clone()).is_ok(), "3 is still held");
        let fresh = hub.register(&id("acme"), &id("bob"), bob(6), None, sender).unwrap();
        assert!(fresh.replay.is_empty());
        assert_eq!(fresh.cursor.next(0), 6);
    }

    #[test]
    fn membership_events_the_read_model_had_not_applied_are_followed() {
        let hub = hub(100);
        hub.dispatch(item(0, "general", &[]));
        // Carol was added at offset 1, which the read model (applied up to 1) did not reflect.
        hub.dispatch(item(1, "general", &[("carol", true)]));
        hub.dispatch(item(2, "general", &[]));
        let mut membership = Membership::default();
        membership.applied.advance(0, 1);
        let (sender, mut queue) = mpsc::channel(16);
        let started = hub.register(&id("acme"), &id("carol"), membership, Some(&SyncToken::default()), sender).unwrap();
        assert_eq!(offsets(&started.replay), vec![1, 2], "from her addition on");
        hub.dispatch(item(3, "general", &[("carol", false)]));
        hub.dispatch(item(4, "general", &[]));
        assert_eq!(drain(&mut queue), vec![3], "her removal, then nothing");
        assert!(!hub.is_member(started.id, &id("general")));
    }

    #[test]
    fn a_full_queue_unregisters_the_connection_and_flags_it_for_resync() {
        let hub = hub(100);
        let (sender, mut queue) = mpsc::channel(2);
        let started = hub.register(&id("acme"), &id("bob"), bob(0), None, sender).unwrap();
        assert_eq!(hub.dispatch(item(0, "general", &[])), 1);
        assert_eq!(hub.dispatch(item(1, "general", &[])), 1);
        assert!(!started.overflow.happened.load(Ordering::Acquire));
        assert_eq!(hub.dispatch(item(2, "general", &[])), 0, "the third does not fit");
        assert!(started.overflow.happened.load(Ordering::Acquire));
        assert_eq!(hub.connections(), 0);
        assert_eq!(drain(&mut queue), vec![0, 1], "what was queued stays in order; the cursor resumes after it");
    }

    #[test]
    fn a_send_appended_twice_is_delivered_once_even_after_the_first_left_the_buffer() {
        let hub = hub(2);
        let (sender, mut queue) = mpsc::channel(16);
        hub.register(&id("acme"), &id("bob"), bob(0), None, sender).unwrap();
        let message: MessageId = id("0190f5f0-0000-7000-8000-000000000001");
        for offset in [0, 1] {
            let mut sent = item(offset, "general", &[]);
            if let Some(event) = sent.event.as_mut() {
                event.sent = Some(message);
            }
            hub.dispatch(sent);
        }
        assert_eq!(drain(&mut queue), vec![0]);
        // The first send leaves the buffer; the repeat is still known as one.
        hub.dispatch(item(2, "general", &[]));
        let (sender, _queue) = mpsc::channel(16);
        let mut token = SyncToken::default();
        token.advance(0, 1);
        let resumed = hub.register(&id("acme"), &id("bob"), bob(3), Some(&token), sender).unwrap();
        assert_eq!(offsets(&resumed.replay), vec![2]);
    }

    #[test]
    fn a_removal_the_tail_has_not_reached_still_delivers_up_to_it() {
        // The read model already shows bob removed at offset 3; this node's tail is at offset 1.
        let hub = hub(100);
        hub.dispatch(item(0, "general", &[]));
        let mut spans = Spans::default();
        spans.push(0, Some(3));
        let mut membership = Membership::default();
        membership.channels.insert(id("general"), (0, spans));
        membership.applied.advance(0, 4);
        let (sender, mut queue) = mpsc::channel(16);
        let started = hub.register(&id("acme"), &id("bob"), membership, None, sender).unwrap();
        assert!(started.replay.is_empty());
        for offset in 1..6 {
            hub.dispatch(item(offset, "general", &[]));
        }
        assert_eq!(drain(&mut queue), vec![1, 2, 3], "up to and including the removal, then nothing");
    }

    #[test]
    fn a_read_model_behind_the_buffer_refuses_connections() {
        let hub = hub(2);
        for offset in 0..5 {
            hub.dispatch(item(offset, "general", &[]));
        }
        let (sender, _queue) = mpsc::channel(16);
        let refused = hub.register(&id("acme"), &id("bob"), bob(1), None, sender.clone());
        assert_eq!(refused.err(), Some(StartError::ProjectionBehind), "offsets 1..3 are in neither");
        assert!(hub.register(&id("acme"), &id("bob"), bob(3), None, sender).is_ok());
    }

    #[test]
    fn a_second_create_of_a_channel_is_ignored_like_the_projector_does() {
        let hub = hub(100);
        let (sender, mut queue) = mpsc::channel(16);
        let started = hub.register(&id("acme"), &id("mallory"), Membership::default(), None, sender).unwrap();
        let mut first = item(0, "general", &[("alice", true)]);
        let mut second = item(1, "general", &[("mallory", true)]);
        for created in [&mut first, &mut second] {
            if let Some(event) = created.event.as_mut() {
                event.creates = true;
            }
        }
        hub.dispatch(first);
        hub.dispatch(second);
        hub.dispatch(item(2, "general", &[]));
        assert!(drain(&mut queue).is_empty());
        assert!(!hub.is_member(started.id, &id("general")));
    }

    #[test]
    fn a_node_is_ready_once_its_tail_reached_the_end_it_started_with() {
        let hub = Hub::new(100);
        hub.ephemeral_assigned();
        hub.start_partition(0, 0, 2);
        hub.start_partition(1, 5, 5);
        hub.assigned();
        assert!(!hub.is_ready());
        hub.dispatch(item(0, "general", &[]));
        assert!(!hub.is_ready());
        hub.dispatch(item(1, "general", &[]));
        assert!(hub.is_ready());
    }

    #[test]
    fn presence_is_told_in_the_channels_a_user_is_in_except_public_ones() {
        let hub = hub(100);
        let mut membership = bob(0);
        let mut lobby = Spans::default();
        lobby.push(0, None);
        membership.channels.insert(id("lobby"), (0, lobby));
        membership.private.insert(id("general"));
        membership.private.insert(id("old"));
        let mut left = Spans::default();
        left.push(0, Some(1));
        membership.channels.insert(id("old"), (0, left));
        let (sender, _queue) = mpsc::channel(16);
        let started = hub.register(&id("acme"), &id("bob"), membership, None, sender).unwrap();
        assert_eq!(hub.presence_channels(started.id), vec![id::<ChannelId>("general")]);
    }

    #[test]
    fn ephemeral_frames_only_go_into_a_queue_with_room_to_spare() {
        let hub = hub(100);
        let (sender, mut queue) = mpsc::channel(4);
        let mut membership = bob(0);
        membership.private.insert(id("general"));
        hub.register(&id("acme"), &id("bob"), membership, None, sender).unwrap();
        let typing: Arc<str> = "{}".into();
        assert_eq!(hub.tell(&id("acme"), &[id("general")], &id("alice"), Arc::clone(&typing)), 1);
        assert_eq!(hub.tell(&id("acme"), &[id("general")], &id("bob"), Arc::clone(&typing)), 0, "not to oneself");
        hub.dispatch(item(0, "general", &[]));
        assert_eq!(hub.tell(&id("acme"), &[id("general")], &id("alice"), typing), 0, "half full: log events first");
        assert_eq!(drain(&mut queue), vec![0]);
    }
}
