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

/// Replaces the database name (the path) of a `postgres://` URL, keeping its query.
pub fn url_with_database(url: &str, database: &str) -> String {
    let (without_query, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_end = without_query.find("://").map_or(0, |index| index + 3);
    let base = match without_query[authority_end..].find('/') {
        Some(slash) => &without_query[..authority_end + slash],
        None => without_query,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn database_name_is_replaced_and_query_kept() {
        assert_eq!(url_with_database("postgres://u:p@h:1/chatsdk", "t1"), "postgres://u:p@h:1/t1");
        assert_eq!(
            url_with_database("postgres://u:p@h:1/chatsdk?sslmode=disable", "t1"),
            "postgres://u:p@h:1/t1?sslmode=disable"
        );
        assert_eq!(url_with_database("postgres://h:1", "t1"), "postgres://h:1/t1");
        assert_eq!(url_with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
