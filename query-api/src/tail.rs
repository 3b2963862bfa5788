//! Each node tails every partition of the event topic, without a consumer group (nothing is committed),
//! from a buffer's length before the end, and feeds the hub in log order. A second consumer tails the
//! ephemeral topic from its end.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatsdk_platform::kafka::{KafkaConfig, partitions_of};
use chatsdk_platform::metrics as names;
use chatsdk_schemas::ids::{AppId, ChannelId, UserId};
use chatsdk_schemas::{DecodeError, EventDecoder};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::hub::{Hub, Item};
use crate::presence::{Alive, Change, Changed, Presence, Transition};

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Tails `topic` into `hub` until the process ends; retries from scratch when Kafka is unreachable at start.
pub async fn run(kafka: KafkaConfig, topic: String, decoder: EventDecoder, hub: Arc<Hub>, buffer: usize) {
    let (kafka, topic, decoder, hub) = (&kafka, topic.as_str(), &decoder, hub.as_ref());
    restarting("the event tail", topic, move || tail(kafka, topic, decoder, hub, buffer)).await;
}

/// Runs `tail` again a second after each failure (Kafka unreachable, a topic missing), until it returns.
async fn restarting<F, Fut>(what: &str, topic: &str, mut tail: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    while let Err(error) = tail().await {
        tracing::warn!(error = %format!("{error:#}"), topic, "{what} stopped; restarting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn tail(
    kafka: &KafkaConfig,
    topic: &str,
    decoder: &EventDecoder,
    hub: &Hub,
    buffer: usize,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer =
        kafka.consumer_config("query-api-tail", Some("query-api-tail-unused")).create().context("creating the tail")?;
    let consumer = Arc::new(consumer);
    let starts = {
        let consumer = Arc::clone(&consumer);
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || start_offsets(consumer.as_ref(), &topic, buffer)).await??
    };
    let mut assignment = TopicPartitionList::new();
    let head = hub.head();
    for (partition, start, end) in &starts {
        // After a restart of the tail, continue where the hub stands.
        let start = head.partitions().find(|(known, _)| known == partition).map_or(*start, |(_, next)| next);
        hub.start_partition(*partition, start, *end);
        assignment.add_partition_offset(topic, *partition, Offset::Offset(start))?;
    }
    consumer.assign(&assignment).context("assigning the partitions")?;
    hub.assigned();
    tracing::info!(topic, partitions = starts.len(), "tailing the event log");
    loop {
        let message = consumer.recv().await.context("reading the event log")?;
        let (partition, offset) = (message.partition(), message.offset());
        let item = match message.payload() {
            None => Item { partition, offset, event: None },
            Some(bytes) => decode(decoder, bytes, partition, offset).await,
        };
        metrics::counter!(names::QUERY_TAIL_RECORDS_TOTAL).increment(1);
        hub.dispatch(item);
    }
}

/// Decodes a record, waiting out a registry outage (skipping would lose the event for every client).
async fn decode(decoder: &EventDecoder, bytes: &[u8], partition: i32, offset: i64) -> Item {
    let mut backoff = Duration::from_millis(100);
    loop {
        match decoder.decode(bytes).await {
            Ok(envelope) => {
                let delay = chrono::Utc::now().signed_duration_since(envelope.occurred_at);
                metrics::histogram!(names::QUERY_TAIL_DELAY_SECONDS).record(delay.as_seconds_f64().max(0.0));
                return Item::from_envelope(partition, offset, &envelope);
            }
            Err(DecodeError::RegistryUnavailable(error)) => {
                tracing::warn!(error = %error, partition, offset, "registry unavailable; retrying the decode");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                tracing::warn!(error = %error, partition, offset, "undecodable record: not delivered");
                return Item { partition, offset, event: None };
            }
        }
    }
}

/// Per partition: where to start (`buffer` records before the end, or the start of the log) and the end now.
fn start_offsets(consumer: &impl Consumer, topic: &str, buffer: usize) -> anyhow::Result<Vec<(i32, i64, i64)>> {
    let mut starts = Vec::new();
    for partition in partitions_of(consumer, topic, METADATA_TIMEOUT)? {
        let (low, high) =
            consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT).context("fetching watermarks")?;
        starts.push((partition, (high - buffer as i64).max(low), high));
    }
    Ok(starts)
}

/// A typing indicator as it travels on the ephemeral topic and reaches sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Typing {
    /// `typing.start` or `typing.stop`.
    #[serde(rename = "type")]
    pub kind: String,
    pub app_id: AppId,
    pub channel_id: ChannelId,
    pub user_id: UserId,
    /// For `typing.start`: how long receivers show it without a renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Tails the ephemeral topic from its end into the hub.
pub async fn run_ephemeral(kafka: KafkaConfig, topic: String, hub: Arc<Hub>, presence: Arc<Presence>) {
    let (kafka, topic, hub, presence) = (&kafka, topic.as_str(), hub.as_ref(), presence.as_ref());
    restarting("the ephemeral tail", topic, move || tail_ephemeral(kafka, topic, hub, presence)).await;
}

async fn tail_ephemeral(kafka: &KafkaConfig, topic: &str, hub: &Hub, presence: &Presence) -> anyhow::Result<()> {
    let consumer: StreamConsumer = kafka
        .consumer_config("query-api-ephemeral", Some("query-api-ephemeral-unused"))
        .create()
        .context("creating the ephemeral tail")?;
    let consumer = Arc::new(consumer);
    let partitions = {
        let consumer = Arc::clone(&consumer);
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || partitions_of(consumer.as_ref(), &topic, METADATA_TIMEOUT)).await??
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment.add_partition_offset(topic, partition, Offset::End)?;
    }
    consumer.assign(&assignment).context("assigning the ephemeral partitions")?;
    hub.ephemeral_assigned();
    loop {
        let message = consumer.recv().await.context("reading the ephemeral topic")?;
        let Some(bytes) = message.payload() else { continue };
        if let Err(error) = ephemeral(bytes, hub, presence) {
            tracing::debug!(error = %error, "ignoring an unknown ephemeral record");
        }
    }
}

/// Routes one record of the ephemeral topic: typing to the channel's members, presence through the
/// presence table to the members of the user's channels.
fn ephemeral(bytes: &[u8], hub: &Hub, presence: &Presence) -> Result<(), serde_json::Error> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    match serde_json::from_slice::<Kind>(bytes)?.kind.as_str() {
        "typing.start" | "typing.stop" => {
            let typing: Typing = serde_json::from_slice(bytes)?;
            let json: Arc<str> = String::from_utf8_lossy(bytes).into();
            hub.tell(&typing.app_id, std::slice::from_ref(&typing.channel_id), &typing.user_id, json);
        }
        "presence.online" | "presence.offline" => {
            if let Some(transition) = presence.apply(serde_json::from_slice::<Change>(bytes)?) {
                tell_presence(hub, &transition);
            }
        }
        "presence.alive" => presence.alive(serde_json::from_slice::<Alive>(bytes)?),
        _ => {}
    }
    Ok(())
}

/// Tells the members of a user's channels (on this node) that the user went on- or offline.
pub fn tell_presence(hub: &Hub, transition: &Transition) {
    let changed = Changed::new(transition.app.clone(), transition.user.clone(), transition.online);
    if let Ok(json) = serde_json::to_string(&changed) {
        hub.tell(&transition.app, &crate::presence::unique(&transition.channels), &transition.user, json.into());
    }
}
