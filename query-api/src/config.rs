//! The query API's configuration (see docs/configuration.md).

use std::path::Path;

use chatsdk_platform::config::{self, ConfigError, HttpConfig, LogConfig, ensure};
use chatsdk_platform::kafka::KafkaConfig;
use chatsdk_platform::postgres::PostgresConfig;
use chatsdk_platform::registry::RegistryConfig;
use chatsdk_platform::s3::S3Config;
use chatsdk_schemas::topics;
use chatsdk_search::consumer::IndexerSettings;
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 18190;

/// The topics a node tails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    pub topic: String,
    /// Typing and presence: produced by query-api nodes, delivered by all of them, never stored.
    pub ephemeral_topic: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { topic: topics::CHANNEL_EVENTS.to_owned(), ephemeral_topic: topics::EPHEMERAL.to_owned() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Tolerated clock difference when checking a token's `exp` and `nbf`.
    pub clock_skew_secs: u64,
    /// How long an app's key and secret are cached after a lookup.
    pub app_cache_ttl_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { clock_skew_secs: 30, app_cache_ttl_ms: 30_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadsConfig {
    /// Longest wait for the projector to reach a read's `min_position` before a 503.
    pub min_position_wait_ms: u64,
    /// The projector consumer whose checkpoints reads and sync follow.
    pub projector_consumer: String,
}

impl Default for ReadsConfig {
    fn default() -> Self {
        Self { min_position_wait_ms: 2_000, projector_consumer: "chatsdk-projector-pg".to_owned() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Events kept per partition for clients resuming on this node; an older token gets `resync`.
    pub buffer_per_partition: usize,
    /// Frames queued per connection; a client that falls further behind gets `resync` and is closed.
    pub queue_capacity: usize,
    /// WebSocket ping interval; a connection that answers nothing (no pong, no frame) for
    /// `idle_timeout_ms` is closed.
    pub ping_interval_ms: u64,
    pub idle_timeout_ms: u64,
    /// Longest time one frame may take to write before the connection is dropped.
    pub write_timeout_ms: u64,
    /// Without events for this long, a connection gets a `heartbeat` frame with a fresh resume token.
    pub heartbeat_interval_ms: u64,
    /// Sockets one node accepts; beyond, `/v1/ws` answers 503.
    pub max_connections: usize,
    /// How long a `typing.start` lasts at receivers without a renewal (sent along with the event).
    pub typing_ttl_ms: u64,
    /// How often a node announces the users it holds; a node silent for three intervals is gone.
    pub presence_interval_ms: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            buffer_per_partition: 10_000,
            queue_capacity: 512,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 10_000,
            heartbeat_interval_ms: 15_000,
            max_connections: 50_000,
            typing_ttl_ms: 6_000,
            presence_interval_ms: 20_000,
        }
    }
}

/// Search (`GET /v1/search`): the index directory, written by a search consumer — the projector's
/// (`[search] enabled` there, same directory) or this node's own (`embedded`, a replica per node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Unset: search answers `503 search_unavailable`.
    pub index_dir: Option<std::path::PathBuf>,
    /// Runs a search consumer in this node that writes `index_dir` (which must then be this node's alone).
    pub embedded: bool,
    /// The embedded consumer's indexing settings (as the projector's `[search.indexer]`).
    pub indexer: IndexerSettings,
    /// How often the node looks for a new commit of the index.
    pub refresh_interval_ms: u64,
    /// Largest page (`limit`).
    pub max_limit: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            index_dir: None,
            embedded: false,
            indexer: IndexerSettings::default(),
            refresh_interval_ms: 100,
            max_limit: 100,
        }
    }
}

/// Downloads (`GET /v1/files/{upload_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// How long the presigned download URL a redirect points to stays valid.
    pub url_ttl_secs: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self { url_ttl_secs: 60 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http: HttpConfig,
    pub log: LogConfig,
    pub kafka: KafkaConfig,
    pub postgres: PostgresConfig,
    pub registry: RegistryConfig,
    pub s3: S3Config,
    pub events: EventsConfig,
    pub auth: AuthConfig,
    pub reads: ReadsConfig,
    pub realtime: RealtimeConfig,
    pub search: SearchConfig,
    pub files: FilesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::on_port(DEFAULT_PORT),
            log: LogConfig::default(),
            kafka: KafkaConfig::default(),
            postgres: PostgresConfig::default(),
            registry: RegistryConfig::default(),
            s3: S3Config::default(),
            events: EventsConfig::default(),
            auth: AuthConfig::default(),
            reads: ReadsConfig::default(),
            realtime: RealtimeConfig::default(),
            search: SearchConfig::default(),
            files: FilesConfig::default(),
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let loaded: Self = config::load(file)?;
        loaded.validate()?;
        Ok(loaded)
    }

    /// Cross-field checks, run once at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // A pooled connection must be obtainable well within a request, or reads time out instead of
        // answering a clear 503 while PostgreSQL is saturated.
        ensure(self.postgres.acquire_timeout_ms < self.http.request_timeout_ms, || {
            format!(
                "postgres.acquire_timeout_ms ({}) must be below http.request_timeout_ms ({})",
                self.postgres.acquire_timeout_ms, self.http.request_timeout_ms
            )
        })?;
        ensure(self.reads.min_position_wait_ms < self.http.request_timeout_ms, || {
            "reads.min_position_wait_ms must be below http.request_timeout_ms".to_owned()
        })?;
        ensure(self.search.refresh_interval_ms > 0 && self.search.max_limit > 0, || {
            "search.refresh_interval_ms and search.max_limit must be positive".to_owned()
        })?;
        ensure(!self.search.embedded || self.search.index_dir.is_some(), || {
            "search.embedded needs search.index_dir (the node's own index directory)".to_owned()
        })?;
        self.search.indexer.validate().map_err(ConfigError::Invalid)?;
        ensure(self.files.url_ttl_secs > 0 && self.files.url_ttl_secs <= 7 * 24 * 3600, || {
            "files.url_ttl_secs must be between 1 and 604800".to_owned()
        })?;
        let realtime = &self.realtime;
        ensure(realtime.buffer_per_partition > 0 && realtime.queue_capacity > 0, || {
            "realtime.buffer_per_partition and realtime.queue_capacity must be positive".to_owned()
        })?;
        ensure(realtime.ping_interval_ms > 0 && realtime.ping_interval_ms < realtime.idle_timeout_ms, || {
            "realtime.ping_interval_ms must be positive and below realtime.idle_timeout_ms".to_owned()
        })?;
        ensure(
            realtime.heartbeat_interval_ms >= 2 && realtime.write_timeout_ms > 0 && realtime.presence_interval_ms > 0,
            || {
                "realtime.heartbeat_interval_ms (at least 2), write_timeout_ms and presence_interval_ms must be positive".to_owned()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn pool_wait_beyond_request_deadline_is_rejected() {
        let mut config = Config::default();
        config.postgres.acquire_timeout_ms = config.http.request_timeout_ms;
        let error = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.contains("postgres.acquire_timeout_ms"), "{error}");
    }
}
