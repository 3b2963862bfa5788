//! Starting the real services, in-process on port 0 or as their binaries, and asking them over HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use chatsdk_platform::service::Service;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A service running inside the test process.
#[derive(Debug)]
pub struct RunningService {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningService {
    /// Builds and starts `S` with `config` (whose HTTP bind should use port 0).
    pub async fn start<S>(config: S::Config) -> Self
    where
        S: Service + Send + 'static,
    {
        let application = S::build(config).await.unwrap();
        let address = application.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            application
                .run_until_stopped(async move {
                    let _sender_dropped_means_stop = stopped.await;
                })
                .await
        });
        Self { address, stop: Some(stop), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Signals shutdown and waits for the service to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _already_stopped = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .map_err(|_| anyhow::anyhow!("service did not stop within 30 s"))??
    }
}

/// GET `url`, returning the status and the JSON body (`Value::Null` when the body is not JSON).
pub async fn get_json(url: &str) -> (reqwest::StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A service binary started as a child process.
#[derive(Debug)]
pub struct RunningBinary {
    pub address: SocketAddr,
    child: Child,
}

impl RunningBinary {
    /// Starts `binary` with `env` (plus `CHATSDK_HTTP__BIND=127.0.0.1:0`) and waits for its JSON
    /// "listening" log line, which carries the bound address.
    pub async fn start(binary: &Path, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .env("CHATSDK_HTTP__BIND", "127.0.0.1:0")
            .env("CHATSDK_LOG__FORMAT", "json")
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|error| panic!("starting {}: {error}", binary.display()));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
                if event["message"] == "listening" {
                    return event["address"].as_str().unwrap().parse::<SocketAddr>().unwrap();
                }
            }
            panic!("{} exited before listening", binary.display());
        })
        .await
        .unwrap_or_else(|_| panic!("{} did not log `listening` within 30 s", binary.display()));
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_line)) = lines.next_line().await {} });
        Self { address, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Kills the process at once (SIGKILL): no drain, no cleanup, as a crash would.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().unwrap();
        let signalled = Command::new("sh").arg("-c").arg(format!("kill -TERM {pid}")).status().await.unwrap();
        assert!(signalled.success(), "could not signal pid {pid}");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("pid {pid} still running 30 s after SIGTERM"))
            .unwrap()
    }
}

/// Starts `S` in-process and checks the ops endpoints: `/healthz` 200, `/readyz` 200 (within `deadline`,
/// since some checks become true after start-up) with every expected check passing, and `/metrics`
/// counting the requests just made by route template.
pub async fn assert_ops_endpoints_ready<S>(config: S::Config, expected_checks: &[&str], deadline: Duration)
where
    S: Service + Send + 'static,
{
    let service = RunningService::start::<S>(config).await;
    let (status, body) = get_json(&service.url("/healthz")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");

    let readiness_url = service.url("/readyz");
    let started = std::time::Instant::now();
    let body = loop {
        let (status, body) = get_json(&readiness_url).await;
        if status == reqwest::StatusCode::OK {
            break body;
        }
        assert!(started.elapsed() < deadline, "/readyz still {status} after {deadline:?}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for check in expected_checks {
        assert_eq!(body["checks"][check]["ok"], true, "check {check} missing or failing: {body}");
    }
    let reported = body["checks"].as_object().map_or(0, serde_json::Map::len);
    assert_eq!(reported, expected_checks.len(), "unexpected checks: {body}");

    let metrics = reqwest::get(service.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("chatsdk_http_requests_total") && line.contains("route=\"/readyz\"")),
        "no request counter for /readyz in:\n{metrics}"
    );
    service.stop().await.unwrap();
}

/// Starts `S` in-process with a dependency pointing at a closed port and checks that `/readyz` answers
/// 503 naming that dependency while `/healthz` stays 200: the service runs and reports, it does not die.
pub async fn assert_not_ready_without<S>(config: S::Config, failing_check: &str)
where
    S: Service + Send + 'static,
{
    let service = RunningService::start::<S>(config).await;
    let (status, body) = get_json(&service.url("/readyz")).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "dependency_unavailable", "{body}");
    assert_eq!(body["checks"][failing_check]["ok"], false, "{body}");
    let (status, _) = get_json(&service.url("/healthz")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    service.stop().await.unwrap();
}

/// Starts the binary, checks it answers, sends SIGTERM, and expects a clean exit (status 0).
pub async fn assert_binary_stops_cleanly_on_sigterm(binary: &Path) {
    let running = RunningBinary::start(binary, &[]).await;
    let (status, _) = get_json(&running.url("/healthz")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let exit = running.terminate().await;
    assert!(exit.success(), "{} exited with {exit} after SIGTERM", binary.display());
}
