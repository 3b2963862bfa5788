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
use chatsdk_search::consumer::SearchProjector;
use sqlx::PgPool;

pub use config::Config;

/// The projector, built (ops listener bound, clients created) and ready to run.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
    postgres: PgPool,
    migrations: migrations::MigrationState,
    migration_retry_max: Duration,
    /// The read-model consumer (`[consumer] enabled`).
    projector: Option<consumer::Projector>,
    /// The search consumer (`[search] enabled`).
    search: Option<SearchProjector>,
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
        let mut probes = vec![config.kafka.readiness_probe(Self::NAME)?, config.registry.readiness_probe()?];
        if config.consumer.enabled {
            probes.push(config.postgres.readiness_probe(postgres.clone()));
            probes.push(migrations.readiness_probe());
        }
        let mut readiness = Readiness::new(probes);
        let decoder = EventDecoder::new(&RegistrySettings::new(&config.registry.url, config.registry.timeout()))?;
        let projector = if config.consumer.enabled {
            let projector =
                consumer::Projector::new(config.consumer.clone(), &config.kafka, postgres.clone(), decoder.clone())?;
            let lag = projector.lag_board();
            readiness = readiness.with_report("lag", move || serde_json::json!(lag.snapshot()));
            Some(projector)
        } else {
            None
        };
        let search = config.search.enabled.then(|| {
            SearchProjector::new(
                config.search.indexer.clone(),
                &config.search.index_dir,
                &config.consumer.topic,
                &config.kafka,
                decoder,
            )
        });
        if let Some(search) = &search {
            let progress = search.progress();
            readiness =
                readiness.with_report("search", move || serde_json::json!({ "committed": progress.snapshot() }));
        }
        let http = HttpService::bind(&config.http, Router::new(), readiness).await?;
        Ok(Self {
            http,
            postgres,
            migrations,
            migration_retry_max: Duration::from_millis(config.migration_retry_max_ms),
            projector,
            search,
        })
    }

    fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // One shutdown signal, seen by the HTTP server and the consumers.
        // A failing consumer stops the whole process too: a projector that serves /healthz but no longer
        // consumes must not look alive.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop = std::sync::Arc::new(stop);
        let wait_for_stop = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            // A closed channel also means stop.
            let _closed = stopped.wait_for(|stop| *stop).await;
        };
        let stopping_on_failure =
            |what: &'static str, work: std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>| {
                let stop_on_failure = std::sync::Arc::clone(&stop);
                tokio::spawn(async move {
                    let outcome = work.await;
                    if let Err(error) = &outcome {
                        tracing::error!(error = format!("{error:#}"), consumer = what, "consumer failed, stopping");
                        let _receivers_may_be_gone = stop_on_failure.send(true);
                    }
                    outcome
                })
            };
        let mut consumers = Vec::new();
        // The schema is applied in the background, retried until PostgreSQL answers, so the projector starts
        // (not ready) during an outage and recovers by itself; consuming starts once the schema is there.
        if let Some(projector) = self.projector {
            let (pool, state, retry_max) = (self.postgres.clone(), self.migrations.clone(), self.migration_retry_max);
            let stop_consuming = wait_for_stop(stopped.clone());
            consumers.push(stopping_on_failure(
                "read models",
                Box::pin(async move {
                    let mut stop_consuming = std::pin::pin!(stop_consuming);
                    tokio::select! {
                        () = migrations::apply_with_retry(pool, state, retry_max) => projector.run(stop_consuming).await,
                        () = &mut stop_consuming => Ok(()),
                    }
                }),
            ));
        }
        if let Some(search) = self.search {
            let stop_consuming = wait_for_stop(stopped.clone());
            consumers.push(stopping_on_failure(
                "search",
                Box::pin(async move { search.run(stop_consuming, None).await.map(|_offsets| ()) }),
            ));
        }
        let serving = self.http.run_until_stopped(wait_for_stop(stopped.clone()));
        let relay = async move {
            tokio::select! {
                () = shutdown => {}
                () = wait_for_stop(stopped) => {}
            }
            let _receivers_may_be_gone = stop.send(true);
        };
        let (served, ()) = tokio::join!(serving, relay);
        let mut consumed = Ok(());
        for consumer in consumers {
            let outcome = consumer.await.map_err(|error| anyhow::anyhow!("consumer task: {error}"))?;
            consumed = consumed.and(outcome);
        }
        self.postgres.close().await;
        served.and(consumed)
    }
}
