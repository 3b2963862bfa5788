//! Given rows, when events are applied, then these rows: the projection without a database.

#![allow(clippy::unwrap_used)]

use chatsdk_schemas::events::*;
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use chatsdk_schemas::{Envelope, Event};
use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::*;

fn app() -> AppId {
    "acme".parse().unwrap()
}
fn channel() -> ChannelId {
    "general".parse().unwrap()
}
fn user(name: &str) -> UserId {
    name.parse().unwrap()
}
fn message(n: u128) -> MessageId {
    MessageId::from_uuid(Uuid::from_u128(n))
}
fn channel_key() -> ChannelKey {
    (app(), channel())
}
fn member(name: &str) -> MemberKey {
    (app(), channel(), user(name))
}

/// An event by `actor` at `offset` in channel acme/general, partition 3, at second `offset` of a fixed day.
fn at(offset: i64, actor: &str, event: Event) -> PositionedEvent {
    let mut envelope = Envelope::new(app(), channel(), user(actor), event);
    envelope.occurred_at = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + chrono::Duration::seconds(offset);
    PositionedEvent { partition: 3, offset, envelope }
}

fn created(channel_type: ChannelType, members: &[(&str, Role)]) -> Event {
    Event::ChannelCreated(ChannelCreated {
        channel_type,
        name: Some("General".to_owned()),
        topic: None,
        custom: None,
        members: members.iter().map(|(name, role)| ChannelMember { user_id: user(name), role: *role }).collect(),
    })
}

fn sent(id: u128, parent: Option<u128>) -> Event {
    Event::MessageSent(MessageSent {
        message_id: message(id),
        client_msg_id: None,
        text: format!("message {id}"),
        mentions: vec![],
        attachments: vec![],
        parent_id: parent.map(message),
        custom: None,
    })
}

fn reaction(id: u128, emoji: &str) -> Reaction {
    Reaction { message_id: message(id), emoji: emoji.to_owned() }
}

/// Applies every event, expecting success.
fn given(events: Vec<PositionedEvent>) -> ReadModel {
    let mut model = ReadModel::default();
    for event in &events {
        model.apply(event).unwrap_or_else(|violation| panic!("offset {}: {violation}", event.offset));
    }
    model
}

fn group_with(members: &[(&str, Role)]) -> ReadModel {
    given(vec![at(0, members[0].0, created(ChannelType::Group, members))])
}

fn unread(model: &ReadModel, name: &str) -> i64 {
    model.channels.get(&channel_key()).unwrap().message_count - model.members.get(&member(name)).unwrap().read_count
}

#[test]
fn channel_created_makes_the_channel_and_its_initial_members() {
    let model = group_with(&[("alice", Role::Owner), ("bob", Role::Member)]);
    let channel = model.channels.get(&channel_key()).unwrap();
    assert_eq!(channel.channel_type, ChannelType::Group);
    assert_eq!(channel.created_by, user("alice"));
    assert_eq!((channel.partition, channel.last_offset, channel.message_count), (3, 0, 0));
    assert_eq!(model.members.get(&member("alice")).unwrap().role, Role::Owner);
    assert!(model.members.get(&member("bob")).unwrap().is_active());
}

#[test]
fn a_dm_records_its_pair_and_a_second_dm_for_the_pair_is_a_violation() {
    let mut model =
        given(vec![at(0, "bob", created(ChannelType::Dm, &[("bob", Role::Member), ("alice", Role::Member)]))]);
    assert_eq!(model.dm_pairs.get(&(app(), user("alice"), user("bob"))), Some(&channel()));

    let mut other = at(1, "alice", created(ChannelType::Dm, &[("alice", Role::Member), ("bob", Role::Member)]));
    other.envelope.channel_id = "dm-2".parse().unwrap();
    assert_eq!(model.apply(&other), Err(Violation::DmExists));
    let mut lonely = at(2, "alice", created(ChannelType::Dm, &[("alice", Role::Member), ("alice", Role::Member)]));
    lonely.envelope.channel_id = "dm-3".parse().unwrap();
    assert!(matches!(model.apply(&lonely), Err(Violation::DuplicateInitialMember(_))));
    let mut crowded = at(
        3,
        "alice",
        created(ChannelType::Dm, &[("alice", Role::Member), ("bob", Role::Member), ("carol", Role::Member)]),
    );
    crowded.envelope.channel_id = "dm-4".parse().unwrap();
    assert_eq!(model.apply(&crowded), Err(Violation::DmNeedsTwoMembers));
}

#[test]
fn violations_change_nothing() {
    let mut model = group_with(&[("alice", Role::Owner)]);
    let before = model.change_counts();
    assert_eq!(model.apply(&at(1, "alice", created(ChannelType::Group, &[]))), Err(Violation::ChannelExists));
    let edit = Event::MessageEdited(MessageEdited { message_id: message(9), text: "x".into(), mentions: vec![] });
    assert_eq!(model.apply(&at(2, "alice", edit)), Err(Violation::UnknownMessage(message(9))));
    assert_eq!(model.apply(&at(3, "alice", sent(1, Some(9)))), Err(Violation::InvalidParent(message(9))));
    assert_eq!(model.change_counts(), before);
    assert_eq!(model.channels.get(&channel_key()).unwrap().last_offset, 0, "a violation must not move the channel");

    let mut elsewhere = at(4, "alice", Event::ChannelArchived(ChannelArchived { reason: None }));
    elsewhere.envelope.channel_id = "nowhere".parse().unwrap();
    assert_eq!(model.apply(&elsewhere), Err(Violation::UnknownChannel));
}

#[test]
fn sends_count_top_level_messages_and_the_author_has_read_their_own() {
    let model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner), ("bob", Role::Member)])),
        at(1, "alice", sent(1, None)),
        at(2, "bob", sent(2, None)),
        at(3, "alice", sent(3, None)),
    ]);
    let channel = model.channels.get(&channel_key()).unwrap();
    assert_eq!(channel.message_count, 3);
    assert_eq!((channel.last_message_id, channel.last_message_offset), (Some(message(3)), Some(3)));
    assert_eq!(model.messages.get(&(app(), message(2))).unwrap().ordinal, Some(2));
    assert_eq!(unread(&model, "alice"), 0);
    assert_eq!(unread(&model, "bob"), 1, "bob read up to his own message 2, message 3 is new");
}

#[test]
fn a_retried_send_with_the_same_id_keeps_the_first() {
    let mut retry = sent(1, None);
    if let Event::MessageSent(message) = &mut retry {
        message.text = "second attempt".to_owned();
    }
    let model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner)])),
        at(1, "alice", sent(1, None)),
        at(2, "alice", retry),
    ]);
    assert_eq!(model.messages.get(&(app(), message(1))).unwrap().text, "message 1");
    assert_eq!(model.channels.get(&channel_key()).unwrap().message_count, 1);
}

#[test]
fn thread_replies_count_on_their_root_not_on_the_channel() {
    let mut model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner)])),
        at(1, "alice", sent(1, None)),
        at(2, "alice", sent(2, Some(1))),
        at(3, "alice", sent(3, Some(1))),
    ]);
    let root = model.messages.get(&(app(), message(1))).unwrap();
    assert_eq!(root.reply_count, 2);
    assert_eq!(root.last_reply_at, Some(at(3, "alice", sent(0, None)).envelope.occurred_at));
    assert_eq!(model.messages.get(&(app(), message(2))).unwrap().ordinal, None);
    assert_eq!(model.channels.get(&channel_key()).unwrap().message_count, 1);
    // Threads are one level deep.
    assert_eq!(model.apply(&at(4, "alice", sent(4, Some(2)))), Err(Violation::InvalidParent(message(2))));
}

#[test]
fn edits_replace_text_and_deletes_tombstone_or_purge() {
    let edit = |id, text: &str| {
        Event::MessageEdited(MessageEdited {
            message_id: message(id),
            text: text.to_owned(),
            mentions: vec![user("bob")],
        })
    };
    let model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner)])),
        at(1, "alice", sent(1, None)),
        at(2, "alice", sent(2, None)),
        at(3, "alice", edit(1, "fixed typo")),
        at(4, "alice", Event::MessageDeleted(MessageDeleted { message_id: message(1), hard: false })),
        at(5, "alice", edit(1, "edit after delete is ignored")),
        at(6, "alice", Event::MessageDeleted(MessageDeleted { message_id: message(2), hard: true })),
    ]);
    let soft = model.messages.get(&(app(), message(1))).unwrap();
    assert_eq!((soft.text.as_str(), soft.mentions.len(), soft.purged), ("fixed typo", 1, false));
    assert!(soft.edited_at.is_some() && soft.deleted_at.is_some());
    let hard = model.messages.get(&(app(), message(2))).unwrap();
    assert!(hard.purged && hard.text.is_empty() && hard.deleted_at.is_some());
}

#[test]
fn reactions_are_counted_once_per_user_and_emoji() {
    let model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner), ("bob", Role::Member)])),
        at(1, "alice", sent(1, None)),
        at(2, "alice", Event::ReactionAdded(reaction(1, "👍"))),
        at(3, "bob", Event::ReactionAdded(reaction(1, "👍"))),
        at(4, "bob", Event::ReactionAdded(reaction(1, "👍"))),
        at(5, "bob", Event::ReactionAdded(reaction(1, "🎉"))),
        at(6, "bob", Event::ReactionRemoved(reaction(1, "🎉"))),
        at(7, "bob", Event::ReactionRemoved(reaction(1, "🎉"))),
    ]);
    assert_eq!(model.reaction_counts.get(&(app(), message(1), "👍".to_owned())), Some(&2));
    assert_eq!(model.reaction_counts.get(&(app(), message(1), "🎉".to_owned())), None);
    assert!(model.reactions.get(&(app(), message(1), "👍".to_owned(), user("bob"))).is_some());
}

#[test]
fn removing_the_last_reaction_of_a_stored_count_deletes_the_count_row() {
    let mut model = group_with(&[("alice", Role::Owner)]);
    model.apply(&at(1, "alice", sent(1, None))).unwrap();
    // As if loaded from the database: alice's 👍 with a count of 1.
    model.reactions.load((app(), message(1), "👍".to_owned(), user("alice")), Utc::now());
    model.reaction_counts.load((app(), message(1), "👍".to_owned()), 1);
    model.apply(&at(2, "alice", Event::ReactionRemoved(reaction(1, "👍")))).unwrap();
    let removed: Vec<_> = model.reaction_counts.removals().collect();
    assert_eq!(removed, vec![&(app(), message(1), "👍".to_owned())]);
    assert_eq!(model.reactions.removals().count(), 1);
}

#[test]
fn pins_are_set_once_and_removed() {
    let pin = |id| Event::MessagePinned(PinChange { message_id: message(id) });
    let model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner)])),
        at(1, "alice", sent(1, None)),
        at(2, "alice", sent(2, None)),
        at(3, "alice", pin(1)),
        at(4, "alice", pin(1)),
        at(5, "alice", pin(2)),
        at(6, "alice", Event::MessageUnpinned(PinChange { message_id: message(2) })),
    ]);
    assert_eq!(
        model.pins.get(&(app(), channel(), message(1))).unwrap().pinned_at,
        at(3, "x", sent(0, None)).envelope.occurred_at
    );
    assert!(model.pins.get(&(app(), channel(), message(2))).is_none());
}

#[test]
fn read_markers_use_ordinals_never_move_back_and_stay_within_the_log() {
    let read = |up_to| Event::ReadMarked(ReadMarked { up_to_offset: up_to });
    let mut model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner), ("bob", Role::Member)])),
        at(1, "alice", sent(1, None)),
        at(2, "alice", sent(2, None)),
        at(3, "alice", sent(3, None)),
        at(4, "bob", read(2)),
    ]);
    assert_eq!(unread(&model, "bob"), 1);
    model.apply(&at(5, "bob", read(1))).unwrap();
    assert_eq!(unread(&model, "bob"), 1, "an older marker must not bring messages back to unread");
    assert_eq!(model.apply(&at(6, "bob", read(99))), Err(Violation::ReadBeyondEvent { up_to: 99, offset: 6 }));
    assert_eq!(model.apply(&at(7, "carol", read(3))), Err(Violation::NotAMember(user("carol"))));
}

#[test]
fn a_read_marker_before_this_batch_uses_the_loaded_ordinal() {
    // Stored: a channel with 10 messages, the 7th at offset 40; bob has read nothing.
    let mut model = ReadModel::default();
    let mut channel_row =
        given(vec![at(0, "alice", created(ChannelType::Group, &[]))]).channels.get(&channel_key()).unwrap().clone();
    channel_row.message_count = 10;
    channel_row.last_message_offset = Some(90);
    model.channels.load(channel_key(), channel_row);
    model.members.load(member("bob"), new_member(&at(0, "alice", sent(0, None)), Role::Member, 0));
    model.ordinals_at.insert((app(), channel(), 45), 7);

    model.apply(&at(100, "bob", Event::ReadMarked(ReadMarked { up_to_offset: 45 }))).unwrap();
    assert_eq!(unread(&model, "bob"), 3);
}

#[test]
fn members_leave_rejoin_and_change_roles() {
    let mut model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner)])),
        at(1, "alice", sent(1, None)),
        at(2, "alice", Event::MemberAdded(MemberAdded { user_id: user("bob"), role: Role::Member })),
        at(3, "alice", sent(2, None)),
    ]);
    assert_eq!(unread(&model, "bob"), 1, "history before joining counts as read");
    model
        .apply(&at(4, "bob", Event::MemberRemoved(MemberRemoved { user_id: user("bob"), reason: RemovalReason::Left })))
        .unwrap();
    assert!(!model.members.get(&member("bob")).unwrap().is_active());
    let promote = Event::MemberRoleChanged(MemberRoleChanged {
        user_id: user("bob"),
        role: Role::Admin,
        previous_role: Role::Member,
    });
    assert_eq!(model.apply(&at(5, "alice", promote.clone())), Err(Violation::NotAMember(user("bob"))));
    model.apply(&at(6, "alice", Event::MemberAdded(MemberAdded { user_id: user("bob"), role: Role::Member }))).unwrap();
    model.apply(&at(7, "alice", promote)).unwrap();
    let bob = model.members.get(&member("bob")).unwrap();
    assert_eq!((bob.role, bob.joined_offset, bob.left_at), (Role::Admin, 6, None));
    let spans: Vec<_> = model.spans.iter().map(|((key, from), to)| (key.2.as_str(), *from, *to)).collect();
    assert_eq!(
        spans,
        vec![("alice", 0, None), ("bob", 2, Some(4)), ("bob", 6, None)],
        "each stretch of membership is a span; leaving ends it at the leave event"
    );
}

#[test]
fn a_retried_send_is_a_repeat_and_nothing_else_is() {
    let mut model = given(vec![
        at(0, "alice", created(ChannelType::Group, &[("alice", Role::Owner)])),
        at(1, "alice", sent(1, None)),
    ]);
    model.apply(&at(2, "alice", sent(1, None))).unwrap();
    model.apply(&at(3, "alice", sent(2, None))).unwrap();
    assert_eq!(model.repeats.iter().copied().collect::<Vec<_>>(), vec![2]);
    // An edit after the message was deleted changes nothing and stays out of the feed.
    let deleted = Event::MessageDeleted(MessageDeleted { message_id: message(2), hard: true });
    model.apply(&at(4, "alice", deleted)).unwrap();
    let edit = Event::MessageEdited(MessageEdited { message_id: message(2), text: "late".into(), mentions: vec![] });
    model.apply(&at(5, "alice", edit)).unwrap();
    assert_eq!(model.repeats.iter().copied().collect::<Vec<_>>(), vec![2, 5]);
}

#[test]
fn needs_name_every_row_a_batch_reads() {
    let events = vec![
        at(5, "alice", sent(1, Some(9))),
        at(6, "bob", Event::ReactionAdded(reaction(1, "👍"))),
        at(7, "bob", Event::MessagePinned(PinChange { message_id: message(1) })),
        at(8, "carol", Event::ReadMarked(ReadMarked { up_to_offset: 5 })),
    ];
    let needs = Needs::of(&events);
    assert_eq!(needs.channels.len(), 1);
    assert!(needs.messages.contains(&(app(), message(1))) && needs.messages.contains(&(app(), message(9))));
    assert!(needs.members.contains(&member("alice")) && needs.members.contains(&member("carol")));
    assert!(needs.reactions.contains(&(app(), message(1), "👍".to_owned(), user("bob"))));
    assert!(needs.pins.contains(&(app(), channel(), message(1))));
    assert!(needs.ordinals_at.contains(&(app(), channel(), 5)));
}
