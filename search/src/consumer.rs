//! The search consumer: the event log → the Tantivy index, exactly once. The projector runs it beside the
//! read models; a query node can run it embedded, keeping its own replica.
//!
//! The index needs every partition in one writer, so this consumer assigns all partitions itself instead of
//! joining a group's rebalancing; the group id only names the offsets it reports to Kafka for outside lag
//! monitoring. The truth is the commit payload: on start, each partition is read from the offset the last
//! Tantivy commit recorded, and a commit stores documents and offsets together, so a crash between commits
//! loses both and the events are applied again. Tantivy's work (indexing, commits, merges) runs on blocking
//! threads, never on the async runtime.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Analyzer, Change, SearchWriter, WriterSettings};
use anyhow::Context;
use chatsdk_platform::kafka::{KafkaConfig, partitions_of};
use chatsdk_platform::metrics as names;
use chatsdk_schemas::{DecodeError, Envelope, EventDecoder};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How the search consumer indexes (`[search.indexer]` in the projector's and the query API's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerSettings {
    /// Names the offsets reported to Kafka (monitoring only). Give each replica its own.
    pub group_id: String,
    /// A commit happens at least this often while events arrive…
    pub commit_interval_ms: u64,
    /// …or after this many events, whichever comes first.
    pub commit_max_events: usize,
    /// Events handed to the writer at a time.
    pub batch_max_events: usize,
    /// Tantivy's indexing memory budget.
    pub writer_memory_mb: usize,
    pub writer_threads: usize,
    /// The analyzer of apps not listed in `analyzers`; apps with documents keep theirs until a rebuild.
    pub default_analyzer: Analyzer,
    /// Per-app analyzers, e.g. `{ "tokyo-app" = "cjk" }`; takes effect for an app without documents yet, or
    /// after `projector rebuild-search`.
    pub analyzers: BTreeMap<String, Analyzer>,
    /// Longest pause between retries while the registry is unreachable.
    pub retry_max_ms: u64,
}

impl Default for IndexerSettings {
    fn default() -> Self {
        Self {
            group_id: "chatsdk-projector-search".to_owned(),
            commit_interval_ms: 1_000,
            commit_max_events: 50_000,
            batch_max_events: 2_000,
            writer_memory_mb: 64,
            writer_threads: 1,
            default_analyzer: Analyzer::Default,
            analyzers: BTreeMap::new(),
            retry_max_ms: 5_000,
        }
    }
}

impl IndexerSettings {
    /// Cross-field checks, run once at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_max_events == 0 || self.commit_max_events == 0 || self.commit_interval_ms == 0 {
            return Err("search.indexer: batch_max_events, commit_max_events and commit_interval_ms must be positive"
                .to_owned());
        }
        Ok(())
    }
}

/// The offsets of the last commit, shown on `/readyz`, and whether the index has caught up with the log end
/// the consumer saw when it started.
#[derive(Debug, Clone, Default)]
pub struct SearchProgress {
    inner: Arc<Mutex<ProgressInner>>,
}

#[derive(Debug, Default)]
struct ProgressInner {
    committed: BTreeMap<i32, i64>,
    /// The log end per partition at start; `None` until known.
    start_ends: Option<BTreeMap<i32, i64>>,
}

impl SearchProgress {
    pub fn snapshot(&self) -> BTreeMap<i32, i64> {
        self.inner.lock().map(|inner| inner.committed.clone()).unwrap_or_default()
    }

    /// Whether `offsets` (e.g. a reader's loaded commit) hold everything the log had when the consumer
    /// started; `false` while that is not known yet.
    pub fn covered_by(&self, offsets: &BTreeMap<i32, i64>) -> bool {
        self.inner.lock().is_ok_and(|inner| inner.start_ends.as_ref().is_some_and(|ends| reached(offsets, ends)))
    }

    fn set_start_ends(&self, ends: BTreeMap<i32, i64>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.start_ends = Some(ends);
        }
    }

    fn set(&self, offsets: &BTreeMap<i32, i64>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.committed.clone_from(offsets);
        }
        for (partition, next) in offsets {
            metrics::gauge!(names::SEARCH_CHECKPOINT, "partition" => partition.to_string()).set(*next as f64);
        }
    }
}

/// Whether `offsets` (next offset per partition) reach `ends` in every partition that has events.
pub fn reached(offsets: &BTreeMap<i32, i64>, ends: &BTreeMap<i32, i64>) -> bool {
    ends.iter().all(|(partition, end)| *end == 0 || offsets.get(partition).is_some_and(|next| next >= end))
}

/// One consumed record: its event, or `None` when it cannot be decoded (the PostgreSQL projector
/// dead-letters those; here it only moves the offset).
type Record = (i32, i64, Option<Envelope>);

pub struct SearchProjector {
    settings: IndexerSettings,
    index_dir: PathBuf,
    topic: String,
    kafka: KafkaConfig,
    decoder: EventDecoder,
    progress: SearchProgress,
}

impl std::fmt::Debug for SearchProjector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SearchProjector").field("index_dir", &self.index_dir).finish()
    }
}

impl SearchProjector {
    /// The consumer of `topic` that writes the index in `index_dir`.
    pub fn new(
        settings: IndexerSettings,
        index_dir: &std::path::Path,
        topic: &str,
        kafka: &KafkaConfig,
        decoder: EventDecoder,
    ) -> Self {
        Self {
            settings,
            index_dir: index_dir.to_owned(),
            topic: topic.to_owned(),
            kafka: kafka.clone(),
            decoder,
            progress: SearchProgress::default(),
        }
    }

    pub fn progress(&self) -> SearchProgress {
        self.progress.clone()
    }

    /// Reports to `progress` (shared with whoever shows it) instead of a progress of its own.
    #[must_use]
    pub fn with_progress(mut self, progress: SearchProgress) -> Self {
        self.progress = progress;
        self
    }

    /// Consumes until `shutdown` resolves or, when `until` is given, until every partition's commit reached
    /// the offset it names; commits what was applied before returning.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        until: Option<BTreeMap<i32, i64>>,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        // One stop signal that every wait (the loop, registry and Kafka retries) can watch.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let relay = tokio::spawn(async move {
            shutdown.await;
            let _receivers_may_be_gone = stop.send(true);
        });
        let outcome = self.consume(stopped, until).await;
        relay.abort();
        outcome
    }

    async fn consume(
        &self,
        mut stopped: tokio::sync::watch::Receiver<bool>,
        until: Option<BTreeMap<i32, i64>>,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let writer_settings = WriterSettings {
            topic: self.topic.clone(),
            memory_bytes: self.settings.writer_memory_mb.max(15) * 1_000_000,
            threads: self.settings.writer_threads,
            default_analyzer: self.settings.default_analyzer,
            analyzers: self.settings.analyzers.clone(),
        };
        let directory = self.index_dir.clone();
        let writer = blocking(move || SearchWriter::open(&directory, writer_settings)).await?;
        let mut next: HashMap<i32, i64> = writer.committed().offsets.iter().map(|(p, o)| (*p, *o)).collect();
        self.progress.set(&writer.committed().offsets);
        let writer = Arc::new(Mutex::new(writer));

        // Kafka may be down at start: wait for it (the service is up, not ready), never give up.
        let Some(ends) =
            self.retrying("reading the log's end", &mut stopped, || log_ends(&self.kafka, &self.topic)).await
        else {
            return self.close(writer, None).await;
        };
        for (partition, end) in &ends {
            if let Some(committed) = next.get(partition).filter(|committed| *committed > end) {
                anyhow::bail!(
                    "the index has applied partition {partition} up to {committed}, beyond the log's end {end}: \
                     the topic was recreated or truncated; run `projector rebuild-search`"
                );
            }
        }
        let partitions: Vec<i32> = ends.keys().copied().collect();
        self.progress.set_start_ends(ends);
        let consumer: StreamConsumer =
            self.kafka.consumer_config("projector-search", Some(&self.settings.group_id)).create()?;
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            let offset = next.get(partition).map_or(Offset::Beginning, |next| Offset::Offset(*next));
            assignment.add_partition_offset(&self.topic, *partition, offset)?;
        }
        consumer.assign(&assignment).context("assigning the partitions")?;
        tracing::info!(index = %self.index_dir.display(), offsets = ?next, "search consumer resuming from the index's commit");

        let done = |committed: &BTreeMap<i32, i64>| until.as_ref().is_some_and(|ends| reached(committed, ends));
        let mut batch: Vec<Record> = Vec::new();
        let commit_interval = Duration::from_millis(self.settings.commit_interval_ms);
        // The deadline survives the loop's passes: steady traffic cannot postpone a commit.
        let mut next_commit = tokio::time::Instant::now() + commit_interval;
        loop {
            if done(&self.progress.snapshot()) || *stopped.borrow() {
                break;
            }
            let received = tokio::select! {
                biased;
                changed = stopped.changed() => {
                    // A closed channel (the shutdown future is gone) also means stop.
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
                received = consumer.recv() => Some(received),
                () = tokio::time::sleep_until(next_commit) => None,
            };
            match received {
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    let expected = next.get(&partition).copied().unwrap_or(0);
                    if offset < expected {
                        // Fetched again after a reconnect: already applied. (A log truncated below the index's
                        // offsets is refused at start.)
                        continue;
                    }
                    if offset > expected && expected > 0 {
                        tracing::warn!(partition, expected, offset, "offsets missing from the log, continuing");
                    }
                    let Some(envelope) = self.decode(message.payload().unwrap_or_default(), &mut stopped).await else {
                        break; // stopping while the registry is down: this record is read again next time
                    };
                    next.insert(partition, offset + 1);
                    batch.push((partition, offset, envelope));
                }
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "kafka consume error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => {}
            }
            let due = tokio::time::Instant::now() >= next_commit;
            if batch.len() < self.settings.batch_max_events && !due {
                continue;
            }
            if let Some(offsets) = self.apply(&writer, std::mem::take(&mut batch), due).await? {
                self.report(&consumer, &offsets);
            }
            if due {
                next_commit = tokio::time::Instant::now() + commit_interval;
            }
        }
        let committed = self.apply(&writer, batch, true).await?;
        self.close(writer, committed.map(|offsets| (consumer, offsets))).await
    }

    /// Reports the last commit, waits for Tantivy's merges and releases the index.
    async fn close(
        &self,
        writer: Arc<Mutex<SearchWriter>>,
        committed: Option<(StreamConsumer, BTreeMap<i32, i64>)>,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        if let Some((consumer, offsets)) = &committed {
            self.report(consumer, offsets);
        }
        let offsets = self.progress.snapshot();
        let writer = Arc::try_unwrap(writer)
            .map_err(|_| anyhow::anyhow!("the writer is still in use"))?
            .into_inner()
            .map_err(|_| anyhow::anyhow!("a writer task panicked"))?;
        blocking(move || writer.close()).await?;
        tracing::info!(?offsets, "search consumer stopped");
        Ok(offsets)
    }

    /// Retries `attempt` with backoff until it succeeds; `None` when stopping first.
    async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        stopped: &mut tokio::sync::watch::Receiver<bool>,
        mut attempt: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let mut pause = Duration::from_millis(100);
        loop {
            // An attempt may take long against an unreachable broker: stopping does not wait for it.
            let outcome = tokio::select! {
                outcome = attempt() => outcome,
                _stopping = stopped.wait_for(|stop| *stop) => return None,
            };
            match outcome {
                Ok(value) => return Some(value),
                Err(error) => tracing::warn!(error = format!("{error:#}"), "{what} failed, retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _stopping = stopped.wait_for(|stop| *stop) => return None,
            }
            pause = (pause * 2).min(Duration::from_millis(self.settings.retry_max_ms));
        }
    }

    /// Hands a batch to the writer on a blocking thread and commits when `commit_now` or enough events wait.
    /// Returns the offsets when it committed.
    async fn apply(
        &self,
        writer: &Arc<Mutex<SearchWriter>>,
        batch: Vec<Record>,
        commit_now: bool,
    ) -> anyhow::Result<Option<BTreeMap<i32, i64>>> {
        let writer = Arc::clone(writer);
        let commit_max = self.settings.commit_max_events;
        blocking(move || {
            let mut writer = writer.lock().map_err(|_| anyhow::anyhow!("a writer task panicked"))?;
            let mut changed = 0_u64;
            for (partition, offset, envelope) in &batch {
                if writer.apply(*partition, *offset, envelope.as_ref())? != Change::None {
                    changed += 1;
                }
            }
            metrics::counter!(names::SEARCH_EVENTS_TOTAL).increment(batch.len() as u64);
            metrics::counter!(names::SEARCH_DOCUMENT_CHANGES_TOTAL).increment(changed);
            if !commit_now && writer.uncommitted_events() < commit_max {
                return Ok(None);
            }
            let started = Instant::now();
            if !writer.commit()? {
                return Ok(None);
            }
            metrics::histogram!(names::SEARCH_COMMIT_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
            Ok(Some(writer.committed().offsets.clone()))
        })
        .await
    }

    /// After a commit: progress for `/readyz` and metrics, and a hint to Kafka for outside lag monitoring.
    fn report(&self, consumer: &StreamConsumer, offsets: &BTreeMap<i32, i64>) {
        self.progress.set(offsets);
        let mut hint = TopicPartitionList::new();
        for (partition, next) in offsets {
            let _ignored = hint.add_partition_offset(&self.topic, *partition, Offset::Offset(*next));
        }
        let _hint_only = consumer.commit(&hint, CommitMode::Async);
        tracing::debug!(?offsets, "search index committed");
    }

    /// Decodes a record, waiting out registry outages (an event is never skipped because the registry was
    /// down); other failures make it a record without event (`Some(None)`). `None`: stopping meanwhile.
    async fn decode(
        &self,
        payload: &[u8],
        stopped: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<Option<Envelope>> {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.decoder.decode(payload).await {
                Ok(envelope) => return Some(Some(envelope)),
                Err(error @ DecodeError::RegistryUnavailable(_)) => {
                    tracing::warn!(error = %error, "registry unavailable, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _stopping = stopped.wait_for(|stop| *stop) => return None,
                    }
                    pause = (pause * 2).min(Duration::from_millis(self.settings.retry_max_ms));
                }
                Err(error) => {
                    tracing::debug!(error = %error, "undecodable record skipped by search");
                    return Some(None);
                }
            }
        }
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.context("search writer task")?
}

/// The high watermark of every partition of `topic`, asked on a blocking thread with a client of its own.
pub async fn log_ends(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let client: BaseConsumer = kafka.consumer_config("search-metadata", None).create()?;
    let topic = topic.to_owned();
    blocking(move || {
        let partitions = partitions_of(&client, &topic, METADATA_TIMEOUT)?;
        partitions
            .into_iter()
            .map(|partition| {
                let (_low, high) =
                    client.fetch_watermarks(&topic, partition, METADATA_TIMEOUT).context("fetching the watermarks")?;
                Ok((partition, high))
            })
            .collect()
    })
    .await
}
