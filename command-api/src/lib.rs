//! ChatSDK command API: authenticates, validates and appends channel-partitioned events to Kafka.
//! It never writes to PostgreSQL on the request path (DESIGN.md).

pub mod config;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use chatsdk_platform::config::{ConfigError, LogConfig};
use chatsdk_platform::ops::Readiness;
use chatsdk_platform::service::{HttpService, Service};

pub use config::Config;

/// The command API, built (listener bound, clients created) and ready to serve.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
}

impl Service for Application {
    const NAME: &'static str = "command-api";
    type Config = Config;

    fn load_config(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file)
    }

    fn log_config(config: &Config) -> &LogConfig {
        &config.log
    }

    async fn build(config: Config) -> anyhow::Result<Self> {
        // Clients are created here so wrong settings fail at start, not on the first request; none of
        // them connects yet, so the service starts (not ready) while a dependency is down.
        let postgres = config.postgres.pool()?;
        let s3 = config.s3.client()?;
        let readiness = Readiness::new(vec![
            config.kafka.readiness_probe(Self::NAME)?,
            config.postgres.readiness_probe(postgres),
            config.registry.readiness_probe()?,
            config.s3.readiness_probe(s3),
        ]);
        let http = HttpService::bind(&config.http, Router::new(), readiness).await?;
        Ok(Self { http })
    }

    fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        self.http.run_until_stopped(shutdown).await
    }
}
