//! The projector's consumer loop: Kafka consumer group → per-partition batches → `store::begin_batch`.
//!
//! Exactly once comes from the checkpoint stored with the data, not from Kafka: auto-commit is off; the
//! first record of a newly assigned partition makes the loop read that partition's checkpoint and seek
//! there; records before the checkpoint are dropped; a batch and its checkpoint commit in one transaction
//! guarded by the expected offset. Kafka offset commits are only a monitoring hint.
//!
//! Records that cannot be decoded, and events that break an invariant, go to the dead-letter topic with
//! headers (source topic, partition, offset, error, consumer) *before* the batch commits: a crash in
//! between re-sends them (at least once), never loses them. PostgreSQL or registry outages are retried
//! with backoff, never skipped.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chatsdk_platform::metrics as names;
use chatsdk_schemas::{DecodeError, Envelope, EventDecoder};
use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::model::PositionedEvent;
use crate::store::{self, BatchError};

/// Batching and naming of the projector's consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Runs the read-model consumer in this process (off for a search-only replica).
    pub enabled: bool,
    /// Consumer group, also the name of the checkpoints in PostgreSQL.
    pub group_id: String,
    pub topic: String,
    pub dlq_topic: String,
    /// A batch is applied when it holds this many records…
    pub batch_max_events: usize,
    /// …or when its oldest record waited this long.
    pub batch_max_wait_ms: u64,
    /// Longest pause between retries while PostgreSQL, Kafka or the registry fails.
    pub retry_max_ms: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            group_id: "chatsdk-projector-pg".to_owned(),
            topic: chatsdk_schemas::topics::CHANNEL_EVENTS.to_owned(),
            dlq_topic: chatsdk_schemas::topics::CHANNEL_EVENTS_DLQ.to_owned(),
            batch_max_events: 1_000,
            batch_max_wait_ms: 20,
            retry_max_ms: 5_000,
        }
    }
}

/// Partition assignments as librdkafka reports them, passed from the poll callback to the loop.
#[derive(Debug)]
enum Assignment {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Consumer lag per assigned partition: the log's end (librdkafka's statistics) minus the checkpoint.
/// Shown on `/readyz` and as a metric.
#[derive(Debug, Clone, Default)]
pub struct LagBoard {
    inner: Arc<Mutex<LagInner>>,
}

#[derive(Debug, Default)]
struct LagInner {
    /// High watermark per partition, from the statistics.
    ends: BTreeMap<i32, i64>,
    /// Checkpoint of every partition assigned to this process.
    checkpoints: BTreeMap<i32, i64>,
}

impl LagBoard {
    /// Events not yet applied, per assigned partition (0 until the end of a partition is known).
    pub fn snapshot(&self) -> BTreeMap<i32, i64> {
        let Ok(inner) = self.inner.lock() else { return BTreeMap::new() };
        inner
            .checkpoints
            .iter()
            .map(|(partition, checkpoint)| {
                let end = inner.ends.get(partition).copied().unwrap_or(*checkpoint);
                (*partition, (end - checkpoint).max(0))
            })
            .collect()
    }

    fn set_ends(&self, ends: BTreeMap<i32, i64>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.ends = ends;
        }
        for (partition, lag) in self.snapshot() {
            metrics::gauge!(names::PROJECTOR_LAG, "partition" => partition.to_string()).set(lag as f64);
        }
    }

    fn set_checkpoint(&self, partition: i32, checkpoint: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.checkpoints.insert(partition, checkpoint);
        }
    }

    fn forget(&self, partition: i32) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.checkpoints.remove(&partition);
        }
    }
}

struct RebalanceNotifier {
    topic: String,
    notes: mpsc::UnboundedSender<Assignment>,
    lag: LagBoard,
}

impl ClientContext for RebalanceNotifier {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        // Negative values mean "unknown" (partition not fetched here yet); partition -1 is librdkafka's own.
        let ends: BTreeMap<i32, i64> = topic
            .partitions
            .iter()
            .filter(|(partition, stats)| **partition >= 0 && stats.hi_offset >= 0)
            .map(|(partition, stats)| (*partition, stats.hi_offset))
            .collect();
        self.lag.set_ends(ends);
    }
}

impl ConsumerContext for RebalanceNotifier {
    fn post_rebalance(&self, _consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| {
            list.elements()
                .iter()
                .filter(|element| element.topic() == self.topic)
                .map(|element| element.partition())
                .collect()
        };
        let note = match rebalance {
            Rebalance::Assign(list) => Assignment::Assigned(partitions(list)),
            Rebalance::Revoke(list) => Assignment::Revoked(partitions(list)),
            Rebalance::Error(error) => {
                tracing::warn!(error = %error, "rebalance error");
                return;
            }
        };
        metrics::counter!(names::PROJECTOR_REBALANCES_TOTAL).increment(1);
        // The loop owns the receiver for the consumer's whole life.
        let _receiver_alive = self.notes.send(note);
    }
}

/// One record as received, kept with its bytes for the dead-letter topic.
struct Received {
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// What the loop knows of one assigned partition.
#[derive(Default)]
struct PartitionState {
    /// The stored checkpoint (next offset to apply); `None` until read after the assignment.
    checkpoint: Option<i64>,
    /// Records of the batch being applied (at most one per partition, so offsets stay in order).
    in_flight: usize,
    /// Records after the batch in flight, consecutive.
    pending: Vec<Received>,
    oldest: Option<Instant>,
    /// The offset of the last seek, so records still queued from before it do not trigger it again.
    sought: Option<i64>,
    /// Changes with every assignment, so a batch finishing after a revoke-and-reassign is recognised.
    generation: u64,
    /// After a failed batch, the next attempt waits until then.
    retry_after: Option<Instant>,
}

impl PartitionState {
    fn next_wanted(&self) -> Option<i64> {
        self.checkpoint.map(|checkpoint| checkpoint + (self.in_flight + self.pending.len()) as i64)
    }
}

/// A batch handed to a task, and how it ended.
struct BatchDone {
    partition: i32,
    generation: u64,
    checkpoint: i64,
    records: Vec<Received>,
    outcome: Result<i64, BatchError>,
}

/// The running consumer of one projector process.
pub struct Projector {
    settings: ConsumerSettings,
    consumer: StreamConsumer<RebalanceNotifier>,
    assignments: mpsc::UnboundedReceiver<Assignment>,
    pool: PgPool,
    applier: Applier,
    /// Batches being applied, one partition each: receiving goes on meanwhile.
    batches: JoinSet<BatchDone>,
    partitions: HashMap<i32, PartitionState>,
    generations: u64,
    lag: LagBoard,
    /// Checkpoints not yet reported to Kafka, and when they last were.
    hints: BTreeMap<i32, i64>,
    last_hint: Instant,
}

const HINT_INTERVAL: Duration = Duration::from_secs(5);

/// What woke the loop.
enum Step {
    Received(Result<OwnedMessage, rdkafka::error::KafkaError>),
    BatchDone(Result<BatchDone, tokio::task::JoinError>),
    Tick,
}

/// What a batch task needs: cheap clones of the pool, the dead-letter producer and the settings.
#[derive(Clone)]
struct Applier {
    settings: ConsumerSettings,
    pool: PgPool,
    producer: FutureProducer,
    decoder: EventDecoder,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Projector").field("settings", &self.settings).finish()
    }
}

impl Projector {
    pub fn new(
        settings: ConsumerSettings,
        kafka: &chatsdk_platform::kafka::KafkaConfig,
        pool: PgPool,
        decoder: EventDecoder,
    ) -> anyhow::Result<Self> {
        let (notes, assignments) = mpsc::unbounded_channel();
        let lag = LagBoard::default();
        let context = RebalanceNotifier { topic: settings.topic.clone(), notes, lag: lag.clone() };
        let consumer: StreamConsumer<RebalanceNotifier> = kafka
            .consumer_config("projector", Some(&settings.group_id))
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)
            .context("creating the projector consumer")?;
        let producer = kafka.producer("projector-dlq")?;
        let applier = Applier { settings: settings.clone(), pool: pool.clone(), producer, decoder };
        Ok(Self {
            settings,
            consumer,
            assignments,
            pool,
            applier,
            batches: JoinSet::new(),
            partitions: HashMap::new(),
            generations: 0,
            lag,
            hints: BTreeMap::new(),
            last_hint: Instant::now(),
        })
    }

    /// Where `/readyz` reads the lag from.
    pub fn lag_board(&self) -> LagBoard {
        self.lag.clone()
    }

    /// Consumes until `shutdown` resolves. Batches not yet committed are dropped: their records are applied
    /// again by whoever owns the partition next, from the checkpoint.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.consumer.subscribe(&[&self.settings.topic]).context("subscribing")?;
        let mut shutdown = std::pin::pin!(shutdown);
        let tick = Duration::from_millis(self.settings.batch_max_wait_ms.max(1));
        loop {
            self.note_assignments().await;
            self.start_due_batches();
            self.commit_hints(false);
            let event = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = self.batches.join_next(), if !self.batches.is_empty() => Step::BatchDone(done),
                received = self.consumer.recv() => Step::Received(received.map(|message| message.detach())),
                () = tokio::time::sleep(tick) => Step::Tick,
            };
            match event {
                Step::Received(Ok(message)) => self.receive(&message).await,
                Step::Received(Err(error)) => {
                    tracing::warn!(error = %error, "kafka consume error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Step::BatchDone(Ok(done)) => self.finish_batch(done).await,
                Step::BatchDone(Err(error)) => tracing::error!(error = %error, "batch task failed"),
                Step::Tick => {}
            }
        }
        // Batches in flight finish (or fail) on their own; wait so their commits are not cut in half.
        tracing::info!(in_flight = self.batches.len(), "consumer stopping");
        while self.batches.join_next().await.is_some() {}
        tracing::info!("batches drained, leaving the group");
        // Closing the consumer (on drop) leaves the group, so its partitions move at once.
        drop(self);
        tracing::info!("left the group");
        Ok(())
    }

    /// Takes in the assignment changes librdkafka reported: a newly assigned partition reads its stored
    /// checkpoint and seeks there before anything of it is applied; a revoked one is forgotten, with its
    /// pending records (its next owner starts from the checkpoint).
    async fn note_assignments(&mut self) {
        while let Ok(note) = self.assignments.try_recv() {
            match note {
                Assignment::Assigned(partitions) => {
                    tracing::info!(?partitions, "partitions assigned");
                    for partition in partitions {
                        self.generations += 1;
                        self.partitions.insert(
                            partition,
                            PartitionState { generation: self.generations, ..PartitionState::default() },
                        );
                        if let Some(checkpoint) = self.checkpoint_of(partition).await
                            && let Some(state) = self.partitions.get_mut(&partition)
                        {
                            state.sought = Some(checkpoint);
                            self.seek(partition, checkpoint);
                        }
                    }
                }
                Assignment::Revoked(partitions) => {
                    tracing::info!(?partitions, "partitions revoked");
                    for partition in partitions {
                        self.partitions.remove(&partition);
                        self.lag.forget(partition);
                    }
                }
            }
            metrics::gauge!(names::PROJECTOR_ASSIGNED_PARTITIONS).set(self.partitions.len() as f64);
        }
    }

    async fn receive(&mut self, message: &OwnedMessage) {
        self.note_assignments().await;
        let partition = message.partition();
        let offset = message.offset();
        if !self.partitions.contains_key(&partition) {
            // A record fetched before the revocation was noted.
            return;
        }
        let Some(wanted) = self.checkpoint_of(partition).await else { return };
        if offset != wanted {
            // Kafka's committed offset is only a hint: the fetch position may be before the checkpoint (already
            // applied) or after it. Either way, read from the checkpoint, seeking once per target.
            if let Some(state) = self.partitions.get_mut(&partition)
                && state.sought != Some(wanted)
            {
                state.sought = Some(wanted);
                self.seek(partition, wanted);
            }
            return;
        }
        let Some(state) = self.partitions.get_mut(&partition) else { return };
        state.oldest.get_or_insert_with(Instant::now);
        state.pending.push(Received {
            offset,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
        });
    }

    /// The next offset this partition wants, reading (and seeking to) the stored checkpoint after an
    /// assignment. `None` when PostgreSQL is unreachable; the record will come again after the seek.
    async fn checkpoint_of(&mut self, partition: i32) -> Option<i64> {
        if let Some(wanted) = self.partitions.get(&partition).and_then(PartitionState::next_wanted) {
            return Some(wanted);
        }
        let mut pause = Duration::from_millis(100);
        let stored = loop {
            match store::checkpoint(&self.pool, &self.settings.group_id, &self.settings.topic, partition).await {
                Ok(stored) => break stored,
                Err(error) => {
                    metrics::counter!(names::PROJECTOR_RETRIES_TOTAL, "cause" => "postgres").increment(1);
                    tracing::warn!(partition, error = format!("{error:#}"), "reading the checkpoint failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(self.settings.retry_max_ms));
                }
            }
        };
        tracing::info!(partition, checkpoint = stored, "resuming from the stored checkpoint");
        metrics::gauge!(names::PROJECTOR_CHECKPOINT, "partition" => partition.to_string()).set(stored as f64);
        self.lag.set_checkpoint(partition, stored);
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.checkpoint = Some(stored);
            state.pending.clear();
            state.oldest = None;
            state.sought = None;
        }
        Some(stored)
    }

    fn seek(&self, partition: i32, offset: i64) {
        if let Err(error) = self.consumer.seek(
            &self.settings.topic,
            partition,
            Offset::Offset(offset),
            Timeout::After(Duration::from_secs(5)),
        ) {
            tracing::warn!(partition, offset, error = %error, "seek failed");
        }
    }

    /// Hands every partition's pending records to a batch task when they are many or old enough, unless that
    /// partition has a batch in flight (one at a time keeps its offsets in order) or waits for a retry.
    fn start_due_batches(&mut self) {
        let max_wait = Duration::from_millis(self.settings.batch_max_wait_ms);
        let now = Instant::now();
        for (partition, state) in &mut self.partitions {
            let due = !state.pending.is_empty()
                && state.in_flight == 0
                && state.retry_after.is_none_or(|after| now >= after)
                && (state.pending.len() >= self.settings.batch_max_events
                    || state.oldest.is_some_and(|oldest| oldest.elapsed() >= max_wait));
            let Some(checkpoint) = state.checkpoint.filter(|_| due) else { continue };
            let take = state.pending.len().min(self.settings.batch_max_events);
            let records: Vec<Received> = state.pending.drain(..take).collect();
            state.in_flight = records.len();
            state.oldest = (!state.pending.is_empty()).then_some(now);
            let (applier, partition, generation) = (self.applier.clone(), *partition, state.generation);
            self.batches.spawn(async move {
                let outcome = applier.apply(partition, checkpoint, &records).await;
                BatchDone { partition, generation, checkpoint, records, outcome }
            });
        }
    }

    async fn finish_batch(&mut self, done: BatchDone) {
        let BatchDone { partition, generation, checkpoint, records, outcome } = done;
        let Some(state) = self.partitions.get_mut(&partition).filter(|state| state.generation == generation) else {
            // Revoked (and maybe reassigned) meanwhile: the checkpoint in PostgreSQL tells the truth.
            return;
        };
        state.in_flight = 0;
        match outcome {
            Ok(next) => {
                state.checkpoint = Some(next);
                state.retry_after = None;
                self.lag.set_checkpoint(partition, next);
                self.hints.insert(partition, next);
            }
            Err(BatchError::Stale { .. }) => {
                metrics::counter!(names::PROJECTOR_STALE_BATCHES_TOTAL).increment(1);
                tracing::warn!(partition, checkpoint, "checkpoint moved by another owner, re-reading it");
                state.checkpoint = None;
                state.pending.clear();
                if let Some(stored) = self.checkpoint_of(partition).await {
                    self.seek(partition, stored);
                }
            }
            Err(BatchError::Database(error)) => {
                // Put the records back in front, in order, and try again after a pause.
                metrics::counter!(names::PROJECTOR_RETRIES_TOTAL, "cause" => "postgres").increment(1);
                tracing::warn!(partition, error = format!("{error:#}"), "applying a batch failed, retrying");
                let mut kept = records;
                kept.append(&mut state.pending);
                state.pending = kept;
                state.oldest = Some(Instant::now());
                state.retry_after = Some(Instant::now() + Duration::from_millis(self.settings.retry_max_ms.min(1_000)));
            }
        }
    }
    /// Tells Kafka where we are, for outside lag monitoring only (failures do not matter), at most every few
    /// seconds: one commit per batch would queue thousands of results that closing the consumer must drain.
    fn commit_hints(&mut self, force: bool) {
        if self.hints.is_empty() || (!force && self.last_hint.elapsed() < HINT_INTERVAL) {
            return;
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in std::mem::take(&mut self.hints) {
            let _ignored = offsets.add_partition_offset(&self.settings.topic, partition, Offset::Offset(next));
        }
        self.last_hint = Instant::now();
        let _hint_only = self.consumer.commit(&offsets, CommitMode::Async);
    }
}

impl Applier {
    /// Decodes a record, waiting out registry outages: an event is never skipped because the registry was
    /// down. Other failures are permanent and make the record a dead letter.
    async fn decode(&self, payload: &[u8]) -> Result<Envelope, String> {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.decoder.decode(payload).await {
                Ok(envelope) => return Ok(envelope),
                Err(error @ DecodeError::RegistryUnavailable(_)) => {
                    metrics::counter!(names::PROJECTOR_RETRIES_TOTAL, "cause" => "registry").increment(1);
                    tracing::warn!(error = %error, "registry unavailable, retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(self.settings.retry_max_ms));
                }
                Err(error) => return Err(error.to_string()),
            }
        }
    }

    /// One batch: decode, fold and write in a transaction, dead letters out, commit. Returns the new
    /// checkpoint. Decoding happens here, in the batch's task, so partitions decode in parallel.
    async fn apply(&self, partition: i32, checkpoint: i64, records: &[Received]) -> Result<i64, BatchError> {
        let started = Instant::now();
        let next = checkpoint + records.len() as i64;
        let mut events = Vec::with_capacity(records.len());
        let mut dead: Vec<(&Received, String)> = Vec::new();
        for record in records {
            match self.decode(&record.payload).await {
                Ok(envelope) => events.push(PositionedEvent { partition, offset: record.offset, envelope }),
                Err(error) => dead.push((record, error)),
            }
        }
        let prepared = store::begin_batch(
            &self.pool,
            &self.settings.group_id,
            &self.settings.topic,
            partition,
            checkpoint..next,
            &events,
        )
        .await?;
        for (offset, violation) in &prepared.outcome().violations {
            if let Some(record) = records.iter().find(|record| record.offset == *offset) {
                dead.push((record, violation.to_string()));
            }
        }
        self.send_dead_letters(partition, &dead).await.map_err(BatchError::Database)?;
        let outcome = prepared.commit().await?;
        metrics::counter!(names::PROJECTOR_EVENTS_APPLIED_TOTAL).increment(outcome.applied as u64);
        metrics::histogram!(names::PROJECTOR_BATCH_EVENTS).record(records.len() as f64);
        metrics::histogram!(names::PROJECTOR_BATCH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::gauge!(names::PROJECTOR_CHECKPOINT, "partition" => partition.to_string()).set(next as f64);
        tracing::debug!(
            partition,
            from = checkpoint,
            to = next,
            applied = outcome.applied,
            dead = dead.len(),
            "batch applied"
        );
        Ok(next)
    }

    async fn send_dead_letters(&self, partition: i32, dead: &[(&Received, String)]) -> anyhow::Result<()> {
        let partition_text = partition.to_string();
        let sends = dead.iter().map(|(record, error)| {
            let offset_text = record.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: "chatsdk.source.topic", value: Some(self.settings.topic.as_str()) })
                .insert(Header { key: "chatsdk.source.partition", value: Some(partition_text.as_str()) })
                .insert(Header { key: "chatsdk.source.offset", value: Some(offset_text.as_str()) })
                .insert(Header { key: "chatsdk.error", value: Some(error.as_str()) })
                .insert(Header { key: "chatsdk.consumer", value: Some(self.settings.group_id.as_str()) });
            let mut dead_letter = FutureRecord::to(&self.settings.dlq_topic).payload(&record.payload).headers(headers);
            if let Some(key) = &record.key {
                dead_letter = dead_letter.key(key);
            }
            self.producer.send(dead_letter, Timeout::After(Duration::from_secs(10)))
        });
        for delivery in join_all(sends).await {
            delivery.map_err(|(error, _)| anyhow::anyhow!("sending a dead letter: {error}"))?;
        }
        if !dead.is_empty() {
            metrics::counter!(names::PROJECTOR_DEAD_LETTERS_TOTAL).increment(dead.len() as u64);
            tracing::warn!(partition, count = dead.len(), "events sent to the dead-letter topic");
        }
        Ok(())
    }
}
