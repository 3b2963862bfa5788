//! ChatSDK query API: reads, history, unread counts, incremental sync and realtime WebSocket delivery, on
//! stateless nodes (DESIGN.md). Any node serves any client: reads come from the projector's read models,
//! realtime from each node's own tail of the whole log.

pub mod config;
pub mod files;
pub mod hub;
pub mod presence;
pub mod reads;
pub mod realtime;
pub mod request;
pub mod search;
pub mod sync;
pub mod tail;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chatsdk_platform::api::apps::AppDirectory;
use chatsdk_platform::api::auth::Authenticates;
use chatsdk_platform::api::progress::Progress;
use chatsdk_platform::config::{ConfigError, LogConfig};
use chatsdk_platform::ops::Readiness;
use chatsdk_platform::service::{HttpService, Service};
use chatsdk_schemas::{EventDecoder, RegistrySettings};
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;

pub use config::Config;

use crate::config::RealtimeConfig;
use crate::hub::Hub;

/// The OpenAPI document of both HTTP APIs (operations carry `x-service`), served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Shared by every request.
#[derive(Debug)]
pub struct AppState {
    pub apps: AppDirectory,
    pub clock_skew_secs: i64,
    pub pool: PgPool,
    pub progress: Arc<Progress>,
    /// Longest wait for `min_position`.
    pub max_wait: Duration,
    pub topic: String,
    pub ephemeral_topic: String,
    pub projector_consumer: String,
    pub hub: Arc<Hub>,
    pub presence: Arc<presence::Presence>,
    /// This process, in presence records.
    pub node_id: String,
    pub realtime: RealtimeConfig,
    /// Publishes typing indicators.
    pub producer: Publisher,
    /// This node's view of the search index.
    pub search: Arc<search::SearchIndex>,
    /// Largest search page.
    pub search_max_limit: usize,
    /// Where downloads redirect to.
    pub files: files::Files,
}

/// The Kafka producer for ephemeral events.
pub struct Publisher(pub FutureProducer);

impl std::fmt::Debug for Publisher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Publisher")
    }
}

impl Authenticates for AppState {
    fn apps(&self) -> &AppDirectory {
        &self.apps
    }

    fn clock_skew_secs(&self) -> i64 {
        self.clock_skew_secs
    }
}

/// The query API, built (listener bound, clients created) and ready to serve.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
    config: Config,
    state: Arc<AppState>,
}

impl Service for Application {
    const NAME: &'static str = "query-api";
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
        let hub = Arc::new(Hub::new(config.realtime.buffer_per_partition));
        let search = Arc::new(search::SearchIndex::new(&config.search));
        let mut probes = vec![
            config.kafka.readiness_probe(Self::NAME)?,
            config.postgres.readiness_probe(postgres.clone()),
            config.registry.readiness_probe()?,
            config.s3.readiness_probe(s3.clone()),
            realtime_probe(Arc::clone(&hub)),
        ];
        // A node with its own replica is ready once the replica caught up with the log; a node reading the
        // projector's index only reports it (without it, reads and sockets still work).
        if config.search.embedded {
            probes.push(search::embedded_probe(Arc::clone(&search)));
        }
        let search_report = Arc::clone(&search);
        let readiness = Readiness::new(probes).with_report("search", move || search_report.report());
        let state = Arc::new(AppState {
            apps: AppDirectory::new(postgres.clone(), Duration::from_millis(config.auth.app_cache_ttl_ms)),
            clock_skew_secs: i64::try_from(config.auth.clock_skew_secs).unwrap_or(i64::MAX),
            progress: Progress::new(
                postgres.clone(),
                config.reads.projector_consumer.clone(),
                config.events.topic.clone(),
            ),
            pool: postgres,
            max_wait: Duration::from_millis(config.reads.min_position_wait_ms),
            topic: config.events.topic.clone(),
            ephemeral_topic: config.events.ephemeral_topic.clone(),
            projector_consumer: config.reads.projector_consumer.clone(),
            hub,
            presence: Arc::default(),
            node_id: uuid::Uuid::new_v4().simple().to_string(),
            realtime: config.realtime.clone(),
            producer: Publisher(config.kafka.producer(Self::NAME)?),
            search,
            search_max_limit: config.search.max_limit,
            files: files::Files {
                client: s3,
                bucket: config.s3.bucket.clone(),
                url_ttl: Duration::from_secs(config.files.url_ttl_secs),
            },
        });
        let http = HttpService::bind(&config.http, routes(Arc::clone(&state)), readiness).await?;
        Ok(Self { http, config, state })
    }

    fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let registry = RegistrySettings::new(&self.config.registry.url, self.config.registry.timeout());
        let decoder = EventDecoder::new(&registry)?;
        let indexing = search::embedded_consumer(&self.config, &self.state.search, decoder.clone());
        let hub = Arc::clone(&self.state.hub);
        let tasks = [
            tokio::spawn(tail::run(
                self.config.kafka.clone(),
                self.config.events.topic.clone(),
                decoder,
                Arc::clone(&hub),
                self.config.realtime.buffer_per_partition,
            )),
            tokio::spawn(tail::run_ephemeral(
                self.config.kafka.clone(),
                self.config.events.ephemeral_topic.clone(),
                Arc::clone(&hub),
                Arc::clone(&self.state.presence),
            )),
            tokio::spawn(realtime::presence_loop(Arc::clone(&self.state))),
            tokio::spawn(heads(hub, Duration::from_millis(self.config.realtime.heartbeat_interval_ms))),
            tokio::spawn(search::follow(
                Arc::clone(&self.state.search),
                Duration::from_millis(self.config.search.refresh_interval_ms),
            )),
        ];
        let outcome = match indexing {
            None => self.http.run_until_stopped(shutdown).await,
            Some(consumer) => serve_while_indexing(self.http, consumer, shutdown).await,
        };
        for task in tasks {
            task.abort();
        }
        outcome
    }
}

/// Serves until `shutdown` while the embedded search consumer runs; the consumer stops (committing what it
/// applied) with the server, and a consumer that fails stops the node, as a failing projector would.
async fn serve_while_indexing(
    http: HttpService,
    consumer: chatsdk_search::consumer::SearchProjector,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_indexing, indexing_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut indexing = tokio::spawn(consumer.run(
        async move {
            let _stopped_or_dropped = indexing_stopped.await;
        },
        None,
    ));
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = http.run_until_stopped(async move {
        tokio::select! {
            () = shutdown => {}
            _stopped_or_dropped = serving_stopped => {}
        }
    });
    let mut serving = std::pin::pin!(serving);
    let indexed = |joined: Result<anyhow::Result<_>, tokio::task::JoinError>| {
        joined.map_err(|error| anyhow::anyhow!("search consumer task: {error}")).and_then(|outcome| outcome.map(|_| ()))
    };
    tokio::select! {
        served = &mut serving => {
            let _consumer_may_be_done = stop_indexing.send(());
            served.and(indexed(indexing.await))
        }
        joined = &mut indexing => {
            let failure = indexed(joined).err().unwrap_or_else(|| anyhow::anyhow!("the search consumer stopped"));
            tracing::error!(error = format!("{failure:#}"), "the embedded search consumer stopped, stopping the node");
            let _server_may_be_gone = stop_serving.send(());
            serving.await.and(Err(failure))
        }
    }
}

/// Ready for sockets: both tails assigned and the event tail caught up with the log's end at start, so a
/// load balancer sends no client to a node that would answer `503 realtime_unavailable`.
fn realtime_probe(hub: Arc<Hub>) -> chatsdk_platform::ops::Probe {
    chatsdk_platform::ops::Probe::new("realtime", Duration::from_millis(100), move || {
        let ready = hub.is_ready();
        async move {
            anyhow::ensure!(ready, "the log tail is catching up");
            Ok(())
        }
    })
}

/// Hands every connection the node's head now and then, so idle sockets get fresh resume tokens.
async fn heads(hub: Arc<Hub>, every: Duration) {
    let mut ticks = tokio::time::interval(every / 2);
    loop {
        ticks.tick().await;
        hub.broadcast_head();
    }
}

async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Every route of the API.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/channels", get(reads::my_channels))
        .route("/v1/search", get(search::search))
        .route("/v1/files/{upload_id}", get(files::download))
        .route("/v1/channels/{channel_id}", get(reads::channel))
        .route("/v1/channels/{channel_id}/members", get(reads::members))
        .route("/v1/channels/{channel_id}/messages", get(reads::history))
        .route("/v1/channels/{channel_id}/messages/{message_id}", get(reads::message))
        .route("/v1/channels/{channel_id}/messages/{message_id}/replies", get(reads::replies))
        .route(
            "/v1/channels/{channel_id}/typing",
            axum::routing::post(realtime::typing_start).delete(realtime::typing_stop),
        )
        .route("/v1/sync", get(sync::sync))
        .route("/v1/ws", get(realtime::ws))
        .route("/v1/openapi.json", get(openapi))
        .with_state(state)
}
