//! Reading a command request: the caller, `min_position`, path ids, and a bounded JSON body that maps every
//! failure to a precise error code.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use chatsdk_client::SessionPosition;
use chatsdk_client::api::limits::MAX_BODY_BYTES;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::auth::{Actor, WRITE_SCOPE};
use crate::error::ApiError;

/// Everything a command needs from the request besides its body and path.
#[derive(Debug, Clone)]
pub struct Command {
    pub actor: Actor,
    pub min_position: Option<SessionPosition>,
    /// `?hard=true` on a message delete.
    pub hard: bool,
    /// W3C trace context, passed on as a Kafka header.
    pub traceparent: Option<String>,
}

impl FromRequestParts<Arc<AppState>> for Command {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let actor = Actor::from_request_parts(parts, state).await?;
        actor.require_scope(WRITE_SCOPE)?;
        let mut command = Command { actor, min_position: None, hard: false, traceparent: None };
        for pair in parts.uri.query().unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "min_position" => {
                    let position = value
                        .parse::<SessionPosition>()
                        .map_err(|error| ApiError::bad_request("invalid_position", error.to_string()))?;
                    command.min_position = Some(position);
                }
                "hard" => {
                    command.hard = match value {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        _ => return Err(ApiError::bad_request("invalid_parameter", "hard must be true or false")),
                    };
                }
                _ => {}
            }
        }
        command.traceparent = parts
            .headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .filter(|value| value.len() <= 128)
            .map(str::to_owned);
        Ok(command)
    }
}

/// A JSON body of at most 64 KiB. Not JSON → 400 `malformed_json`; JSON of the wrong shape (unknown field,
/// missing field, wrong type, invalid id) → 422 `invalid_request`; too large → 413 `body_too_large`. An empty
/// body reads as `{}` (commands whose fields are all optional).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let too_large = ApiError::BodyTooLarge { limit: MAX_BODY_BYTES };
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
            return Err(too_large);
        }
        let body: Body = request.into_body();
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| too_large)?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(error.to_string()),
        _ => ApiError::MalformedJson(format!("the body is not valid JSON: {error}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatsdk_client::api::SendMessage;

    #[test]
    fn json_errors_are_told_apart() {
        assert!(matches!(parse_json::<SendMessage>(b"{\"text\": "), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_json::<SendMessage>(b"not json"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_json::<SendMessage>(b"{\"txt\": \"hi\"}"), Err(ApiError::InvalidRequest(_))));
        assert!(matches!(parse_json::<SendMessage>(b"{\"text\": 5}"), Err(ApiError::InvalidRequest(_))));
        assert!(matches!(
            parse_json::<SendMessage>(b"{\"text\": \"hi\", \"mentions\": [\"not valid\"]}"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(parse_json::<SendMessage>(b"  ").is_ok(), "an empty body reads as {{}}");
    }
}
