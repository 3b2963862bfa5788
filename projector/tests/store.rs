//! The projection against the real PostgreSQL of the local stack: given events, these rows; the batch size
//! changes nothing; the checkpoint guard stops a stale owner.

#![allow(clippy::unwrap_used)]

use chatsdk_platform::postgres::MIGRATOR;
use chatsdk_schemas::events::*;
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use chatsdk_schemas::{Envelope, Event};
use chatsdk_testkit::{Stack, TestDatabase};
use chrono::{TimeZone, Utc};
use projector::model::{PositionedEvent, Violation};
use projector::store::{BatchError, apply_batch, checkpoint, checksum};
use uuid::Uuid;

const CONSUMER: &str = "test-projector";
const TOPIC: &str = "chatsdk.channel-events.v1";
const PARTITION: i32 = 5;

fn user(name: &str) -> UserId {
    name.parse().unwrap()
}

fn message(n: u128) -> MessageId {
    MessageId::from_uuid(Uuid::from_u128(n))
}

/// Builds a partition's log: each pushed event gets the next offset.
#[derive(Default)]
struct Log {
    events: Vec<PositionedEvent>,
}

impl Log {
    fn push(&mut self, app: &str, channel: &str, actor: &str, event: Event) -> &mut Self {
        let offset = self.events.len() as i64;
        let mut envelope =
            Envelope::new(app.parse::<AppId>().unwrap(), channel.parse::<ChannelId>().unwrap(), user(actor), event);
        envelope.occurred_at =
            Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + chrono::Duration::seconds(offset);
        self.events.push(PositionedEvent { partition: PARTITION, offset, envelope });
        self
    }
}

fn sent(id: u128, parent: Option<u128>, text: &str, mentions: &[&str]) -> Event {
    Event::MessageSent(MessageSent {
        message_id: message(id),
        client_msg_id: Some(format!("client-{id}")),
        text: text.to_owned(),
        mentions: mentions.iter().map(|name| user(name)).collect(),
        attachments: vec![],
        parent_id: parent.map(message),
        custom: None,
    })
}

/// A channel's life: creation, members, messages, a thread, edits, deletes, reactions, pins, read markers,
/// a DM, a second app with the same channel name, and two poison events.
fn conversation() -> Log {
    let mut log = Log::default();
    log.push(
        "acme",
        "general",
        "alice",
        Event::ChannelCreated(ChannelCreated {
            channel_type: ChannelType::Group,
            name: Some("General".into()),
            topic: None,
            custom: serde_json::json!({ "color": "teal" }).as_object().cloned(),
            members: vec![ChannelMember { user_id: user("alice"), role: Role::Owner }],
        }),
    )
    .push("acme", "general", "alice", Event::MemberAdded(MemberAdded { user_id: user("bob"), role: Role::Member }))
    .push("acme", "general", "alice", sent(1, None, "hello bob", &["bob"]))
    .push("acme", "general", "bob", sent(2, None, "hi alice", &[]))
    .push("acme", "general", "alice", sent(3, Some(2), "a thread reply", &[]))
    .push("acme", "general", "alice", sent(1, None, "retried send, ignored", &[]))
    .push("acme", "general", "bob", Event::ReactionAdded(Reaction { message_id: message(1), emoji: "👍".into() }))
    .push("acme", "general", "alice", Event::ReactionAdded(Reaction { message_id: message(1), emoji: "👍".into() }))
    .push(
        "acme",
        "general",
        "alice",
        Event::MessageEdited(MessageEdited {
            message_id: message(1),
            text: "hello bob!".into(),
            mentions: vec![user("bob")],
        }),
    )
    .push("acme", "general", "alice", Event::MessagePinned(PinChange { message_id: message(2) }))
    .push(
        "acme",
        "general",
        "alice",
        Event::MessageEdited(MessageEdited { message_id: message(99), text: "poison".into(), mentions: vec![] }),
    )
    .push("acme", "general", "alice", sent(4, None, "third top-level", &[]))
    .push("acme", "general", "bob", Event::ReadMarked(ReadMarked { up_to_offset: 3 }))
    .push("acme", "general", "bob", Event::MessageDeleted(MessageDeleted { message_id: message(2), hard: true }))
    .push(
        "acme",
        "general",
        "alice",
        Event::ChannelUpdated(ChannelUpdated { topic: Some("Release".into()), ..Default::default() }),
    )
    .push(
        "acme",
        "dm-alice-bob",
        "alice",
        Event::ChannelCreated(ChannelCreated {
            channel_type: ChannelType::Dm,
            name: None,
            topic: None,
            custom: None,
            members: vec![
                ChannelMember { user_id: user("alice"), role: Role::Member },
                ChannelMember { user_id: user("bob"), role: Role::Member },
            ],
        }),
    )
    .push(
        "other",
        "general",
        "zed",
        Event::ChannelCreated(ChannelCreated {
            channel_type: ChannelType::Public,
            name: Some("Other app".into()),
            topic: None,
            custom: None,
            members: vec![],
        }),
    )
    .push("acme", "general", "bob", Event::ReactionRemoved(Reaction { message_id: message(1), emoji: "👍".into() }))
    .push(
        "acme",
        "general",
        "alice",
        Event::ChannelCreated(ChannelCreated {
            channel_type: ChannelType::Group,
            name: None,
            topic: None,
            custom: None,
            members: vec![],
        }),
    );
    log
}

async fn project(database: &TestDatabase, events: &[PositionedEvent], batch_size: usize) -> Vec<(i64, Violation)> {
    let mut violations = Vec::new();
    for batch in events.chunks(batch_size) {
        let expected = checkpoint(&database.pool, CONSUMER, TOPIC, PARTITION).await.unwrap();
        let outcome = apply_batch(&database.pool, CONSUMER, TOPIC, PARTITION, expected, batch).await.unwrap();
        violations.extend(outcome.violations);
    }
    violations
}

async fn migrated_database() -> TestDatabase {
    let database = TestDatabase::create(&Stack::from_env()).await;
    MIGRATOR.run(&database.pool).await.unwrap();
    database
}

#[tokio::test]
async fn given_a_conversation_the_read_models_hold_these_rows() {
    let database = migrated_database().await;
    let log = conversation();
    let violations = project(&database, &log.events, 4).await;

    assert_eq!(violations, vec![(10, Violation::UnknownMessage(message(99))), (18, Violation::ChannelExists)]);
    assert_eq!(checkpoint(&database.pool, CONSUMER, TOPIC, PARTITION).await.unwrap(), log.events.len() as i64);

    let pool = &database.pool;
    let (message_count, last_offset, topic, custom): (i64, i64, Option<String>, String) = sqlx::query_as(
        "SELECT message_count, last_offset, topic, custom->>'color' FROM channels WHERE app_id = 'acme' AND channel_id = 'general'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((message_count, last_offset, topic.as_deref(), custom.as_str()), (3, 17, Some("Release"), "teal"));

    let unread: Vec<(String, i64)> = sqlx::query_as(
        "SELECT m.user_id, c.message_count - m.read_count FROM members m JOIN channels c USING (app_id, channel_id) \
         WHERE m.app_id = 'acme' AND m.channel_id = 'general' ORDER BY m.user_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(unread, vec![("alice".to_owned(), 0), ("bob".to_owned(), 1)]);

    let first: (String, Vec<String>, bool, i32) =
        sqlx::query_as("SELECT text, mentions, edited_at IS NOT NULL, reply_count FROM messages WHERE message_id = $1")
            .bind(message(1).as_uuid())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(first, ("hello bob!".to_owned(), vec!["bob".to_owned()], true, 0));
    let second: (String, bool, i32) =
        sqlx::query_as("SELECT text, purged, reply_count FROM messages WHERE message_id = $1")
            .bind(message(2).as_uuid())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(second, (String::new(), true, 1));

    let reactions: Vec<(String, i32)> =
        sqlx::query_as("SELECT emoji, count FROM reaction_counts WHERE message_id = $1")
            .bind(message(1).as_uuid())
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(reactions, vec![("👍".to_owned(), 1)]);
    let pins: i64 = sqlx::query_scalar("SELECT count(*) FROM pins").fetch_one(pool).await.unwrap();
    assert_eq!(pins, 1);
    let dm: String =
        sqlx::query_scalar("SELECT channel_id FROM dm_pairs WHERE user_low = 'alice' AND user_high = 'bob'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(dm, "dm-alice-bob");
    let apps: Vec<String> =
        sqlx::query_scalar("SELECT app_id FROM channels WHERE channel_id = 'general' ORDER BY app_id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(apps, vec!["acme".to_owned(), "other".to_owned()]);
    database.drop_database().await;
}

#[tokio::test]
async fn batch_boundaries_change_nothing() {
    let log = conversation();
    let one_batch = migrated_database().await;
    let single_events = migrated_database().await;
    let uneven = migrated_database().await;
    project(&one_batch, &log.events, log.events.len()).await;
    project(&single_events, &log.events, 1).await;
    project(&uneven, &log.events, 7).await;

    let expected = checksum(&one_batch.pool).await.unwrap();
    assert_eq!(checksum(&single_events.pool).await.unwrap(), expected);
    assert_eq!(checksum(&uneven.pool).await.unwrap(), expected);
    // The checksum does see the rows: an empty database differs.
    let empty = migrated_database().await;
    assert_ne!(checksum(&empty.pool).await.unwrap(), expected);
    for database in [one_batch, single_events, uneven, empty] {
        database.drop_database().await;
    }
}

#[tokio::test]
async fn a_stale_owner_cannot_write() {
    let database = migrated_database().await;
    let log = conversation();
    let (first, rest) = log.events.split_at(5);
    apply_batch(&database.pool, CONSUMER, TOPIC, PARTITION, 0, first).await.unwrap();
    let after_first = checksum(&database.pool).await.unwrap();

    // A previous owner replays the same batch from the checkpoint it saw before the rebalance.
    let stale = apply_batch(&database.pool, CONSUMER, TOPIC, PARTITION, 0, first).await;
    assert!(matches!(stale, Err(BatchError::Stale { expected: 0, .. })), "{stale:?}");
    assert_eq!(checksum(&database.pool).await.unwrap(), after_first, "a stale batch wrote rows");

    // Two owners race for the next batch: exactly one wins, the other is stale.
    let (one, two) = tokio::join!(
        apply_batch(&database.pool, CONSUMER, TOPIC, PARTITION, 5, rest),
        apply_batch(&database.pool, CONSUMER, TOPIC, PARTITION, 5, rest),
    );
    let winners = [&one, &two].iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(winners, 1, "{one:?} / {two:?}");
    assert!([&one, &two].iter().any(|outcome| matches!(outcome, Err(BatchError::Stale { .. }))));

    let reference = migrated_database().await;
    project(&reference, &log.events, 100).await;
    assert_eq!(checksum(&database.pool).await.unwrap(), checksum(&reference.pool).await.unwrap());
    database.drop_database().await;
    reference.drop_database().await;
}
