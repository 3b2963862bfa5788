//! Tenants: creating an app (admin only) and finding an app by its public key, cached.

use std::sync::Arc;
use std::time::Duration;

use chatsdk_client::api::AppCredentials;
use chatsdk_platform::postgres::MIGRATOR;
use chatsdk_schemas::ids::AppId;
use sqlx::PgPool;

use crate::cache::TtlCache;
use crate::error::ApiError;

/// An app as the request path needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: AppId,
    pub api_secret: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("App").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAppError {
    #[error("app {0} exists already")]
    Exists(AppId),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// Creates an app with a fresh key and secret. The `apps` table comes with the migrations the projector
/// applies; `command-api admin create-app` applies them first (see [`apply_migrations`]).
pub async fn create_app(pool: &PgPool, app_id: &AppId) -> Result<AppCredentials, CreateAppError> {
    let api_key = format!("key_{}", uuid::Uuid::new_v4().simple());
    // Two v4 UUIDs: 244 bits from the operating system's generator.
    let api_secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let inserted = sqlx::query!(
        "INSERT INTO apps (app_id, api_key, api_secret) VALUES ($1, $2, $3) ON CONFLICT (app_id) DO NOTHING",
        app_id.as_str(),
        api_key,
        api_secret,
    )
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(CreateAppError::Exists(app_id.clone()));
    }
    Ok(AppCredentials { app_id: app_id.clone(), api_key, api_secret })
}

/// Applies pending migrations (idempotent, locked), so the first app can be created before any projector
/// ran. Only the CLI does this: the endpoint must not need DDL rights, nor fail when a newer projector has
/// applied migrations this binary does not know.
pub async fn apply_migrations(pool: &PgPool) -> Result<(), CreateAppError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The secret of an existing app (for minting development tokens).
pub async fn app_secret(pool: &PgPool, app_id: &AppId) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query_scalar!("SELECT api_secret FROM apps WHERE app_id = $1", app_id.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// Apps by public key, cached for `ttl` (a deleted or rotated key stops working within it).
#[derive(Debug, Clone)]
pub struct AppDirectory {
    pool: PgPool,
    /// Public key → the app, if the key exists.
    cache: Arc<TtlCache<String, Option<App>>>,
}

/// Unknown keys are cached too (so a flood of bad keys costs one query per key and TTL), up to this many.
const MAX_CACHED_KEYS: usize = 10_000;

impl AppDirectory {
    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        Self { pool, cache: Arc::new(TtlCache::new(ttl, MAX_CACHED_KEYS)) }
    }

    pub async fn by_key(&self, api_key: &str) -> Result<Option<App>, ApiError> {
        if let Some(app) = self.cache.get(api_key) {
            return Ok(app);
        }
        let row = sqlx::query!("SELECT app_id, api_secret FROM apps WHERE api_key = $1", api_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| ApiError::database(&error))?;
        let app = row.and_then(|row| {
            let app_id = AppId::try_from(row.app_id).ok()?;
            Some(App { app_id, api_secret: row.api_secret })
        });
        self.cache.put(api_key.to_owned(), app.clone());
        Ok(app)
    }
}
