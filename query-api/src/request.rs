//! Reading a query request: the caller, `min_position` (waited for before the handler runs), and query
//! parameters with precise error codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chatsdk_client::SessionPosition;
use chatsdk_platform::api::auth::Actor;
use chatsdk_platform::api::error::ApiError;

use crate::AppState;

/// A read: the authenticated caller, after the projector has passed the request's `min_position`.
#[derive(Debug, Clone)]
pub struct Read {
    pub actor: Actor,
    pub params: Params,
}

impl FromRequestParts<Arc<AppState>> for Read {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let params = Params::parse(parts.uri.query())?;
        if let Some(min) = params.get("min_position") {
            let min = min
                .parse::<SessionPosition>()
                .map_err(|error| ApiError::bad_request("invalid_position", error.to_string()))?;
            wait_for_projection(state, &min).await?;
        }
        Ok(Self { actor, params })
    }
}

/// Waits (bounded) until the read model reflects `min`; past the bound, a 503 the client may retry.
pub async fn wait_for_projection(state: &AppState, min: &SessionPosition) -> Result<(), ApiError> {
    if state.progress.wait_for(min, state.max_wait).await? {
        Ok(())
    } else {
        Err(ApiError::unavailable(
            "position_not_reached",
            "the read model has not reached min_position yet; retry shortly",
        ))
    }
}

/// Query parameters, percent-decoded; a repeated name keeps its last value.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let query = query.unwrap_or_default();
        if query.len() > 8_192 {
            return Err(ApiError::bad_request("invalid_parameter", "the query string is too long"));
        }
        Ok(Self(form_urlencoded::parse(query.as_bytes()).into_owned().collect()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }

    /// A parsed parameter, `None` when absent; a value that does not parse is a 400 naming it.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.get(name).map(|value| value.parse::<T>().map_err(|_| invalid(name, "has an invalid value"))).transpose()
    }

    /// `limit`, between 1 and `max`, `default` when absent.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        let limit = self.parsed::<i64>("limit")?.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(invalid("limit", &format!("must be between 1 and {max}")));
        }
        Ok(limit)
    }
}

pub fn invalid(name: &str, problem: &str) -> ApiError {
    ApiError::bad_request("invalid_parameter", format!("{name} {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_checked() {
        let params = Params::parse(Some("limit=5&type=group&q=a%20b&empty=")).unwrap();
        assert_eq!(params.get("q"), Some("a b"));
        assert_eq!(params.get("empty"), None);
        assert_eq!(params.limit(50, 200).unwrap(), 5);
        assert_eq!(Params::default().limit(50, 200).unwrap(), 50);
        let too_many = Params::parse(Some("limit=201")).unwrap().limit(50, 200);
        assert_eq!(too_many.err().map(|error| error.code()), Some("invalid_parameter"));
        let garbage = Params::parse(Some("limit=ten")).unwrap().limit(50, 200);
        assert_eq!(garbage.err().map(|error| error.code()), Some("invalid_parameter"));
    }
}
