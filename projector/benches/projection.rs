//! Projection throughput and lag against the real local stack (Kafka, registry, PostgreSQL):
//!
//! 1. catch-up: N events of a realistic mix (80 % messages, then reactions, edits, read markers) across 12
//!    partitions, produced first, then projected by one in-process projector from offset 0 → events/s;
//! 2. the raw COPY rate of the same message rows into an empty copy of the table, for comparison;
//! 3. steady state: events produced at a fixed rate for a fixed time; for each event, the time from the
//!    producer's acknowledgement to the projector's checkpoint passing it → p50/p99 lag.
//!
//! ```sh
//! eval "$(infra/local/stack env)" && cargo bench -p projector --bench projection
//! BENCH_EVENTS=200000 BENCH_RATE=1000 BENCH_SECONDS=30 cargo bench -p projector --bench projection
//! ```

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chatsdk_platform::config::Secret;
use chatsdk_platform::postgres::MIGRATOR;
use chatsdk_schemas::events::*;
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use chatsdk_schemas::{Envelope, Event, EventEncoder, RegistrySettings};
use chatsdk_testkit::service::RunningService;
use chatsdk_testkit::{Stack, TestDatabase, create_topic};
use projector::{Application, Config};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use uuid::Uuid;

const PARTITIONS: i32 = 12;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Deterministic traffic: 80 % messages (one in ten a thread reply), 8 % reactions, 6 % edits, 6 % read
/// markers, over `channels` channels of 5 members, after one `channel.created` per channel.
struct Traffic {
    channels: usize,
    sent: Vec<Vec<MessageId>>,
    next_message: u128,
    step: u64,
}

impl Traffic {
    fn new(channels: usize) -> Self {
        Self { channels, sent: vec![Vec::new(); channels], next_message: 1, step: 0 }
    }

    fn creations(&self) -> Vec<Envelope> {
        (0..self.channels)
            .map(|index| {
                envelope(
                    index,
                    0,
                    Event::ChannelCreated(ChannelCreated {
                        channel_type: ChannelType::Group,
                        name: Some(format!("Room {index}")),
                        topic: None,
                        custom: None,
                        members: (0..5)
                            .map(|member| ChannelMember { user_id: user(member), role: Role::Member })
                            .collect(),
                    }),
                )
            })
            .collect()
    }

    fn next(&mut self) -> Envelope {
        self.step += 1;
        // A cheap deterministic scramble so channels and kinds interleave.
        let mixed = self.step.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
        let channel = (mixed as usize) % self.channels;
        let actor = (mixed >> 20) as usize % 5;
        let kind = (mixed >> 32) % 100;
        let known = self.sent[channel].clone();
        let pick = |offset: u64| known[(mixed >> offset) as usize % known.len()];
        if kind < 80 || known.is_empty() {
            let message_id = MessageId::from_uuid(Uuid::from_u128(self.next_message));
            self.next_message += 1;
            let parent_id = (kind % 10 == 9 && !known.is_empty()).then(|| known[0]);
            if parent_id.is_none() {
                self.sent[channel].push(message_id);
            }
            return envelope(
                channel,
                actor,
                Event::MessageSent(MessageSent {
                    message_id,
                    client_msg_id: Some(format!("c-{}", self.step)),
                    text: format!("message {} with some ordinary chat text in it", self.step),
                    mentions: if kind.is_multiple_of(7) { vec![user((actor + 1) % 5)] } else { vec![] },
                    attachments: vec![],
                    parent_id,
                    custom: None,
                }),
            );
        }
        match kind {
            80..=87 => envelope(
                channel,
                actor,
                Event::ReactionAdded(Reaction {
                    message_id: pick(40), emoji: ["👍", "🎉", "❤️"][actor % 3].into()
                }),
            ),
            88..=93 => envelope(
                channel,
                actor,
                Event::MessageEdited(MessageEdited {
                    message_id: pick(40),
                    text: "edited text".into(),
                    mentions: vec![],
                }),
            ),
            _ => envelope(channel, actor, Event::ReadMarked(ReadMarked { up_to_offset: 0 })),
        }
    }
}

fn user(index: usize) -> UserId {
    format!("user-{index}").parse().unwrap()
}

fn envelope(channel: usize, actor: usize, event: Event) -> Envelope {
    let app: AppId = "bench".parse().unwrap();
    let channel_id: ChannelId = format!("room-{channel}").parse().unwrap();
    Envelope::new(app, channel_id, user(actor), event)
}

async fn encode_all(encoder: &EventEncoder, events: &[Envelope]) -> Vec<(String, Vec<u8>)> {
    let mut encoded = Vec::with_capacity(events.len());
    for event in events {
        encoded.push((event.key(), encoder.encode(event).await.unwrap()));
    }
    encoded
}

async fn produce(producer: &FutureProducer, topic: &str, encoded: &[(String, Vec<u8>)]) {
    for chunk in encoded.chunks(2_000) {
        let sends = chunk.iter().map(|(key, bytes)| {
            producer.send(FutureRecord::to(topic).key(key).payload(bytes), Timeout::After(Duration::from_secs(30)))
        });
        for delivery in futures::future::join_all(sends).await {
            delivery.map_err(|(error, _)| error).unwrap();
        }
    }
}

async fn applied(database: &TestDatabase, group: &str) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(next_offset), 0)::bigint FROM projector_checkpoints WHERE consumer = $1")
        .bind(group)
        .fetch_one(&database.pool)
        .await
        .unwrap()
}

fn config(stack: &Stack, database: &TestDatabase, topic: &str, dlq: &str, group: &str) -> Config {
    let mut config = Config::load(None).unwrap();
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    config.postgres.url = Secret::new(database.url.clone());
    config.consumer.topic = topic.to_owned();
    config.consumer.dlq_topic = dlq.to_owned();
    config.consumer.group_id = group.to_owned();
    config.log.filter = "warn".to_owned();
    config.registry.url = stack.registry.url.clone();
    config
}

/// COPY the projected message rows into an empty table of the same shape: the database's raw ingest rate.
async fn raw_copy_rate(database: &TestDatabase) -> (usize, f64) {
    let mut connection = database.pool.acquire().await.unwrap();
    let rows: Vec<u8> = {
        let mut copy_out = sqlx::query_scalar::<_, String>(
            "SELECT concat_ws(E'\\t', app_id, message_id, channel_id, author_id, coalesce(client_msg_id, '\\N'), \
                    replace(text, E'\\t', ' '), mentions::text, attachments::text, coalesce(custom::text, '\\N'), \
                    coalesce(parent_id::text, '\\N'), reply_count, coalesce(last_reply_at::text, '\\N'), \
                    coalesce(ordinal::text, '\\N'), kafka_partition, kafka_offset, created_at, \
                    coalesce(edited_at::text, '\\N'), coalesce(deleted_at::text, '\\N'), purged) FROM messages",
        )
        .fetch_all(&mut *connection)
        .await
        .unwrap()
        .join("\n")
        .into_bytes();
        copy_out.push(b'\n');
        copy_out
    };
    let count = rows.iter().filter(|byte| **byte == b'\n').count();
    sqlx::query("CREATE TABLE messages_copy (LIKE messages INCLUDING ALL)").execute(&mut *connection).await.unwrap();
    let started = Instant::now();
    let mut copy = connection.copy_in_raw("COPY messages_copy FROM STDIN").await.unwrap();
    copy.send(rows).await.unwrap();
    copy.finish().await.unwrap();
    (count, count as f64 / started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing: run only when benchmarking.
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    chatsdk_platform::telemetry::init_for_tool(&chatsdk_platform::config::LogConfig {
        format: chatsdk_platform::config::LogFormat::Pretty,
        filter: "warn,projector=info,chatsdk_platform=info".to_owned(),
    });
    let total = setting("BENCH_EVENTS", 100_000) as usize;
    let rate = setting("BENCH_RATE", 1_000);
    let seconds = setting("BENCH_SECONDS", 30);
    let stack = Stack::from_env();
    let topic = create_topic(&stack, "bench-projection", PARTITIONS).await;
    let dlq = create_topic(&stack, "bench-projection-dlq", 1).await;
    let database = TestDatabase::create(&stack).await;
    MIGRATOR.run(&database.pool).await.unwrap();
    let group = format!("bench-{}", Uuid::new_v4().simple());
    let encoder =
        EventEncoder::new(RegistrySettings::new(&stack.registry.url, Duration::from_secs(5)), &topic).unwrap();
    let producer = stack.kafka.producer("bench").unwrap();

    // 1. Catch-up throughput.
    let mut traffic = Traffic::new(1_000);
    let mut events = traffic.creations();
    while events.len() < total {
        events.push(traffic.next());
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &events {
        *kinds.entry(event.event_type().as_str()).or_default() += 1;
    }
    let encoded = encode_all(&encoder, &events).await;
    let produce_started = Instant::now();
    produce(&producer, &topic, &encoded).await;
    let produce_rate = total as f64 / produce_started.elapsed().as_secs_f64();

    let started = Instant::now();
    let service = RunningService::start::<Application>(config(&stack, &database, &topic, &dlq, &group)).await;
    // Start-up (joining the group, reading checkpoints) is timed apart from the projection itself.
    let mut first_batch: Option<(Instant, i64)> = None;
    loop {
        let now_applied = applied(&database, &group).await;
        if first_batch.is_none() && now_applied > 0 {
            first_batch = Some((Instant::now(), now_applied));
        }
        if now_applied >= total as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let finished = Instant::now();
    let (first_at, first_count) = first_batch.unwrap();
    let start_up = first_at.duration_since(started);
    let catch_up = finished.duration_since(first_at);
    let projection_rate = (total as i64 - first_count) as f64 / catch_up.as_secs_f64();
    let (copied, copy_rate) = raw_copy_rate(&database).await;

    // 3. Steady state at a fixed rate: lag from produce acknowledgement to checkpoint.
    let steady_total = (rate * seconds) as usize;
    let mut steady = Vec::with_capacity(steady_total);
    while steady.len() < steady_total {
        steady.push(traffic.next());
    }
    let steady_encoded = encode_all(&encoder, &steady).await;
    let base = applied(&database, &group).await;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut acknowledged: Vec<Option<Instant>> = vec![None; steady_total];
    let mut visible: Vec<Option<Instant>> = vec![None; steady_total];
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut sent = 0;
    let mut seen_total = 0_usize;
    let mut last_poll = Instant::now();
    use futures::StreamExt;
    while seen_total < steady_total {
        tokio::select! {
            _ = ticker.tick(), if sent < steady_total => {
                let (key, bytes) = &steady_encoded[sent];
                let index = sent;
                let delivery = producer.send(FutureRecord::to(&topic).key(key).payload(bytes), Timeout::After(Duration::from_secs(30)));
                in_flight.push(async move { (index, delivery.await.map(|_| Instant::now())) });
                sent += 1;
            }
            Some((index, delivered)) = in_flight.next() => {
                acknowledged[index] = Some(delivered.map_err(|(error, _)| error).unwrap());
            }
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        if last_poll.elapsed() >= Duration::from_millis(10) {
            last_poll = Instant::now();
            // Offsets are per partition: count applied events as a whole and mark that many (in ack order)
            // as visible. Per-partition FIFO makes this an upper bound of each event's own lag at p99.
            let now_applied = (applied(&database, &group).await - base).max(0) as usize;
            let now = Instant::now();
            let mut order: Vec<usize> =
                (0..steady_total).filter(|index| acknowledged[*index].is_some() && visible[*index].is_none()).collect();
            order.sort_by_key(|index| acknowledged[*index]);
            for index in order.into_iter().take(now_applied.saturating_sub(seen_total)) {
                visible[index] = Some(now);
            }
            seen_total = visible.iter().filter(|mark| mark.is_some()).count();
        }
    }
    let mut lags: Vec<f64> = acknowledged
        .iter()
        .zip(&visible)
        .filter_map(|(acked, seen)| {
            Some(seen.as_ref()?.saturating_duration_since(*acked.as_ref()?).as_secs_f64() * 1000.0)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    service.stop().await.unwrap();

    println!("## projection benchmark");
    println!("events: {total} over {PARTITIONS} partitions and 1000 channels; mix: {kinds:?}");
    println!("produce (acks=all, idempotent): {produce_rate:.0} events/s");
    println!(
        "catch-up projection: {total} events; start-up to first batch {:.2} s; then {:.2} s = {projection_rate:.0} events/s",
        start_up.as_secs_f64(),
        catch_up.as_secs_f64()
    );
    println!(
        "raw COPY of the {copied} message rows: {copy_rate:.0} rows/s; projection/COPY = {:.2}",
        projection_rate / copy_rate
    );
    println!(
        "steady {rate} events/s for {seconds} s: lag (ack → checkpoint, 10 ms polling) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0.0)
    );
    database.drop_database().await;
}
