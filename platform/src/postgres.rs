//! PostgreSQL pool setup, the embedded migrations of the read models, and the readiness probe.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Secret;
use crate::ops::Probe;

/// The read-model schema, shared by the projector (which applies it) and the APIs (which read it).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`
    pub url: Secret,
    pub max_connections: u32,
    /// Waiting longer than this for a pooled connection fails the request (503) instead of queueing.
    pub acquire_timeout_ms: u64,
    pub probe_timeout_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://chatsdk@127.0.0.1:15432/chatsdk"),
            max_connections: 10,
            acquire_timeout_ms: 2_000,
            probe_timeout_ms: 2_000,
        }
    }
}

impl PostgresConfig {
    /// A lazy pool: the service starts even while PostgreSQL is down, reports not-ready, and recovers
    /// by itself when it comes back.
    pub fn pool(&self) -> anyhow::Result<PgPool> {
        self.pool_with(|options| options)
    }

    /// A pool for a service whose every query is an index lookup (the APIs' request paths): statements are
    /// planned with their actual parameters each time. A prepared statement's generic plan is made once per
    /// connection; made while the tables had no statistics yet (a young database), it looked messages up
    /// through the history index by app alone and kept scanning every message of the app as the table grew
    /// (50 ms sends in the first minute of a fresh database). Planning these point lookups costs far less.
    pub fn point_lookup_pool(&self) -> anyhow::Result<PgPool> {
        self.pool_with(|options| options.options([("plan_cache_mode", "force_custom_plan")]))
    }

    fn pool_with(&self, adjust: impl FnOnce(PgConnectOptions) -> PgConnectOptions) -> anyhow::Result<PgPool> {
        let options: PgConnectOptions = self.url.expose().parse().context("parsing postgres.url")?;
        let options = adjust(options);
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(Duration::from_millis(self.acquire_timeout_ms))
            // No ping before every checkout: it doubled the round trips of each query. A connection that
            // died fails its query, which callers answer with a 503 or retry; the pool replaces it.
            .test_before_acquire(false)
            .connect_lazy_with(options))
    }

    pub fn readiness_probe(&self, pool: PgPool) -> Probe {
        Probe::new("postgres", Duration::from_millis(self.probe_timeout_ms), move || {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1").execute(&pool).await.context("SELECT 1")?;
                Ok(())
            }
        })
    }
}
