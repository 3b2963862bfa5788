//! Applying the read-model schema at start, retried with backoff while PostgreSQL is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chatsdk_platform::ops::Probe;
use chatsdk_platform::postgres::MIGRATOR;
use sqlx::PgPool;

/// Whether this process has applied the migrations; `/readyz` reports it as the `migrations` check.
#[derive(Debug, Clone, Default)]
pub struct MigrationState {
    applied: Arc<AtomicBool>,
}

impl MigrationState {
    pub fn is_applied(&self) -> bool {
        self.applied.load(Ordering::Acquire)
    }

    pub fn readiness_probe(&self) -> Probe {
        let state = self.clone();
        Probe::new("migrations", Duration::from_secs(1), move || {
            let applied = state.is_applied();
            async move {
                anyhow::ensure!(applied, "read-model migrations not applied yet");
                Ok(())
            }
        })
    }
}

/// Runs the embedded migrations until they succeed, doubling the pause between attempts up to `max_pause`.
pub async fn apply_with_retry(pool: PgPool, state: MigrationState, max_pause: Duration) {
    let mut pause = Duration::from_millis(100);
    loop {
        match MIGRATOR.run(&pool).await {
            Ok(()) => {
                state.applied.store(true, Ordering::Release);
                tracing::info!(migrations = MIGRATOR.iter().count(), "read-model migrations applied");
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, "applying migrations failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(max_pause);
            }
        }
    }
}
