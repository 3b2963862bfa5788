//! The command API's configuration (see docs/configuration.md).

use std::path::Path;

use chatsdk_platform::config::{self, ConfigError, HttpConfig, LogConfig, Secret, ensure};
use chatsdk_platform::kafka::KafkaConfig;
use chatsdk_platform::postgres::PostgresConfig;
use chatsdk_platform::registry::RegistryConfig;
use chatsdk_platform::s3::S3Config;
use chatsdk_schemas::topics::CHANNEL_EVENTS;
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 18180;

/// Where commands are appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    pub topic: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { topic: CHANNEL_EVENTS.to_owned() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Guards `POST /v1/admin/apps` (`Authorization: Bearer <token>`); empty disables the endpoint.
    pub admin_token: Secret,
    /// Tolerated clock difference when checking a token's `exp` and `nbf`.
    pub clock_skew_secs: u64,
    /// How long an app's key and secret are cached after a lookup.
    pub app_cache_ttl_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { admin_token: Secret::default(), clock_skew_secs: 30, app_cache_ttl_ms: 30_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzConfig {
    /// How long a channel's or a membership's state read from the read model is reused.
    pub cache_ttl_ms: u64,
    /// Entries kept in each authorization cache.
    pub cache_capacity: usize,
    /// Longest wait for the projector to reach a command's `min_position` before a 503.
    pub min_position_wait_ms: u64,
    /// The projector consumer whose checkpoints `min_position` waits on.
    pub projector_consumer: String,
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self {
            cache_ttl_ms: 1_000,
            cache_capacity: 100_000,
            min_position_wait_ms: 2_000,
            projector_consumer: "chatsdk-projector-pg".to_owned(),
        }
    }
}

/// Token buckets: `rate` tokens per second refill a bucket of `burst`; a command takes one token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Per user per channel (the server actor is exempt; it is bounded by the app bucket).
    pub user_channel_rate: f64,
    pub user_channel_burst: u32,
    /// Per app, across all its users.
    pub app_rate: f64,
    pub app_burst: u32,
    /// Buckets kept; idle ones (full again) are dropped first.
    pub max_buckets: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            user_channel_rate: 10.0,
            user_channel_burst: 30,
            app_rate: 5_000.0,
            app_burst: 10_000,
            max_buckets: 200_000,
        }
    }
}

/// Direct uploads to S3 (`POST /v1/uploads`, docs/uploads.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    /// How long the presigned upload URLs stay valid.
    pub url_ttl_secs: u64,
    /// Files larger than this are uploaded in parts (at most S3's single-PUT limit, 5 GiB).
    pub multipart_threshold_bytes: u64,
    /// The smallest part (S3 needs at least 5 MiB for every part but the last).
    pub min_part_bytes: u64,
    /// Limits of every app without its own entry in `apps`.
    pub limits: UploadLimits,
    /// Per-app limits, e.g. `[uploads.apps.acme] max_video_bytes = 2000000000`.
    pub apps: std::collections::BTreeMap<String, UploadLimits>,
    /// How often multipart uploads left incomplete are looked for; 0 turns the sweeper off.
    pub sweep_interval_secs: u64,
    /// A multipart upload still incomplete this long after it started is aborted (its parts deleted).
    pub abandon_after_secs: u64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            url_ttl_secs: 300,
            multipart_threshold_bytes: 32 * MIB,
            min_part_bytes: 8 * MIB,
            limits: UploadLimits::default(),
            apps: std::collections::BTreeMap::new(),
            sweep_interval_secs: 600,
            abandon_after_secs: 3_600,
        }
    }
}

const MIB: u64 = 1024 * 1024;
/// S3's largest object.
pub const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * MIB;

/// What an app's users may upload. An app's entry replaces the defaults as a whole (unset keys take the
/// built-in defaults, not the `[uploads.limits]` ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadLimits {
    /// `image/*`.
    pub max_image_bytes: u64,
    /// `video/*`.
    pub max_video_bytes: u64,
    /// Everything else.
    pub max_file_bytes: u64,
    /// Media types allowed, exact (`application/pdf`) or by family (`image/*`); empty allows every type.
    pub allowed_types: Vec<String>,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_image_bytes: 10_000_000,
            max_video_bytes: 100_000_000,
            max_file_bytes: 50_000_000,
            allowed_types: Vec::new(),
        }
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
    pub authz: AuthzConfig,
    pub limits: LimitsConfig,
    pub uploads: UploadsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::on_port(DEFAULT_PORT),
            log: LogConfig::default(),
            // Kafka unreachable must answer 503 within 2 s (DESIGN.md): librdkafka fails the produce itself
            // at this deadline, so a 503 never leaves a message that is still being retried.
            kafka: KafkaConfig { delivery_timeout_ms: 1_500, ..KafkaConfig::default() },
            postgres: PostgresConfig::default(),
            registry: RegistryConfig::default(),
            s3: S3Config::default(),
            events: EventsConfig::default(),
            auth: AuthConfig::default(),
            authz: AuthzConfig::default(),
            limits: LimitsConfig::default(),
            uploads: UploadsConfig::default(),
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
        })?;
        // A command may first wait for min_position, then produce: both must fit in the request deadline.
        ensure(
            self.authz.min_position_wait_ms + self.kafka.delivery_timeout_ms < self.http.request_timeout_ms,
            || {
                format!(
                    "authz.min_position_wait_ms + kafka.delivery_timeout_ms ({}) must be below http.request_timeout_ms ({})",
                    self.authz.min_position_wait_ms + self.kafka.delivery_timeout_ms,
                    self.http.request_timeout_ms
                )
            },
        )?;
        ensure(
            self.limits.user_channel_rate > 0.0
                && self.limits.app_rate > 0.0
                && self.limits.user_channel_burst > 0
                && self.limits.app_burst > 0,
            || "limits: rates and bursts must be positive".to_owned(),
        )?;
        let uploads = &self.uploads;
        ensure(uploads.url_ttl_secs > 0 && uploads.url_ttl_secs <= 7 * 24 * 3600, || {
            "uploads.url_ttl_secs must be between 1 and 604800 (S3's longest presigned URL)".to_owned()
        })?;
        ensure(uploads.min_part_bytes >= 5 * MIB && uploads.min_part_bytes <= 5 * 1024 * MIB, || {
            "uploads.min_part_bytes must be between 5 MiB and 5 GiB (S3's part sizes)".to_owned()
        })?;
        // The sweeper must never abort an upload whose URLs still work.
        ensure(uploads.abandon_after_secs > uploads.url_ttl_secs, || {
            "uploads.abandon_after_secs must be above uploads.url_ttl_secs".to_owned()
        })?;
        ensure(uploads.multipart_threshold_bytes <= 5 * 1024 * MIB, || {
            "uploads.multipart_threshold_bytes must be at most 5 GiB (S3's largest single PUT)".to_owned()
        })?;
        for (app, limits) in std::iter::once(("(default)", &uploads.limits))
            .chain(uploads.apps.iter().map(|(app, limits)| (app.as_str(), limits)))
        {
            let sizes = [limits.max_image_bytes, limits.max_video_bytes, limits.max_file_bytes];
            ensure(sizes.iter().all(|size| *size <= MAX_OBJECT_BYTES), || {
                format!("uploads limits of {app}: sizes must be at most 5 TiB (S3's largest object)")
            })?;
        }
        Ok(())
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

    #[test]
    fn waiting_for_a_position_and_producing_must_fit_in_the_request_deadline() {
        let mut config = Config::default();
        config.authz.min_position_wait_ms = config.http.request_timeout_ms - config.kafka.delivery_timeout_ms;
        let error = config.validate().err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.contains("authz.min_position_wait_ms"), "{error}");
    }

    #[test]
    fn a_zero_rate_limit_is_rejected() {
        let mut config = Config::default();
        config.limits.app_rate = 0.0;
        assert!(config.validate().is_err());
    }
}
