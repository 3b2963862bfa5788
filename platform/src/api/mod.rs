//! What the command API and the query API share on the request path.

pub mod apps;
pub mod auth;
pub mod cache;
pub mod error;
pub mod parse;
pub mod progress;
