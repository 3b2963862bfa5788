//! The admin endpoint that creates apps, guarded by the admin token (`auth.admin_token`; empty disables it).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use chatsdk_client::api::{AppCredentials, CreateApp};
use chatsdk_platform::config::Secret;
use sqlx::PgPool;

use crate::AppState;
use crate::apps::{CreateAppError, create_app as create};
use crate::auth::constant_time_eq;
use crate::error::ApiError;
use crate::request::JsonBody;

#[derive(Debug)]
pub struct Admin {
    token: Secret,
    pool: PgPool,
}

impl Admin {
    pub fn new(token: Secret, pool: PgPool) -> Self {
        Self { token, pool }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.token.expose().is_empty() {
            return Err(ApiError::forbidden("admin_disabled", "no admin token is configured (auth.admin_token)"));
        }
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| crate::auth::strip_scheme(value, "Bearer"))
            .ok_or_else(|| ApiError::Unauthenticated("missing admin token (Authorization: Bearer …)".to_owned()))?;
        if !constant_time_eq(self.token.expose().as_bytes(), given.as_bytes()) {
            return Err(ApiError::Unauthenticated("wrong admin token".to_owned()));
        }
        Ok(())
    }
}

pub async fn create_app(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateApp>,
) -> Result<(StatusCode, Json<AppCredentials>), ApiError> {
    state.admin.authorize(&headers)?;
    match create(&state.admin.pool, &request.app_id).await {
        Ok(credentials) => Ok((StatusCode::CREATED, Json(credentials))),
        Err(CreateAppError::Exists(app)) => Err(ApiError::conflict("app_exists", format!("app {app} exists already"))),
        Err(error) => {
            tracing::warn!(error = %error, "creating an app failed");
            Err(ApiError::unavailable("database_unavailable", "the database is unavailable; retry shortly"))
        }
    }
}
