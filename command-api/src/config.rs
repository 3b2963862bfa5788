//! The command API's configuration (see docs/configuration.md).

use std::path::Path;

use chatsdk_platform::config::{self, ConfigError, HttpConfig, LogConfig, ensure};
use chatsdk_platform::kafka::KafkaConfig;
use chatsdk_platform::postgres::PostgresConfig;
use chatsdk_platform::registry::RegistryConfig;
use chatsdk_platform::s3::S3Config;
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 18180;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http: HttpConfig,
    pub log: LogConfig,
    pub kafka: KafkaConfig,
    pub postgres: PostgresConfig,
    pub registry: RegistryConfig,
    pub s3: S3Config,
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
        // A send answers only after Kafka acknowledged it; the acknowledgement deadline must expire first
        // so the client gets our 503 rather than a request timeout with the outcome unknown.
        ensure(self.kafka.delivery_timeout_ms < self.http.request_timeout_ms, || {
            format!(
                "kafka.delivery_timeout_ms ({}) must be below http.request_timeout_ms ({})",
                self.kafka.delivery_timeout_ms, self.http.request_timeout_ms
            )
        })
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
    fn delivery_deadline_beyond_request_deadline_is_rejected() {
        let mut config = Config::default();
        config.kafka.delivery_timeout_ms = config.http.request_timeout_ms;
        let error = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.contains("kafka.delivery_timeout_ms"), "{error}");
    }
}
