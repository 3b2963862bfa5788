//! ChatSDK's API contract on the Rust side: request and response bodies ([`api`]), positions and their
//! opaque tokens ([`position`]), the query API's answers ([`views`]), and a typed HTTP [`Client`] with session consistency.

pub mod api;
pub mod client;
pub mod position;
pub mod token;
pub mod views;

pub use client::{Client, ClientError, Credentials, create_app};
pub use position::{Position, SessionPosition};
