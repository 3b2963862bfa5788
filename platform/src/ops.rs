//! Operational endpoints every service serves, and the HTTP plumbing they share.
//!
//! - `GET /healthz`: the process is alive (no dependency is asked).
//! - `GET /readyz`: every dependency probe passed within its deadline → 200, else 503 naming the failures.
//! - `GET /metrics`: Prometheus text exposition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::{BoxFuture, join_all};
use serde::Serialize;
use serde_json::json;

use crate::metrics as names;

/// The error body of every ChatSDK API: `{"error":{"code":"not_a_member","message":"…"}}`.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into() } });
    (status, Json(body)).into_response()
}

/// Fallback for unknown routes: a JSON 404 rather than an empty body.
pub async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

type ProbeFn = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// One dependency check, e.g. "kafka" → fetch the topic's metadata.
#[derive(Clone)]
pub struct Probe {
    name: &'static str,
    timeout: Duration,
    check: ProbeFn,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Probe").field("name", &self.name).field("timeout", &self.timeout).finish()
    }
}

impl Probe {
    pub fn new<F, Fut>(name: &'static str, timeout: Duration, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self { name, timeout, check: Arc::new(move || Box::pin(check())) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the check once, bounded by the probe's timeout; the error says what failed.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, (self.check)()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("{error:#}")),
            Err(_elapsed) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    async fn run(&self) -> ProbeReport {
        let started = Instant::now();
        let outcome = self.check().await;
        let elapsed = started.elapsed();
        metrics::histogram!(names::DEPENDENCY_PROBE_DURATION_SECONDS, "dependency" => self.name)
            .record(elapsed.as_secs_f64());
        metrics::gauge!(names::DEPENDENCY_UP, "dependency" => self.name).set(if outcome.is_ok() { 1.0 } else { 0.0 });
        ProbeReport { ok: outcome.is_ok(), latency_ms: elapsed.as_secs_f64() * 1000.0, error: outcome.err() }
    }
}

#[derive(Debug, Serialize)]
struct ProbeReport {
    ok: bool,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

type ReportFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The probes behind `/readyz`, run concurrently, each bounded by its own timeout, and informational
/// reports (such as consumer lag) shown beside them without affecting readiness.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<Probe>,
    reports: Vec<(&'static str, ReportFn)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reports: Vec<&str> = self.reports.iter().map(|(name, _)| *name).collect();
        formatter.debug_struct("Readiness").field("probes", &self.probes).field("reports", &reports).finish()
    }
}

impl Readiness {
    pub fn new(probes: Vec<Probe>) -> Self {
        Self { probes, reports: Vec::new() }
    }

    /// Adds an informational section to the `/readyz` body under `reports.<name>`.
    pub fn with_report(
        mut self,
        name: &'static str,
        report: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.reports.push((name, Arc::new(report)));
        self
    }

    fn reports(&self) -> serde_json::Map<String, serde_json::Value> {
        self.reports.iter().map(|(name, report)| ((*name).to_owned(), report())).collect()
    }

    async fn check(&self) -> (bool, BTreeMap<&'static str, ProbeReport>) {
        let reports = join_all(self.probes.iter().map(|probe| async move { (probe.name, probe.run().await) })).await;
        let ready = reports.iter().all(|(_, report)| report.ok);
        (ready, reports.into_iter().collect())
    }
}

/// `/healthz`, `/readyz` and `/metrics`, to be merged into a service's router.
pub fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Arc::new(readiness))
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let (ready, checks) = readiness.check().await;
    let reports = readiness.reports();
    if ready {
        return Json(json!({ "status": "ready", "checks": checks, "reports": reports })).into_response();
    }
    let failing: Vec<&str> = checks.iter().filter(|(_, report)| !report.ok).map(|(name, _)| *name).collect();
    let body = json!({
        "status": "not_ready",
        "checks": checks,
        "reports": reports,
        "error": {
            "code": "dependency_unavailable",
            "message": format!("not ready: {}", failing.join(", ")),
        },
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn metrics_text() -> Response {
    let body = crate::metrics::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Middleware counting requests and their latency by route template (never the raw path).
pub async fn record_http_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let in_flight = metrics::gauge!(names::HTTP_REQUESTS_IN_FLIGHT);
    in_flight.increment(1.0);
    let response = next.run(request).await;
    in_flight.decrement(1.0);
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!(names::HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION_SECONDS, &labels).record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_json(router: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder().uri(path).body(Body::empty()).expect("request");
        let response = router.oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    fn passing(name: &'static str) -> Probe {
        Probe::new(name, Duration::from_secs(1), || async { Ok(()) })
    }

    #[tokio::test]
    async fn ready_when_every_probe_passes() {
        let router = routes(Readiness::new(vec![passing("kafka"), passing("postgres")]));
        let (status, body) = get_json(router, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["checks"]["kafka"]["ok"], true);
        assert_eq!(body["checks"]["postgres"]["ok"], true);
    }

    #[tokio::test]
    async fn a_failing_probe_makes_readyz_503_and_names_it() {
        let failing = Probe::new("postgres", Duration::from_secs(1), || async { anyhow::bail!("connection refused") });
        let router = routes(Readiness::new(vec![passing("kafka"), failing]));
        let (status, body) = get_json(router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "dependency_unavailable");
        assert_eq!(body["checks"]["postgres"]["error"], "connection refused");
        assert_eq!(body["checks"]["kafka"]["ok"], true);
    }

    #[tokio::test]
    async fn a_hanging_probe_is_cut_off_by_its_timeout() {
        let hanging = Probe::new("s3", Duration::from_millis(50), futures::future::pending);
        let router = routes(Readiness::new(vec![hanging]));
        let (status, body) = get_json(router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["s3"]["error"], "no answer within 50 ms");
    }

    #[tokio::test]
    async fn healthz_asks_no_dependency() {
        let hanging = Probe::new("s3", Duration::from_secs(60), futures::future::pending);
        let (status, body) = get_json(routes(Readiness::new(vec![hanging])), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
    }

    #[tokio::test]
    async fn unknown_routes_get_a_json_404() {
        let router = Router::new().fallback(not_found);
        let (status, body) = get_json(router, "/v1/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }
}
