//! Who is calling: an end user (app key + HS256 JWT) or the app's backend (key + secret, the server actor).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatsdk_client::token::{self, TokenError};
use chatsdk_schemas::ids::{AppId, UserId};

use crate::api::apps::AppDirectory;
use crate::api::error::ApiError;

/// The id events carry as `actor_id` when the app's backend acts. Reserved: no user token may claim it
/// and no user can be added under it.
pub const SERVER_ACTOR: &str = "_server";

/// The scope a token that lists scopes needs for commands.
pub const WRITE_SCOPE: &str = "chat:write";

/// An authenticated caller, scoped to one app.
#[derive(Debug, Clone)]
pub struct Actor {
    pub app_id: AppId,
    pub user_id: UserId,
    /// The app's backend: every right in every channel of its app, member or not.
    pub is_server: bool,
    scopes: Option<Vec<String>>,
}

impl Actor {
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        let allowed = self.is_server || self.scopes.as_ref().is_none_or(|scopes| scopes.iter().any(|s| s == scope));
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden("missing_scope", format!("the token lacks the {scope} scope")))
        }
    }

    /// The app's backend reading on behalf of `user`: that user's access, none of the backend's. `None` for a
    /// caller that is not the backend (a user can only read as themselves).
    pub fn on_behalf_of(&self, user: UserId) -> Option<Actor> {
        self.is_server.then(|| Actor { app_id: self.app_id.clone(), user_id: user, is_server: false, scopes: None })
    }
}

/// A service state that can authenticate callers.
pub trait Authenticates {
    fn apps(&self) -> &AppDirectory;
    /// Allowed clock difference for a token's `exp` and `nbf`.
    fn clock_skew_secs(&self) -> i64;
}

impl<S: Authenticates + Send + Sync> FromRequestParts<Arc<S>> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, ApiError> {
        authenticate(state.apps(), &parts.headers, state.clock_skew_secs()).await
    }
}

pub async fn authenticate(apps: &AppDirectory, headers: &HeaderMap, skew_secs: i64) -> Result<Actor, ApiError> {
    let unauthenticated = |message: &str| ApiError::Unauthenticated(message.to_owned());
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| unauthenticated("missing Authorization header (Bearer <user token> or Basic <key:secret>)"))?;
    if let Some(credentials) = strip_scheme(authorization, "Basic") {
        let decoded =
            STANDARD.decode(credentials.trim()).map_err(|_| unauthenticated("malformed Basic credentials"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| unauthenticated("malformed Basic credentials"))?;
        let (api_key, api_secret) =
            decoded.split_once(':').ok_or_else(|| unauthenticated("malformed Basic credentials"))?;
        let app = apps.by_key(api_key).await?.ok_or_else(|| unauthenticated("unknown api key"))?;
        if !constant_time_eq(app.api_secret.as_bytes(), api_secret.as_bytes()) {
            return Err(unauthenticated("wrong api secret"));
        }
        let user_id = UserId::try_from(SERVER_ACTOR.to_owned()).map_err(|_| unauthenticated("server actor"))?;
        return Ok(Actor { app_id: app.app_id, user_id, is_server: true, scopes: None });
    }
    let bearer = strip_scheme(authorization, "Bearer")
        .ok_or_else(|| unauthenticated("the Authorization scheme must be Bearer or Basic"))?;
    let api_key = headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| unauthenticated("missing X-Api-Key header (the app's public key)"))?;
    let app = apps.by_key(api_key).await?.ok_or_else(|| unauthenticated("unknown api key"))?;
    let now = chrono::Utc::now().timestamp();
    let verified = token::verify(&app.api_secret, bearer.trim(), now, skew_secs).map_err(|error| match error {
        TokenError::Expired => ApiError::Unauthenticated("the token has expired".to_owned()),
        other => ApiError::Unauthenticated(format!("invalid token: {other}")),
    })?;
    if verified.user_id.as_str() == SERVER_ACTOR {
        return Err(unauthenticated("the sub _server is reserved for the app's backend"));
    }
    Ok(Actor { app_id: app.app_id, user_id: verified.user_id, is_server: false, scopes: verified.scopes })
}

/// The credentials after an authentication scheme, which is case-insensitive (RFC 7235).
pub fn strip_scheme<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, credentials) = authorization.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(credentials)
}

/// Compares secrets without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let length_differs = u8::from(expected.len() != given.len());
    let difference =
        expected.iter().zip(given.iter().chain(std::iter::repeat(&0))).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (difference | length_differs) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(strip_scheme("Bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("BASIC xyz", "Basic"), Some("xyz"));
        assert_eq!(strip_scheme("Bearerabc", "Bearer"), None);
        assert_eq!(strip_scheme("Basic xyz", "Bearer"), None);
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"secret", b""));
    }
}
