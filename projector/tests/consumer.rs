//! The projector's consumers against the real broker, registry and database: every event applied exactly
//! once across partitions, poison events to the dead-letter topic, and a SIGKILL mid-stream that loses and
//! duplicates nothing — for the read models and for the search index.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chatsdk_platform::config::Secret;
use chatsdk_platform::postgres::MIGRATOR;
use chatsdk_schemas::events::*;
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use chatsdk_schemas::{Envelope, Event, EventEncoder, RegistrySettings};
use chatsdk_testkit::service::{RunningBinary, RunningService};
use chatsdk_testkit::{ScratchDir, Stack, TestDatabase, create_topic, wait_for};
use projector::model::PositionedEvent;
use projector::store::{apply_batch, checksum};
use projector::{Application, Config};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

fn user(index: usize) -> UserId {
    format!("user-{index}").parse().unwrap()
}

/// A busy chat: `channels` group channels with members, messages, thread replies, reactions, edits,
/// deletes and read markers, interleaved across channels.
fn chat_traffic(channels: usize, rounds: usize) -> Vec<Envelope> {
    let app: AppId = "acme".parse().unwrap();
    let mut events = Vec::new();
    let mut next_message = 1_u128;
    let channel_id = |index: usize| format!("room-{index}").parse::<ChannelId>().unwrap();
    for index in 0..channels {
        events.push(Envelope::new(
            app.clone(),
            channel_id(index),
            user(0),
            Event::ChannelCreated(ChannelCreated {
                channel_type: ChannelType::Group,
                name: Some(format!("Room {index}")),
                topic: None,
                custom: None,
                members: (0..3)
                    .map(|member| ChannelMember {
                        user_id: user(member),
                        role: if member == 0 { Role::Owner } else { Role::Member },
                    })
                    .collect(),
            }),
        ));
    }
    for round in 0..rounds {
        for index in 0..channels {
            let author = round % 3;
            let id = MessageId::from_uuid(Uuid::from_u128(next_message));
            next_message += 1;
            let parent =
                (round % 4 == 3).then(|| MessageId::from_uuid(Uuid::from_u128(next_message - 1 - channels as u128)));
            let send = |message_id, parent_id| {
                Event::MessageSent(MessageSent {
                    message_id,
                    client_msg_id: None,
                    text: format!("round {round} in room {index}"),
                    mentions: vec![user((author + 1) % 3)],
                    attachments: vec![],
                    parent_id,
                    custom: None,
                })
            };
            // Replies go to the previous round's message of the same channel, which is a root (round % 4 != 3).
            events.push(Envelope::new(
                app.clone(),
                channel_id(index),
                user(author),
                send(id, parent.filter(|_| round > 0)),
            ));
            events.push(Envelope::new(
                app.clone(),
                channel_id(index),
                user((author + 1) % 3),
                Event::ReactionAdded(Reaction { message_id: id, emoji: "👍".into() }),
            ));
            if round % 5 == 1 {
                events.push(Envelope::new(
                    app.clone(),
                    channel_id(index),
                    user(author),
                    Event::MessageEdited(MessageEdited { message_id: id, text: "edited".into(), mentions: vec![] }),
                ));
            }
            if round % 7 == 2 {
                events.push(Envelope::new(
                    app.clone(),
                    channel_id(index),
                    user(author),
                    Event::MessageDeleted(MessageDeleted { message_id: id, hard: round % 2 == 0 }),
                ));
            }
        }
    }
    events
}

/// Encodes and produces `events`, returning them with the positions Kafka gave them.
async fn produce(stack: &Stack, topic: &str, events: Vec<Envelope>) -> Vec<PositionedEvent> {
    let encoder = EventEncoder::new(RegistrySettings::new(&stack.registry.url, Duration::from_secs(5)), topic).unwrap();
    let producer = stack.kafka.producer("projector-test").unwrap();
    let mut positioned = Vec::with_capacity(events.len());
    // In channel order per key: sends are awaited in chunks so the producer pipelines them.
    for chunk in events.chunks(500) {
        let mut encoded = Vec::with_capacity(chunk.len());
        for envelope in chunk {
            encoded.push((envelope.key(), encoder.encode(envelope).await.unwrap()));
        }
        let deliveries: Vec<_> = encoded
            .iter()
            .map(|(key, bytes)| {
                producer.send(FutureRecord::to(topic).key(key).payload(bytes), Timeout::After(Duration::from_secs(10)))
            })
            .collect();
        for (delivery, envelope) in futures::future::join_all(deliveries).await.into_iter().zip(chunk) {
            let delivered = delivery.map_err(|(error, _)| error).unwrap();
            positioned.push(PositionedEvent {
                partition: delivered.partition,
                offset: delivered.offset,
                envelope: envelope.clone(),
            });
        }
    }
    positioned
}

/// The read models built directly from the events, partition by partition: what the projector must reach.
async fn reference_checksum(stack: &Stack, events: &[PositionedEvent]) -> String {
    let database = TestDatabase::create(stack).await;
    MIGRATOR.run(&database.pool).await.unwrap();
    let mut by_partition: BTreeMap<i32, Vec<PositionedEvent>> = BTreeMap::new();
    for event in events {
        by_partition.entry(event.partition).or_default().push(event.clone());
    }
    for (partition, mut events) in by_partition {
        events.sort_by_key(|event| event.offset);
        apply_batch(&database.pool, "reference", "reference", partition, 0, &events).await.unwrap();
    }
    let digest = checksum(&database.pool).await.unwrap();
    database.drop_database().await;
    digest
}

async fn applied_offsets(database: &TestDatabase, group: &str) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(next_offset), 0)::bigint FROM projector_checkpoints WHERE consumer = $1")
        .bind(group)
        .fetch_one(&database.pool)
        .await
        .unwrap_or(0)
}

struct Setup {
    stack: Stack,
    topic: String,
    dlq_topic: String,
    group: String,
    database: TestDatabase,
}

async fn setup(partitions: i32) -> Setup {
    let stack = Stack::from_env();
    let topic = create_topic(&stack, "projector", partitions).await;
    let dlq_topic = create_topic(&stack, "projector-dlq", 1).await;
    let database = TestDatabase::create(&stack).await;
    let group = format!("test-projector-{}", Uuid::new_v4().simple());
    Setup { stack, topic, dlq_topic, group, database }
}

impl Setup {
    fn config(&self) -> Config {
        let mut config = Config::load(None).unwrap();
        config.http.bind = "127.0.0.1:0".parse().unwrap();
        config.postgres.url = Secret::new(self.database.url.clone());
        config.consumer.topic = self.topic.clone();
        config.consumer.dlq_topic = self.dlq_topic.clone();
        config.consumer.group_id = self.group.clone();
        config.consumer.batch_max_events = 100;
        config
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CHATSDK_POSTGRES__URL", self.database.url.clone()),
            ("CHATSDK_CONSUMER__TOPIC", self.topic.clone()),
            ("CHATSDK_CONSUMER__DLQ_TOPIC", self.dlq_topic.clone()),
            ("CHATSDK_CONSUMER__GROUP_ID", self.group.clone()),
            ("CHATSDK_CONSUMER__BATCH_MAX_EVENTS", "50".to_owned()),
            // A killed member is noticed after the session timeout: keep it short (the broker's minimum is 6 s).
            ("CHATSDK_KAFKA__SESSION_TIMEOUT_MS", "6000".to_owned()),
            ("CHATSDK_HTTP__DRAIN_TIMEOUT_MS", "3000".to_owned()),
        ]
    }

    async fn wait_until_applied(&self, total: usize, deadline: Duration) {
        let total = total as i64;
        wait_for("every event applied", deadline, || async {
            (applied_offsets(&self.database, &self.group).await == total).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn projects_every_event_exactly_once_across_partitions() {
    let setup = setup(4).await;
    let events = produce(&setup.stack, &setup.topic, chat_traffic(12, 20)).await;
    let expected = reference_checksum(&setup.stack, &events).await;

    let service = RunningService::start::<Application>(setup.config()).await;
    setup.wait_until_applied(events.len(), Duration::from_secs(90)).await;
    assert_eq!(checksum(&setup.database.pool).await.unwrap(), expected);

    // /readyz reports the lag of every partition, which drops to zero once caught up.
    let readiness = service.url("/readyz");
    wait_for("/readyz to report zero lag on all 4 partitions", Duration::from_secs(30), || async {
        let (_, body) = chatsdk_testkit::service::get_json(&readiness).await;
        let lag = body["reports"]["lag"].as_object().cloned().unwrap_or_default();
        (lag.len() == 4 && lag.values().all(|events| events == 0)).then_some(())
    })
    .await;

    // More events after the first catch-up arrive too.
    let more = produce(
        &setup.stack,
        &setup.topic,
        chat_traffic(3, 2)
            .into_iter()
            .map(|mut envelope| {
                envelope.channel_id = format!("late-{}", envelope.channel_id).parse().unwrap();
                envelope
            })
            .collect(),
    )
    .await;
    setup.wait_until_applied(events.len() + more.len(), Duration::from_secs(60)).await;
    service.stop().await.unwrap();

    let all: Vec<PositionedEvent> = events.into_iter().chain(more).collect();
    assert_eq!(checksum(&setup.database.pool).await.unwrap(), reference_checksum(&setup.stack, &all).await);
    setup.database.drop_database().await;
}

#[tokio::test]
async fn advances_offset_past_poison_event() {
    let setup = setup(1).await;
    let app: AppId = "acme".parse().unwrap();
    let channel: ChannelId = "general".parse().unwrap();
    let created = Envelope::new(
        app.clone(),
        channel.clone(),
        user(0),
        Event::ChannelCreated(ChannelCreated {
            channel_type: ChannelType::Group,
            name: None,
            topic: None,
            custom: None,
            members: vec![],
        }),
    );
    let unknown_edit = Envelope::new(
        app.clone(),
        channel.clone(),
        user(0),
        Event::MessageEdited(MessageEdited {
            message_id: MessageId::from_uuid(Uuid::from_u128(404)),
            text: "x".into(),
            mentions: vec![],
        }),
    );
    let produced = produce(&setup.stack, &setup.topic, vec![created]).await;
    let producer = setup.stack.kafka.producer("projector-test").unwrap();
    let garbage = b"definitely not confluent framing".to_vec();
    producer
        .send(
            FutureRecord::to(&setup.topic).key("acme:general").payload(&garbage),
            Timeout::After(Duration::from_secs(10)),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();
    let violation = produce(&setup.stack, &setup.topic, vec![unknown_edit]).await;
    produce(
        &setup.stack,
        &setup.topic,
        vec![Envelope::new(app, channel, user(0), Event::ChannelArchived(ChannelArchived { reason: None }))],
    )
    .await;

    let service = RunningService::start::<Application>(setup.config()).await;
    setup.wait_until_applied(4, Duration::from_secs(60)).await;
    service.stop().await.unwrap();

    let archived: bool =
        sqlx::query_scalar("SELECT archived_at IS NOT NULL FROM channels WHERE channel_id = 'general'")
            .fetch_one(&setup.database.pool)
            .await
            .unwrap();
    assert!(archived, "the event after the poison ones was not applied");
    assert_eq!(produced[0].offset, 0);

    // Both poison records are in the dead-letter topic, with their original bytes and where they came from.
    let consumer: StreamConsumer =
        setup.stack.kafka.consumer_config("projector-test", Some(&setup.group)).create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&setup.dlq_topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let mut dead = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv()).await.unwrap().unwrap();
        let headers: BTreeMap<String, String> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (header.key.to_owned(), String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        dead.push((message.payload().unwrap().to_vec(), headers));
    }
    assert_eq!(dead[0].0, garbage);
    assert_eq!(dead[0].1["chatsdk.source.offset"], "1");
    assert_eq!(dead[0].1["chatsdk.source.partition"], "0");
    assert_eq!(dead[0].1["chatsdk.source.topic"], setup.topic);
    assert_eq!(dead[0].1["chatsdk.consumer"], setup.group);
    assert!(dead[0].1["chatsdk.error"].contains("Confluent"), "{:?}", dead[0].1);
    assert_eq!(dead[1].1["chatsdk.source.offset"], violation[0].offset.to_string());
    assert!(dead[1].1["chatsdk.error"].contains("unknown message"), "{:?}", dead[1].1);
    setup.database.drop_database().await;
}

#[tokio::test]
async fn projector_restart_mid_batch_loses_and_duplicates_nothing() {
    let setup = setup(4).await;
    let events = produce(&setup.stack, &setup.topic, chat_traffic(20, 60)).await;
    let expected = reference_checksum(&setup.stack, &events).await;
    let binary = Path::new(env!("CARGO_BIN_EXE_projector"));

    let first = RunningBinary::start(binary, &setup.env()).await;
    let total = events.len() as i64;
    let progress = wait_for("the first projector to make progress", Duration::from_secs(60), || async {
        let applied = applied_offsets(&setup.database, &setup.group).await;
        (applied > 0).then_some(applied)
    })
    .await;
    first.kill().await;
    let at_kill = applied_offsets(&setup.database, &setup.group).await;
    assert!(
        at_kill < total,
        "the projector finished ({at_kill} of {total}) before it could be killed; make the stream longer"
    );
    assert!(at_kill >= progress);

    let second = RunningBinary::start(binary, &setup.env()).await;
    setup.wait_until_applied(events.len(), Duration::from_secs(120)).await;
    let exit = second.terminate().await;
    assert!(exit.success(), "{exit}");
    assert_eq!(checksum(&setup.database.pool).await.unwrap(), expected);
    setup.database.drop_database().await;
}

/// A metric of a running projector binary, from its `/metrics`.
async fn metric_of(process: &RunningBinary, name: &str) -> f64 {
    let text = reqwest::get(process.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|line| line.split([' ', '{']).next() == Some(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_surviving_projector_takes_over_the_partitions_of_a_killed_one() {
    let setup = setup(4).await;
    let binary = Path::new(env!("CARGO_BIN_EXE_projector"));
    let survivor = RunningBinary::start(binary, &setup.env()).await;
    let victim = RunningBinary::start(binary, &setup.env()).await;

    // Both are members of the group before anything is produced, so each is given partitions.
    wait_for("both projectors to be assigned partitions", Duration::from_secs(60), || async {
        let survivor_has = metric_of(&survivor, "chatsdk_projector_assigned_partitions").await > 0.0;
        (survivor_has && metric_of(&victim, "chatsdk_projector_assigned_partitions").await > 0.0).then_some(())
    })
    .await;

    // The first half arrives while both are members: each applies the partitions it was given.
    let traffic = chat_traffic(20, 40);
    let (first_half, second_half) = traffic.split_at(traffic.len() / 2);
    let mut events = produce(&setup.stack, &setup.topic, first_half.to_vec()).await;
    wait_for("both projectors to apply events", Duration::from_secs(60), || async {
        let applied = |process| metric_of(process, "chatsdk_projector_events_applied_total");
        (applied(&survivor).await > 0.0 && applied(&victim).await > 0.0).then_some(())
    })
    .await;
    victim.kill().await;

    // The second half: the survivor must take the victim's partitions over from its checkpoints.
    events.extend(produce(&setup.stack, &setup.topic, second_half.to_vec()).await);
    setup.wait_until_applied(events.len(), Duration::from_secs(120)).await;
    assert!(survivor.terminate().await.success());
    assert_eq!(checksum(&setup.database.pool).await.unwrap(), reference_checksum(&setup.stack, &events).await);
    setup.database.drop_database().await;
}

#[tokio::test]
async fn postgres_outage_pauses_the_projector_which_resumes_exactly_where_it_stopped() {
    let setup = setup(2).await;
    MIGRATOR.run(&setup.database.pool).await.unwrap();
    let options: sqlx::postgres::PgConnectOptions = setup.database.url.parse().unwrap();
    let upstream: std::net::SocketAddr = format!("{}:{}", options.get_host(), options.get_port()).parse().unwrap();
    let proxy = chatsdk_testkit::fault::FaultProxy::start(upstream).await;
    let mut config = setup.config();
    let proxied_url = setup.database.url.replacen(
        &format!("{}:{}", options.get_host(), options.get_port()),
        &proxy.address.to_string(),
        1,
    );
    config.postgres.url = Secret::new(proxied_url);
    let service = RunningService::start::<Application>(config).await;

    let traffic = chat_traffic(10, 20);
    let (first_half, second_half) = traffic.split_at(traffic.len() / 2);
    let mut events = produce(&setup.stack, &setup.topic, first_half.to_vec()).await;
    setup.wait_until_applied(events.len(), Duration::from_secs(60)).await;

    proxy.cut();
    events.extend(produce(&setup.stack, &setup.topic, second_half.to_vec()).await);
    let readiness = service.url("/readyz");
    wait_for("readyz to report postgres down", Duration::from_secs(30), || async {
        let (status, body) = chatsdk_testkit::service::get_json(&readiness).await;
        (status == reqwest::StatusCode::SERVICE_UNAVAILABLE && body["checks"]["postgres"]["ok"] == false).then_some(())
    })
    .await;
    let during_outage = applied_offsets(&setup.database, &setup.group).await;
    assert!(during_outage < events.len() as i64, "everything was applied although PostgreSQL was cut off");

    proxy.restore();
    setup.wait_until_applied(events.len(), Duration::from_secs(90)).await;
    service.stop().await.unwrap();
    assert_eq!(checksum(&setup.database.pool).await.unwrap(), reference_checksum(&setup.stack, &events).await);
    setup.database.drop_database().await;
}

async fn run_tool(setup: &Setup, arguments: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_projector"))
            .args(arguments)
            .envs(setup.env())
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("the tool did not finish within 120 s")
    .unwrap()
}

#[tokio::test]
async fn replay_into_a_fresh_database_yields_the_same_checksum() {
    let setup = setup(3).await;
    let events = produce(&setup.stack, &setup.topic, chat_traffic(8, 15)).await;
    let service = RunningService::start::<Application>(setup.config()).await;
    setup.wait_until_applied(events.len(), Duration::from_secs(60)).await;
    service.stop().await.unwrap();
    let live = checksum(&setup.database.pool).await.unwrap();

    let fresh = TestDatabase::create(&setup.stack).await;
    let rebuilt = run_tool(&setup, &["rebuild", "--database-url", &fresh.url]).await;
    assert!(rebuilt.status.success(), "rebuild failed: {}", String::from_utf8_lossy(&rebuilt.stderr));
    assert_eq!(String::from_utf8(rebuilt.stdout).unwrap().trim(), live);
    assert_eq!(checksum(&fresh.pool).await.unwrap(), live);

    let printed = run_tool(&setup, &["checksum", "--database-url", &setup.database.url]).await;
    assert_eq!(String::from_utf8(printed.stdout).unwrap().trim(), live);

    // A rebuild never writes into a database that has read models already.
    let refused = run_tool(&setup, &["rebuild", "--database-url", &setup.database.url]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    fresh.drop_database().await;
    setup.database.drop_database().await;
}

/// What search must hold after `events`, folded independently of the writer: the first send of an id wins,
/// an edit replaces a live message's text, a delete removes it for good.
fn expected_search(events: &[PositionedEvent]) -> BTreeMap<Uuid, String> {
    let mut live = BTreeMap::new();
    let mut gone = std::collections::BTreeSet::new();
    for event in events {
        match &event.envelope.event {
            Event::MessageSent(sent) => {
                let id = *sent.message_id.as_uuid();
                if !gone.contains(&id) {
                    live.entry(id).or_insert_with(|| sent.text.clone());
                }
            }
            Event::MessageEdited(edited) => {
                if let Some(text) = live.get_mut(edited.message_id.as_uuid()) {
                    text.clone_from(&edited.text);
                }
            }
            Event::MessageDeleted(deleted) => {
                live.remove(deleted.message_id.as_uuid());
                gone.insert(*deleted.message_id.as_uuid());
            }
            _ => {}
        }
    }
    live
}

/// Every message the index finds for any word of `chat_traffic`, paging newest first, with its text; a
/// duplicate hit fails.
fn searchable(directory: &Path) -> BTreeMap<Uuid, String> {
    use chatsdk_search::engine::{Cursor, Scope, SearchRequest, SortOrder, search};
    let view = chatsdk_search::IndexView::open(directory).unwrap();
    let mut request = SearchRequest {
        app: "acme".to_owned(),
        query: chatsdk_search::query::parse("round OR edited").unwrap(),
        scope: Scope::App,
        author: None,
        since_ms: None,
        until_ms: None,
        order: SortOrder::Newest,
        limit: 100,
        cursor: None,
    };
    let mut found = BTreeMap::new();
    loop {
        let page = search(&view.snapshot(), view.fields(), &request).unwrap();
        for hit in page.hits {
            let repeated = found.insert(hit.message.message_id, hit.message.text);
            assert!(repeated.is_none(), "message {} found twice", hit.message.message_id);
        }
        match page.next {
            Some(cursor @ Cursor::Before(_)) => request.cursor = Some(cursor),
            _ => return found,
        }
    }
}

/// The offsets the index's last commit recorded, summed (0 before the first commit).
fn indexed_offsets(directory: &Path) -> i64 {
    chatsdk_search::IndexView::open(directory).map(|view| view.snapshot().payload.offsets.values().sum()).unwrap_or(0)
}

/// A search-only projector (no read models) writing `index`.
fn search_env(setup: &Setup, index: &Path) -> Vec<(&'static str, String)> {
    let mut env = setup.env();
    env.extend([
        ("CHATSDK_CONSUMER__ENABLED", "false".to_owned()),
        ("CHATSDK_SEARCH__ENABLED", "true".to_owned()),
        ("CHATSDK_SEARCH__INDEX_DIR", index.display().to_string()),
        ("CHATSDK_SEARCH__INDEXER__GROUP_ID", format!("{}-search", setup.group)),
        // Small batches and frequent commits, so a kill lands between commits with work half done.
        ("CHATSDK_SEARCH__INDEXER__BATCH_MAX_EVENTS", "20".to_owned()),
        ("CHATSDK_SEARCH__INDEXER__COMMIT_INTERVAL_MS", "50".to_owned()),
        ("CHATSDK_SEARCH__INDEXER__COMMIT_MAX_EVENTS", "300".to_owned()),
    ]);
    env
}

#[tokio::test]
async fn search_projector_killed_mid_stream_indexes_every_message_exactly_once() {
    let setup = setup(4).await;
    let events = produce(&setup.stack, &setup.topic, chat_traffic(20, 120)).await;
    let expected = expected_search(&events);
    let index = ScratchDir::new("chatsdk-search");
    let binary = Path::new(env!("CARGO_BIN_EXE_projector"));
    let total = events.len() as i64;

    let first = RunningBinary::start(binary, &search_env(&setup, &index.path)).await;
    let progress = wait_for("the first search projector to commit", Duration::from_secs(60), || async {
        let indexed = indexed_offsets(&index.path);
        (indexed > 0).then_some(indexed)
    })
    .await;
    first.kill().await;
    let at_kill = indexed_offsets(&index.path);
    assert!(at_kill < total, "the index was complete ({at_kill} of {total}) before the kill; make the stream longer");
    assert!(at_kill >= progress);

    let second = RunningBinary::start(binary, &search_env(&setup, &index.path)).await;
    wait_for("every event indexed", Duration::from_secs(180), || async {
        (indexed_offsets(&index.path) == total).then_some(())
    })
    .await;
    let exit = second.terminate().await;
    assert!(exit.success(), "{exit}");
    let found = searchable(&index.path);
    assert_eq!(found.len(), expected.len(), "every live message once, deleted ones never");
    assert_eq!(found, expected, "edits show only their new text");
    assert!(found.values().any(|text| text == "edited"), "the traffic has edits");
    setup.database.drop_database().await;
}

#[tokio::test]
async fn rebuild_search_replaces_the_index_with_one_built_from_offset_zero() {
    let setup = setup(2).await;
    let events = produce(&setup.stack, &setup.topic, chat_traffic(4, 10)).await;
    let index = ScratchDir::new("chatsdk-search");
    let target = index.path.display().to_string();
    let running =
        RunningBinary::start(Path::new(env!("CARGO_BIN_EXE_projector")), &search_env(&setup, &index.path)).await;
    let total = events.len() as i64;
    wait_for("every event indexed", Duration::from_secs(60), || async {
        (indexed_offsets(&index.path) == total).then_some(())
    })
    .await;
    // While a search consumer writes the index, a rebuild is refused — also when named through a symbolic link.
    let link = ScratchDir::new("chatsdk-search-link");
    std::os::unix::fs::symlink(&index.path, &link.path).unwrap();
    let through_link = link.path.display().to_string();
    let refused = run_tool(&setup, &["rebuild-search", "--index-dir", &through_link]).await;
    assert!(!refused.status.success());
    let refused = run_tool(&setup, &["rebuild-search", "--index-dir", &target]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("being written"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let exit = running.terminate().await;
    assert!(exit.success(), "{exit}");
    let before = searchable(&index.path);

    // An index of an outdated schema (here: a field renamed in its metadata) is refused by the consumer and
    // rebuilt from the log alone.
    let meta = index.path.join("meta.json");
    let outdated = std::fs::read_to_string(&meta).unwrap().replace("\"live_app\"", "\"live_app_v0\"");
    std::fs::write(&meta, outdated).unwrap();
    assert!(chatsdk_search::IndexView::open(&index.path).is_err(), "the outdated index is refused");
    let rebuilt = run_tool(&setup, &["rebuild-search", "--index-dir", &through_link]).await;
    assert!(rebuilt.status.success(), "rebuild-search failed: {}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(std::fs::symlink_metadata(&link.path).unwrap().file_type().is_symlink(), "the link is left alone");
    assert_eq!(indexed_offsets(&index.path), total);
    assert_eq!(searchable(&index.path), before);
    assert_eq!(before, expected_search(&events));
    let summary = String::from_utf8(rebuilt.stdout).unwrap();
    assert!(summary.contains(&format!("{} messages searchable", before.len())), "{summary}");
    setup.database.drop_database().await;
}

#[tokio::test]
async fn search_commits_at_its_interval_while_events_keep_arriving() {
    let setup = setup(2).await;
    let index = ScratchDir::new("chatsdk-search");
    let mut config = setup.config();
    config.consumer.enabled = false;
    config.search.enabled = true;
    config.search.index_dir = index.path.clone();
    config.search.indexer.group_id = format!("{}-search", setup.group);
    config.search.indexer.commit_interval_ms = 200;
    let service = RunningService::start::<Application>(config).await;
    wait_for("the index created", Duration::from_secs(30), || async {
        chatsdk_search::IndexView::open(&index.path).ok().map(|_| ())
    })
    .await;
    // A steady trickle, one event every 20 ms for 4 s: never a pause, never a full batch (2,000 events).
    let events = chat_traffic(2, 100);
    let producing = {
        let encoder =
            EventEncoder::new(RegistrySettings::new(&setup.stack.registry.url, Duration::from_secs(5)), &setup.topic)
                .unwrap();
        let producer = setup.stack.kafka.producer("projector-test").unwrap();
        let topic = setup.topic.clone();
        tokio::spawn(async move {
            for event in events.into_iter().take(200) {
                let bytes = encoder.encode(&event).await.unwrap();
                let key = event.key();
                let record = FutureRecord::to(&topic).key(&key).payload(&bytes);
                producer
                    .send(record, Timeout::After(Duration::from_secs(10)))
                    .await
                    .map_err(|(error, _)| error)
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    wait_for("a commit while events are still arriving", Duration::from_secs(30), || async {
        (indexed_offsets(&index.path) > 0).then_some(())
    })
    .await;
    assert!(!producing.is_finished(), "the first commit waited for the stream of 200 events to end");
    producing.await.unwrap();
    service.stop().await.unwrap();
    setup.database.drop_database().await;
}
