//! The projector's configuration (see docs/configuration.md).

use std::path::Path;

use chatsdk_platform::config::{self, ConfigError, HttpConfig, LogConfig, ensure};
use chatsdk_platform::kafka::KafkaConfig;
use chatsdk_platform::postgres::PostgresConfig;
use chatsdk_platform::registry::RegistryConfig;
use serde::{Deserialize, Serialize};

use crate::consumer::ConsumerSettings;
use chatsdk_search::consumer::IndexerSettings;

pub const DEFAULT_PORT: u16 = 18170;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Ops endpoints only (`/healthz`, `/readyz`, `/metrics`).
    pub http: HttpConfig,
    pub log: LogConfig,
    pub kafka: KafkaConfig,
    pub postgres: PostgresConfig,
    pub registry: RegistryConfig,
    /// Longest pause between two attempts to apply the migrations while PostgreSQL is unreachable.
    pub migration_retry_max_ms: u64,
    /// The read-model consumer: group, topics and batching.
    pub consumer: ConsumerSettings,
    /// The search consumer and its index.
    pub search: SearchSettings,
}

/// The search consumer (`[search]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// Runs the search consumer in this process.
    pub enabled: bool,
    /// Where the index lives; query nodes open the same directory (or embed their own replica).
    pub index_dir: std::path::PathBuf,
    pub indexer: IndexerSettings,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self { enabled: false, index_dir: "data/search-index".into(), indexer: IndexerSettings::default() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::on_port(DEFAULT_PORT),
            log: LogConfig::default(),
            kafka: KafkaConfig::default(),
            postgres: PostgresConfig::default(),
            registry: RegistryConfig::default(),
            migration_retry_max_ms: 5_000,
            consumer: ConsumerSettings::default(),
            search: SearchSettings::default(),
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
        // On SIGTERM the projector finishes its batch before leaving the group; if that took longer than
        // the session timeout, the group would hand its partitions to another member mid-batch.
        ensure(self.http.drain_timeout_ms < self.kafka.session_timeout_ms, || {
            format!(
                "http.drain_timeout_ms ({}) must be below kafka.session_timeout_ms ({})",
                self.http.drain_timeout_ms, self.kafka.session_timeout_ms
            )
        })?;
        ensure(self.consumer.batch_max_events > 0, || "consumer.batch_max_events must be at least 1".to_owned())?;
        ensure(self.consumer.topic != self.consumer.dlq_topic, || {
            "consumer.dlq_topic must differ from consumer.topic".to_owned()
        })?;
        ensure(self.consumer.enabled || self.search.enabled, || {
            "nothing to run: enable consumer.enabled, search.enabled or both".to_owned()
        })?;
        self.search.indexer.validate().map_err(ConfigError::Invalid)
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
    fn drain_longer_than_the_group_session_is_rejected() {
        let mut config = Config::default();
        config.http.drain_timeout_ms = config.kafka.session_timeout_ms;
        let error = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.contains("kafka.session_timeout_ms"), "{error}");
    }
}
