//! Every way a request can fail, each with its status and machine-readable code (docs/api.md lists them).

use std::time::Duration;

use crate::ops::error_response;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// A malformed query parameter or path segment.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// A search query that does not parse; `position` is the character where the mistake is.
    #[error("{message}")]
    InvalidQuery { message: String, position: usize },
    /// JSON of the wrong shape: unknown or missing fields, wrong types, invalid ids.
    #[error("{0}")]
    InvalidRequest(String),
    /// A well-formed request that breaks a rule (too long, too many, empty message…).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// A file (an upload) larger than the app allows.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A file type the app does not allow.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    RateLimited { message: String, retry_after: Duration },
    /// Our own bug (an event that fails its own schema): not worth retrying.
    #[error("{0}")]
    Internal(String),
    /// A dependency failed or is too slow; the client may retry (sends stay idempotent).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String, retry_after: Duration },
}

impl ApiError {
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable { code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden { code, message: message.into() }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unavailable { code, message: message.into(), retry_after: Duration::from_secs(1) }
    }

    /// Object storage (S3) failed or is too slow.
    pub fn storage(error: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %error, "object storage unavailable");
        Self::unavailable("storage_unavailable", "object storage is unavailable; retry shortly")
    }

    pub fn database(error: &sqlx::Error) -> Self {
        tracing::warn!(error = %error, "read model unavailable");
        Self::unavailable("database_unavailable", "the read model is unavailable; retry shortly")
    }

    /// A refusal the read model gave, which may only mean it has not caught up with the caller's own
    /// earlier writes (see `commands::consistent`).
    pub fn may_reflect_lag(&self) -> bool {
        matches!(
            self.code(),
            "channel_not_found"
                | "message_not_found"
                | "member_not_found"
                | "not_a_member"
                | "insufficient_role"
                | "not_the_author"
                | "already_a_member"
                | "message_deleted"
                | "role_unchanged"
                | "invalid_parent"
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::BadRequest { .. } | Self::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidRequest(_) | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BodyTooLarge { .. } | Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidQuery { .. } => "invalid_query",
            Self::InvalidRequest(_) => "invalid_request",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::PayloadTooLarge(_) => "file_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_type",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal_error",
            Self::BadRequest { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unavailable { code, .. } => code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::RateLimited { retry_after, .. } | Self::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response = match &self {
            // The one error with a field beyond code and message: where in the query the mistake is.
            Self::InvalidQuery { message, position } => {
                let body = serde_json::json!({
                    "error": { "code": self.code(), "message": message, "position": position }
                });
                (self.status(), axum::Json(body)).into_response()
            }
            _ => error_response(self.status(), self.code(), self.to_string()),
        };
        if let Some(retry_after) = retry_after {
            // Whole seconds, rounded up: a client waiting this long finds a token.
            let seconds = retry_after.as_millis().div_ceil(1000).max(1);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if matches!(self, Self::Unauthenticated(_)) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
