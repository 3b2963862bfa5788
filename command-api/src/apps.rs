//! Tenants: creating an app (admin only); finding one by key is `chatsdk_platform::api::apps`.

use chatsdk_client::api::AppCredentials;
use chatsdk_platform::postgres::MIGRATOR;
use chatsdk_schemas::ids::AppId;
use sqlx::PgPool;

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
