//! Parsing what a request names: ids in path segments, and enum values stored as their JSON names.

use crate::api::error::ApiError;

/// Parses an id from a path segment; a bad one is `400 invalid_id` naming `kind`.
pub fn path_id<T: std::str::FromStr>(kind: &str, value: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|error| ApiError::bad_request("invalid_id", format!("{kind} in the path: {error}")))
}

/// An enum from its serde name (as the read models store roles and channel types); `None` if unknown.
pub fn enum_named<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}
