//! ChatSDK projector: consumes `chatsdk.channel-events.v1` and builds the PostgreSQL read models and the
//! search index, exactly once, by storing partition offsets with the data (DESIGN.md).

pub mod config;
pub mod migrations;
pub mod model;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use chatsdk_platform::config::{ConfigError, LogConfig};
use chatsdk_platform::ops::Readiness;
use chatsdk_platform::service::{HttpService, Service};
use sqlx::PgPool;

pub use config::Config;

/// The projector, built (ops listener bound, clients created) and ready to run.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
    postgres: PgPool,
    migrations: migrations::MigrationState,
    migration_retry_max: Duration,
}

impl Service for Application {
    const NAME: &'static str = "projector";
    type Config = Config;

    fn load_config(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file)
    }

    fn log_config(config: &Config) -> &LogConfig {
        &config.log
    }

    async fn build(config: Config) -> anyhow::Result<Self> {
        let postgres = config.postgres.pool()?;
        let migrations = migrations::MigrationState::default();
        let readiness = Readiness::new(vec![
            config.kafka.readiness_probe(Self::NAME)?,
            config.postgres.readiness_probe(postgres.clone()),
            config.registry.readiness_probe()?,
            migrations.readiness_probe(),
        ]);
        let http = HttpService::bind(&config.http, Router::new(), readiness).await?;
        Ok(Self {
            http,
            postgres,
            migrations,
            migration_retry_max: Duration::from_millis(config.migration_retry_max_ms),
        })
    }

    fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // The schema is applied in the background, retried until PostgreSQL answers, so the projector
        // starts (not ready) during an outage and recovers by itself.
        let migrator = tokio::spawn(migrations::apply_with_retry(
            self.postgres.clone(),
            self.migrations.clone(),
            self.migration_retry_max,
        ));
        let served = self.http.run_until_stopped(shutdown).await;
        migrator.abort();
        self.postgres.close().await;
        served
    }
}
