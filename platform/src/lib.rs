//! What the three ChatSDK services truly share.
//!
//! - [`api`]: what both HTTP APIs share: the error type, authentication, the app directory, caches and
//!   waiting for the projector (`min_position`).
//! - [`config`]: typed configuration, layered defaults → TOML file → `CHATSDK_*` environment.
//! - [`telemetry`]: JSON logs through `tracing`.
//! - [`metrics`]: the Prometheus recorder and every metric name.
//! - [`ops`]: `/healthz`, `/readyz` (dependency probes), `/metrics`, the JSON error body.
//! - [`server`]: serving a router with graceful, bounded draining on shutdown.
//! - [`service`]: the `main` every service binary shares, and its bound HTTP listener.
//! - [`kafka`], [`postgres`], [`s3`], [`registry`]: client setup and readiness probes.

pub mod api;
pub mod config;
pub mod kafka;
pub mod metrics;
pub mod ops;
pub mod postgres;
pub mod registry;
pub mod s3;
pub mod server;
pub mod service;
pub mod telemetry;
