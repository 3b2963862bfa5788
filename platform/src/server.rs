//! Serving a service's router: standard layers, and graceful shutdown with a bounded drain.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::config::HttpConfig;
use crate::ops;

/// Adds what every route of every service gets: a JSON 404 fallback, a request deadline answered with a
/// JSON 503, request metrics, a tracing span per request named by its route template, and panics turned
/// into 500s instead of dropped connections.
pub fn with_standard_layers(router: Router, http: &HttpConfig) -> Router {
    let request_timeout = http.request_timeout();
    router
        .fallback(ops::not_found)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            enforce_deadline(request, next, request_timeout)
        }))
        .layer(middleware::from_fn(ops::record_http_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("http", method = %request.method(), route = %route)
        }))
        .layer(CatchPanicLayer::new())
}

async fn enforce_deadline(request: Request, next: Next, deadline: Duration) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_elapsed) => ops::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request did not complete within {} ms", deadline.as_millis()),
        ),
    }
}

/// Binds the configured address (port 0 picks a free port, as tests do).
pub async fn bind(http: &HttpConfig) -> anyhow::Result<TcpListener> {
    TcpListener::bind(http.bind).await.map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", http.bind))
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish for at most
/// `drain`, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> anyhow::Result<()> {
    let address: Option<SocketAddr> = listener.local_addr().ok();
    let (stop_accepting, stopped) = tokio::sync::watch::channel(false);
    let mut stopped_receiver = stopped.clone();
    let server = axum::serve(listener, router.into_make_service()).with_graceful_shutdown(async move {
        // An Err means the sender is gone, which also means "stop".
        let _closed = stopped_receiver.wait_for(|stop| *stop).await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        () = shutdown => {}
    }
    tracing::info!(?address, drain_ms = drain.as_millis() as u64, "shutdown requested, draining");
    let _receivers_may_be_gone = stop_accepting.send(true);
    match tokio::time::timeout(drain, server).await {
        Ok(result) => result.map_err(Into::into),
        Err(_elapsed) => {
            tracing::warn!(drain_ms = drain.as_millis() as u64, "drain deadline passed, closing open connections");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            futures::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = futures::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupt received"),
        () = terminate => tracing::info!("sigterm received"),
    }
}
