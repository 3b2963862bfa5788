//! How far the projector has come, per partition, and waiting for it: the `min_position` both APIs accept
//! (read-your-writes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chatsdk_client::SessionPosition;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::api::error::ApiError;

/// The projector's next offset per partition (every offset below is applied), as last polled. Only grows.
/// A cache entry can remember its partition's value when it was read, to tell whether it already reflects
/// a position.
#[derive(Debug)]
pub struct Progress {
    pool: PgPool,
    consumer: String,
    topic: String,
    applied: Mutex<HashMap<i32, i64>>,
    /// Bumped after every poll; waiters hold receivers, so the poller stops when nobody waits.
    polls: watch::Sender<u64>,
    polling: AtomicBool,
    /// The last poll failed.
    failing: AtomicBool,
}

/// The projector `consumer`'s checkpoints in `topic`: (partition, next offset to apply).
pub async fn checkpoints<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    consumer: &str,
    topic: &str,
) -> Result<Vec<(i32, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT partition, next_offset FROM projector_checkpoints WHERE consumer = $1 AND topic = $2",
        consumer,
        topic,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|row| (row.partition, row.next_offset)).collect())
}

const POLL_INTERVAL: Duration = Duration::from_millis(5);

impl Progress {
    /// Progress of the projector `consumer` (its checkpoint name) in `topic`.
    pub fn new(pool: PgPool, consumer: String, topic: String) -> Arc<Self> {
        Arc::new(Self {
            pool,
            consumer,
            topic,
            applied: Mutex::new(HashMap::new()),
            polls: watch::channel(0).0,
            polling: AtomicBool::new(false),
            failing: AtomicBool::new(false),
        })
    }

    /// The last polled next offset per partition (partitions never polled are absent).
    pub fn applied(&self) -> HashMap<i32, i64> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until the projector has applied every position in `target`. `Ok(false)` when `max_wait`
    /// passed first. Waiters never query: one poller per process reads the checkpoints while anybody
    /// waits, so a lagging projector costs one query per poll interval, not one per waiting request.
    pub async fn wait_for(self: &Arc<Self>, target: &SessionPosition, max_wait: Duration) -> Result<bool, ApiError> {
        let reached = |applied: &HashMap<i32, i64>| {
            target.positions().all(|position| {
                applied.get(&position.partition).is_some_and(|next_offset| *next_offset > position.offset)
            })
        };
        if reached(&self.applied()) {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut polls = self.polls.subscribe();
        Self::ensure_polling(self);
        loop {
            tokio::select! {
                changed = polls.changed() => {
                    if changed.is_err() {
                        return Ok(false);
                    }
                }
                // A poller that saw no waiter may have stopped just as this one subscribed: make sure one runs.
                () = tokio::time::sleep(Duration::from_millis(50)) => Self::ensure_polling(self),
                () = tokio::time::sleep_until(deadline) => return Ok(false),
            }
            if self.failing.load(Ordering::Acquire) {
                return Err(ApiError::unavailable(
                    "database_unavailable",
                    "the read model is unavailable; retry shortly",
                ));
            }
            if reached(&self.applied()) {
                return Ok(true);
            }
        }
    }

    fn ensure_polling(progress: &Arc<Self>) {
        if !progress.polling.swap(true, Ordering::AcqRel) {
            tokio::spawn(Self::poll(Arc::clone(progress)));
        }
    }

    async fn poll(progress: Arc<Self>) {
        loop {
            if progress.polls.receiver_count() == 0 {
                progress.polling.store(false, Ordering::Release);
                // A waiter that subscribed just now saw `polling` still set: keep going for it unless it
                // started a poller of its own.
                let waiter_arrived = progress.polls.receiver_count() > 0;
                if !waiter_arrived
                    || progress.polling.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err()
                {
                    return;
                }
            }
            match checkpoints(&progress.pool, &progress.consumer, &progress.topic).await {
                Ok(rows) => {
                    let mut applied = progress.applied.lock().unwrap_or_else(PoisonError::into_inner);
                    for (partition, next_offset) in rows {
                        let known = applied.entry(partition).or_insert(next_offset);
                        *known = (*known).max(next_offset);
                    }
                    progress.failing.store(false, Ordering::Release);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "reading projector checkpoints failed");
                    progress.failing.store(true, Ordering::Release);
                }
            }
            progress.polls.send_modify(|polls| *polls = polls.wrapping_add(1));
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}
