//! Apps by their public key, cached: how both APIs find the tenant of a request.

use std::sync::Arc;
use std::time::Duration;

use chatsdk_schemas::ids::AppId;
use sqlx::PgPool;

use crate::api::cache::TtlCache;
use crate::api::error::ApiError;

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
