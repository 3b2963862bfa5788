//! ChatSDK projector: consumes `chatsdk.channel-events.v1` and builds the PostgreSQL read models and the
//! search index, exactly once, by storing partition offsets with the data (DESIGN.md).

pub mod config;
pub mod consumer;
pub mod migrations;
pub mod model;
pub mod rebuild;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use chatsdk_platform::config::{ConfigError, LogConfig};
use chatsdk_platform::ops::Readiness;
use chatsdk_platform::service::{HttpService, Service};
use chatsdk_schemas::{EventDecoder, RegistrySettings};
use sqlx::PgPool;

pub use config::Config;

/// The projector, built (ops listener bound, clients created) and ready to run.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
    postgres: PgPool,
    migrations: migrations::MigrationState,
    migration_retry_max: Duration,
    projector: consumer::Projector,
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
        let decoder = EventDecoder::new(&RegistrySettings::new(&config.registry.url, config.registry.timeout()))?;
        let projector = consumer::Projector::new(config.consumer.clone(), &config.kafka, postgres.clone(), decoder)?;
        let lag = projector.lag_board();
        let readiness = readiness.with_report("lag", move || serde_json::json!(lag.snapshot()));
        let http = HttpService::bind(&config.http, Router::new(), readiness).await?;
        Ok(Self {
            http,
            postgres,
            migrations,
            migration_retry_max: Duration::from_millis(config.migration_retry_max_ms),
            projector,
        })
    }

    fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // One shutdown signal, seen by the HTTP server and the consumer.
        // A failing consumer stops the whole process too: a projector that serves /healthz but no longer
        // consumes must not look alive.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop = std::sync::Arc::new(stop);
        let wait_for_stop = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            // A closed channel also means stop.
            let _closed = stopped.wait_for(|stop| *stop).await;
        };
        // The schema is applied in the background, retried until PostgreSQL answers, so the projector starts
        // (not ready) during an outage and recovers by itself; consuming starts once the schema is there.
        let consuming = {
            let (pool, state, retry_max, projector) =
                (self.postgres.clone(), self.migrations.clone(), self.migration_retry_max, self.projector);
            let stop_consuming = wait_for_stop(stopped.clone());
            let stop_on_failure = std::sync::Arc::clone(&stop);
            tokio::spawn(async move {
                let mut stop_consuming = std::pin::pin!(stop_consuming);
                let consumed = tokio::select! {
                    () = migrations::apply_with_retry(pool, state, retry_max) => projector.run(stop_consuming).await,
                    () = &mut stop_consuming => Ok(()),
                };
                if let Err(error) = &consumed {
                    tracing::error!(error = format!("{error:#}"), "consumer failed, stopping");
                    let _receivers_may_be_gone = stop_on_failure.send(true);
                }
                consumed
            })
        };
        let serving = self.http.run_until_stopped(wait_for_stop(stopped.clone()));
        let relay = async move {
            tokio::select! {
                () = shutdown => {}
                () = wait_for_stop(stopped) => {}
            }
            let _receivers_may_be_gone = stop.send(true);
        };
        let (served, ()) = tokio::join!(serving, relay);
        let consumed = consuming.await.map_err(|error| anyhow::anyhow!("consumer task: {error}"))?;
        self.postgres.close().await;
        served.and(consumed)
    }
}
