//! ChatSDK command API: authenticates, validates and appends channel-partitioned events to Kafka.
//! It never writes to PostgreSQL on the request path (DESIGN.md); the only write is the admin command that
//! creates an app.

pub mod admin;
pub mod apps;
pub mod commands;
pub mod config;
pub mod derive;
pub mod eventlog;
pub mod limits;
pub mod readmodel;
pub mod request;
pub mod uploads;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chatsdk_platform::config::{ConfigError, LogConfig};
use chatsdk_platform::ops::Readiness;
use chatsdk_platform::service::{HttpService, Service};
use chatsdk_schemas::codec::{EventEncoder, RegistrySettings};
use sqlx::PgPool;

pub use chatsdk_platform::api::{auth, cache, error};
pub use config::Config;

use crate::eventlog::{EventLog, RecentCreates, RecentSends};
use crate::limits::RateLimiter;
use crate::readmodel::ReadModel;
use chatsdk_platform::api::apps::AppDirectory;
use chatsdk_platform::api::auth::Authenticates;

/// The OpenAPI document of the HTTP API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Sends with a `client_msg_id` remembered per node for instant retries.
const RECENT_SENDS: usize = 100_000;
/// Channel creations remembered per node, so a repeated create within the projector's lag is recognised.
const RECENT_CREATES: usize = 10_000;

/// Shared by every request.
#[derive(Debug)]
pub struct AppState {
    pub apps: AppDirectory,
    pub clock_skew_secs: i64,
    pub read: ReadModel,
    pub log: EventLog,
    pub limits: RateLimiter,
    pub recent: Arc<RecentSends>,
    pub creates: Arc<RecentCreates>,
    pub admin: admin::Admin,
    pub uploads: uploads::Uploads,
}

impl Authenticates for AppState {
    fn apps(&self) -> &AppDirectory {
        &self.apps
    }

    fn clock_skew_secs(&self) -> i64 {
        self.clock_skew_secs
    }
}

/// The command API, built (listener bound, clients created) and ready to serve.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
    encoder: Arc<EventEncoder>,
    uploads: uploads::Uploads,
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
        let postgres = config.postgres.point_lookup_pool()?;
        let s3 = config.s3.client()?;
        let readiness = Readiness::new(vec![
            config.kafka.readiness_probe(Self::NAME)?,
            config.postgres.readiness_probe(postgres.clone()),
            config.registry.readiness_probe()?,
            config.s3.readiness_probe(s3.clone()),
        ]);
        let registry = RegistrySettings::new(&config.registry.url, Duration::from_millis(config.registry.timeout_ms));
        let encoder = Arc::new(EventEncoder::new(registry, &config.events.topic)?);
        let uploads = uploads::Uploads::new(s3, &config.s3.bucket, config.uploads.clone());
        let state = Arc::new(state(&config, postgres, Arc::clone(&encoder), uploads.clone())?);
        let http = HttpService::bind(&config.http, routes(state), readiness).await?;
        Ok(Self { http, encoder, uploads })
    }

    fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // Registering (or looking up) every schema up front keeps the registry off the first sends' path;
        // while the registry is down, sends answer 503 and this keeps retrying.
        let registering = tokio::spawn(register_schemas(self.encoder));
        let sweeping = tokio::spawn(uploads::sweep(self.uploads));
        let outcome = self.http.run_until_stopped(shutdown).await;
        registering.abort();
        sweeping.abort();
        outcome
    }
}

fn state(
    config: &Config,
    postgres: PgPool,
    encoder: Arc<EventEncoder>,
    uploads: uploads::Uploads,
) -> anyhow::Result<AppState> {
    let producer = config.kafka.producer(Application::NAME)?;
    Ok(AppState {
        apps: AppDirectory::new(postgres.clone(), Duration::from_millis(config.auth.app_cache_ttl_ms)),
        clock_skew_secs: i64::try_from(config.auth.clock_skew_secs).unwrap_or(i64::MAX),
        read: ReadModel::new(
            postgres.clone(),
            config.authz.projector_consumer.clone(),
            config.events.topic.clone(),
            Duration::from_millis(config.authz.cache_ttl_ms),
            config.authz.cache_capacity,
            Duration::from_millis(config.authz.min_position_wait_ms),
        ),
        log: EventLog::new(
            producer,
            encoder,
            config.events.topic.clone(),
            Duration::from_millis(config.kafka.delivery_timeout_ms),
        ),
        limits: RateLimiter::new(&config.limits),
        recent: RecentSends::new(RECENT_SENDS),
        creates: RecentCreates::new(RECENT_CREATES),
        admin: admin::Admin::new(config.auth.admin_token.clone(), postgres),
        uploads,
    })
}

async fn register_schemas(encoder: Arc<EventEncoder>) {
    let mut pause = Duration::from_millis(200);
    loop {
        match encoder.register_all().await {
            Ok(registrations) => {
                tracing::info!(schemas = registrations.len(), "event schemas registered");
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, "registering schemas failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Every route of the API (the OpenAPI document lists the same ones; a test checks it).
pub fn routes(state: Arc<AppState>) -> Router {
    use commands::*;
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/admin/apps", post(admin::create_app))
        .route("/v1/channels", post(create_channel))
        .route("/v1/uploads", post(uploads::create_upload))
        .route("/v1/uploads/{upload_id}/complete", post(uploads::complete_upload))
        .route("/v1/uploads/{upload_id}", axum::routing::delete(uploads::abort_upload))
        .route("/v1/channels/{channel_id}", axum::routing::patch(update_channel))
        .route("/v1/channels/{channel_id}/archive", post(archive_channel))
        .route("/v1/channels/{channel_id}/leave", post(leave_channel))
        .route("/v1/channels/{channel_id}/read", post(mark_read))
        .route("/v1/channels/{channel_id}/members", post(add_member))
        .route("/v1/channels/{channel_id}/members/{user_id}", axum::routing::patch(change_role).delete(remove_member))
        .route("/v1/channels/{channel_id}/messages", post(send_message))
        .route(
            "/v1/channels/{channel_id}/messages/{message_id}",
            axum::routing::patch(edit_message).delete(delete_message),
        )
        .route("/v1/channels/{channel_id}/messages/{message_id}/reactions", post(add_reaction))
        .route(
            "/v1/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
            axum::routing::delete(remove_reaction),
        )
        .route("/v1/channels/{channel_id}/messages/{message_id}/pin", post(pin_message).delete(unpin_message))
        .with_state(state)
}
