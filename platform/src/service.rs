//! The shape every ChatSDK service binary shares: load config, init logs, build, serve until SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::{ConfigError, HttpConfig, LogConfig, config_path_from_args};
use crate::ops::{self, Readiness};
use crate::{metrics, server, telemetry};

/// Implemented by each service's `Application`, so `main` is one line and tests start the real thing.
pub trait Service: Sized {
    const NAME: &'static str;
    type Config: Send;

    fn load_config(file: Option<&Path>) -> Result<Self::Config, ConfigError>;
    fn log_config(config: &Self::Config) -> &LogConfig;
    fn build(config: Self::Config) -> impl Future<Output = anyhow::Result<Self>> + Send;
    fn local_addr(&self) -> SocketAddr;
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The whole `main` of a service binary. Exit codes: 0 after a clean shutdown, 2 for bad configuration,
/// 1 when the service failed.
pub async fn main<S: Service>() -> ExitCode {
    let config = match S::load_config(config_path_from_args().as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", S::NAME);
            return ExitCode::from(2);
        }
    };
    telemetry::init(S::log_config(&config));
    raise_open_file_limit();
    metrics::describe_service(S::NAME);
    let application = match S::build(config).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(service = S::NAME, address = %application.local_addr(), "listening");
    match application.run_until_stopped(server::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!(service = S::NAME, "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "service failed");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft open-file limit to the hard one: every WebSocket (and pooled connection) is a file, and
/// container runtimes start processes with a soft limit as low as 1,024 (Go's runtime does the same at start).
pub fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(open_files = limit, "open-file limit"),
        Err(error) => tracing::warn!(error = %error, "could not raise the open-file limit"),
    }
}

/// A bound HTTP listener with the service's routes, the ops routes and the standard layers.
#[derive(Debug)]
pub struct HttpService {
    listener: TcpListener,
    router: Router,
    drain: Duration,
}

impl HttpService {
    pub async fn bind(http: &HttpConfig, routes: Router, readiness: Readiness) -> anyhow::Result<Self> {
        // Install the recorder before the first request so no early measurement is lost.
        metrics::prometheus();
        let listener = server::bind(http).await?;
        let router = server::with_standard_layers(routes.merge(ops::routes(readiness)), http);
        Ok(Self { listener, router, drain: http.drain_timeout() })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP listener always has a local address.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        server::serve(self.listener, self.router, shutdown, self.drain).await
    }
}

#[cfg(test)]
mod tests {
    use rlimit::Resource;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = Resource::NOFILE.get().expect("getrlimit");
        // Start from a low soft limit, as a container runtime may hand it to us.
        Resource::NOFILE.set(256.min(hard), hard).expect("lowering the soft limit");
        super::raise_open_file_limit();
        let (soft, _) = Resource::NOFILE.get().expect("getrlimit");
        assert_eq!(soft, hard);
    }
}
