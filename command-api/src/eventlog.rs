//! Appending events: encode (Confluent wire format, schema from the registry), produce with the idempotent
//! producer (acks=all), and answer only once Kafka acknowledged. Plus the memory of recent sends that makes
//! a retried `client_msg_id` return the original message without appending again.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chatsdk_client::Position;
use chatsdk_schemas::Envelope;
use chatsdk_schemas::codec::{EncodeError, EventEncoder};
use chatsdk_schemas::ids::{AppId, ChannelId, EventId, MessageId};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use chatsdk_platform::metrics as names;

use crate::error::ApiError;

pub struct EventLog {
    producer: FutureProducer,
    encoder: Arc<EventEncoder>,
    topic: String,
    /// librdkafka's own deadline (`message.timeout.ms`) plus a margin: the produce fails inside librdkafka
    /// first; this only guards against a lost callback.
    deadline: Duration,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("EventLog").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl EventLog {
    pub fn new(
        producer: FutureProducer,
        encoder: Arc<EventEncoder>,
        topic: String,
        delivery_timeout: Duration,
    ) -> Self {
        Self { producer, encoder, topic, deadline: delivery_timeout + Duration::from_millis(250) }
    }

    /// Appends one event; returns where Kafka stored it.
    pub async fn append(&self, envelope: &Envelope, traceparent: Option<&str>) -> Result<Position, ApiError> {
        let payload = match self.encoder.encode(envelope).await {
            // A registration racing another node's for the same new subject fails once; the retry finds it.
            Err(EncodeError::Registry(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.encoder.encode(envelope).await
            }
            encoded => encoded,
        };
        let payload = payload.map_err(|error| match error {
            EncodeError::Registry(error) => {
                tracing::warn!(error = %error, "schema registry unavailable");
                ApiError::unavailable("registry_unavailable", "the schema registry is unavailable; retry shortly")
            }
            // Validation happens before an envelope is built; a schema violation here is our bug.
            other => {
                tracing::error!(error = %other, "an event failed its own schema");
                ApiError::Internal("the event could not be encoded".to_owned())
            }
        })?;
        let key = envelope.key();
        let mut record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        if let Some(traceparent) = traceparent {
            record =
                record.headers(OwnedHeaders::new().insert(Header { key: "traceparent", value: Some(traceparent) }));
        }
        let delivery = self.producer.send_result(record).map_err(|(error, _)| {
            tracing::warn!(error = %error, "produce refused (queue full?)");
            ApiError::unavailable("kafka_unavailable", "the event log is unavailable; retry shortly")
        })?;
        let started = std::time::Instant::now();
        let record = |ok: bool| {
            metrics::histogram!(names::COMMAND_PRODUCE_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
            if ok {
                metrics::counter!(names::COMMAND_EVENTS_APPENDED_TOTAL, "type" => envelope.event_type().as_str())
                    .increment(1);
            } else {
                metrics::counter!(names::COMMAND_PRODUCE_FAILURES_TOTAL).increment(1);
            }
        };
        let unavailable = || {
            ApiError::unavailable(
                "kafka_unavailable",
                "the event log did not acknowledge in time; retry (sends stay idempotent)",
            )
        };
        match tokio::time::timeout(self.deadline, delivery).await {
            Ok(Ok(Ok(delivered))) => {
                record(true);
                Ok(Position { partition: delivered.partition, offset: delivered.offset })
            }
            Ok(Ok(Err((error, _)))) => {
                record(false);
                tracing::warn!(error = %error, "produce failed");
                Err(unavailable())
            }
            Ok(Err(_)) | Err(_) => {
                record(false);
                tracing::warn!("no delivery report in time");
                Err(unavailable())
            }
        }
    }
}

/// What a finished send left behind, for retries of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentMessage {
    /// Unknown when the original was found in the read model rather than in this node's memory.
    pub event_id: Option<EventId>,
    pub position: Position,
}

type Outcome = Option<Result<SentMessage, ()>>;

/// Commands this node appended recently, and those in flight, by what they create: a concurrent or later
/// repeat waits for or reuses the first outcome instead of appending a second event. Bounded; the oldest
/// entries go first. Across nodes, or after eviction, the read model (and, before projection, the
/// projector's first-wins rule) catches repeats.
#[derive(Debug)]
pub struct Recent<K> {
    capacity: usize,
    inner: Mutex<Slots<K>>,
}

/// Sends by message id (a retried `client_msg_id`).
pub type RecentSends = Recent<(AppId, MessageId)>;
/// Channel creations by channel id (two creates of one id within the projector's lag).
pub type RecentCreates = Recent<(AppId, ChannelId)>;

#[derive(Debug)]
struct Slots<K> {
    slots: HashMap<K, watch::Receiver<Outcome>>,
    order: VecDeque<K>,
}

/// The caller's part in a command.
#[derive(Debug)]
pub enum Claim<K: Eq + Hash + Clone> {
    /// Nobody else is doing this: go ahead, then [`SendGuard::finish`].
    Owner(SendGuard<K>),
    /// The same was done, or is being done, here.
    Repeat(watch::Receiver<Outcome>),
}

/// Held while appending; dropping it unfinished (error, cancelled request) forgets the attempt so a retry
/// may try again.
#[derive(Debug)]
pub struct SendGuard<K: Eq + Hash + Clone> {
    key: K,
    sender: Option<watch::Sender<Outcome>>,
    recent: Arc<Recent<K>>,
}

impl<K: Eq + Hash + Clone> Recent<K> {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Slots { slots: HashMap::new(), order: VecDeque::new() }),
        })
    }

    pub fn claim(self: &Arc<Self>, key: K) -> Claim<K> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(receiver) = inner.slots.get(&key) {
            return Claim::Repeat(receiver.clone());
        }
        let (sender, receiver) = watch::channel(None);
        inner.slots.insert(key.clone(), receiver);
        inner.order.push_back(key.clone());
        while inner.order.len() > self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.slots.remove(&oldest);
            }
        }
        Claim::Owner(SendGuard { key, sender: Some(sender), recent: Arc::clone(self) })
    }

    /// Forgets a failed attempt, unless the key was evicted and claimed anew meanwhile. Its place in `order`
    /// goes when it reaches the front.
    fn forget(&self, key: &K, sender: &watch::Sender<Outcome>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.slots.get(key).is_some_and(|receiver| receiver.same_channel(&sender.subscribe())) {
            inner.slots.remove(key);
        }
    }
}

impl<K: Eq + Hash + Clone> SendGuard<K> {
    pub fn finish(mut self, sent: SentMessage) {
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Some(Ok(sent)));
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for SendGuard<K> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.recent.forget(&self.key, &sender);
            sender.send_replace(Some(Err(())));
        }
    }
}

/// Waits for the first attempt of a repeated send. `None`: it failed (the caller answers 503; the client
/// retries and becomes the owner).
pub async fn outcome_of(mut receiver: watch::Receiver<Outcome>) -> Option<SentMessage> {
    let outcome = *receiver.wait_for(Option::is_some).await.ok()?;
    outcome.and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u128) -> MessageId {
        MessageId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn app() -> AppId {
        "acme".parse().unwrap_or_else(|error| panic!("{error}"))
    }

    fn sent(offset: i64) -> SentMessage {
        SentMessage { event_id: Some(EventId::new_v7()), position: Position { partition: 1, offset } }
    }

    #[tokio::test]
    async fn a_repeat_gets_the_first_attempts_outcome() {
        let recent = RecentSends::new(10);
        let Claim::Owner(guard) = recent.claim((app(), message(1))) else { panic!("first claim must own") };
        let Claim::Repeat(waiting) = recent.claim((app(), message(1))) else { panic!("second claim must repeat") };
        let first = sent(7);
        guard.finish(first);
        assert_eq!(outcome_of(waiting).await, Some(first));
        let Claim::Repeat(later) = recent.claim((app(), message(1))) else { panic!("a finished send is remembered") };
        assert_eq!(outcome_of(later).await, Some(first));
    }

    #[tokio::test]
    async fn a_failed_attempt_is_forgotten_so_a_retry_owns_it() {
        let recent = RecentSends::new(10);
        let Claim::Owner(guard) = recent.claim((app(), message(2))) else { panic!("first claim must own") };
        let Claim::Repeat(waiting) = recent.claim((app(), message(2))) else { panic!("second claim must repeat") };
        drop(guard);
        assert_eq!(outcome_of(waiting).await, None);
        assert!(matches!(recent.claim((app(), message(2))), Claim::Owner(_)));
    }

    #[test]
    fn the_oldest_sends_are_evicted_beyond_capacity() {
        let recent = RecentSends::new(2);
        for n in 0..3 {
            let Claim::Owner(guard) = recent.claim((app(), message(n))) else { panic!("a new key must own") };
            guard.finish(sent(n as i64));
        }
        assert!(matches!(recent.claim((app(), message(0))), Claim::Owner(_)), "evicted");
        assert!(matches!(recent.claim((app(), message(2))), Claim::Repeat(_)), "kept");
    }
}
