//! `loadtest upload-storm`: many concurrent direct uploads against the release command API, measuring that its
//! memory stays flat because no file byte passes through it (bytes go from this process straight to S3 through
//! presigned URLs). Each upload: `POST /v1/uploads` → `PUT` to S3 → `POST /v1/uploads/{id}/complete`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chatsdk_client::api::{CompleteUpload, CreateChannel, CreateUpload, NewMember};
use chatsdk_client::token::{Claims, mint};
use chatsdk_client::{Client, Credentials, create_app};
use chatsdk_schemas::events::ChannelType;
use chatsdk_schemas::ids::{ChannelId, UserId};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::measure::{Recorder, RunStats, markdown};
use crate::stack::{Deployment, Stack, usage};

#[derive(Debug, Clone)]
pub struct Options {
    pub uploads: usize,
    pub size_bytes: u64,
    pub concurrency: usize,
    pub users: usize,
    pub partitions: i32,
    pub bin_dir: PathBuf,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    uploads: usize,
    size_bytes: u64,
    concurrency: usize,
    completed: usize,
    seconds: f64,
    megabytes_per_second: f64,
    api_rss_idle_mib: f64,
    api_rss_peak_mib: f64,
    api_rss_growth_mib: f64,
    api_cpu_seconds: f64,
    steps: Vec<RunStats>,
}

pub async fn run(options: Options) -> anyhow::Result<String> {
    let stack = Stack::from_env()?;
    let deployment = Deployment::start(&stack, &options.bin_dir, options.partitions, false).await?;
    let outcome = storm(&stack, &options, &deployment).await;
    deployment.stop(&stack, outcome.is_err()).await;
    let report = outcome?;
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(render(&report))
}

async fn storm(stack: &Stack, options: &Options, deployment: &Deployment) -> anyhow::Result<Report> {
    let pid = deployment.api().pid().context("command-api pid")?;
    let app = create_app(&deployment.api().url, &deployment.admin_token, &"storm".parse()?).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).timeout(Duration::from_secs(120)).build()?;
    let users: Vec<UserId> = (0..options.users).map(|index| format!("u{index}").parse()).collect::<Result<_, _>>()?;
    let client = |user: &UserId| {
        let token = mint(&app.api_secret, &Claims::new(user, chrono::Utc::now().timestamp(), 3600));
        Client::with_http(
            http.clone(),
            &deployment.api().url,
            Credentials::User { api_key: app.api_key.clone(), token },
        )
        .without_session_consistency()
    };
    let server = Client::with_http(
        http.clone(),
        &deployment.api().url,
        Credentials::Server { api_key: app.api_key.clone(), api_secret: app.api_secret.clone() },
    );
    let members = users.iter().map(|user| NewMember { user_id: user.clone(), role: None }).collect();
    let channel: ChannelId =
        server.create_channel(&CreateChannel { members, ..CreateChannel::new(ChannelType::Group) }).await?.channel_id;
    deployment.wait_caught_up(stack, options.partitions).await?;
    let clients: Arc<Vec<Client>> = Arc::new(users.iter().map(client).collect());

    // Warm-up: a few small uploads, so the idle figure includes the code paths and connection pools used.
    let small = bytes::Bytes::from(vec![7_u8; 1024]);
    for index in 0..5 {
        upload(&clients[index % clients.len()], &http, &channel, small.clone()).await.map_err(anyhow::Error::msg)?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = usage(pid);

    // The storm: every upload at once (bounded by `concurrency`), the same bytes for each (shared, not copied).
    let body = bytes::Bytes::from((0..options.size_bytes).map(|index| (index % 251) as u8).collect::<Vec<u8>>());
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut highest: f64 = 0.0;
            while sampling.load(Ordering::Relaxed) {
                highest = highest.max(usage(pid).rss_mib);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            highest
        })
    };
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..options.uploads {
        let (clients, http, channel, body, permits) =
            (Arc::clone(&clients), http.clone(), channel.clone(), body.clone(), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            upload(&clients[index % clients.len()], &http, &channel, body).await
        });
    }
    let mut steps = [Recorder::new(), Recorder::new(), Recorder::new()];
    let mut completed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.context("upload task")? {
            Ok(timings) => {
                completed += 1;
                for (recorder, took) in steps.iter_mut().zip(timings) {
                    recorder.record(took, Ok(()));
                }
            }
            Err(error) => steps[0].record(Duration::ZERO, Err(error)),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let sampled_peak = sampler.await.unwrap_or(0.0);
    let after = usage(pid);
    let peak = after.peak_rss_mib.max(sampled_peak);
    let elapsed = Duration::from_secs_f64(seconds);
    let [create, put, complete] = steps;
    let steps = vec![
        create.finish("POST /v1/uploads", "storm", elapsed),
        put.finish("PUT to S3 (presigned)", "storm", elapsed),
        complete.finish("POST /v1/uploads/{id}/complete", "storm", elapsed),
    ];
    Ok(Report {
        uploads: options.uploads,
        size_bytes: options.size_bytes,
        concurrency: options.concurrency,
        completed,
        seconds,
        megabytes_per_second: (completed as f64 * options.size_bytes as f64) / 1e6 / seconds,
        api_rss_idle_mib: idle.rss_mib,
        api_rss_peak_mib: peak,
        api_rss_growth_mib: peak - idle.rss_mib,
        api_cpu_seconds: after.cpu_seconds - idle.cpu_seconds,
        steps,
    })
}

/// One upload; the duration of its three steps.
async fn upload(
    client: &Client,
    http: &reqwest::Client,
    channel: &ChannelId,
    body: bytes::Bytes,
) -> Result<[Duration; 3], String> {
    let began = Instant::now();
    let request = CreateUpload {
        channel_id: channel.clone(),
        name: "storm.bin".to_owned(),
        size: body.len() as u64,
        content_type: "application/octet-stream".to_owned(),
    };
    let ticket = client.create_upload(&request).await.map_err(|error| format!("create: {error}"))?;
    let created = began.elapsed();
    let presigned = ticket.put.ok_or("a multipart ticket: raise uploads.multipart_threshold_bytes")?;
    let response = presigned.request(http, body).send().await.map_err(|error| format!("put: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("put: {}", response.status()));
    }
    let uploaded = began.elapsed();
    let complete = CompleteUpload {
        channel_id: channel.clone(),
        parts: Vec::new(),
        text: String::new(),
        parent_id: None,
        client_msg_id: None,
    };
    client.complete_upload(&ticket.upload_id, &complete).await.map_err(|error| format!("complete: {error}"))?;
    Ok([created, uploaded - created, began.elapsed() - uploaded])
}

fn render(report: &Report) -> String {
    format!(
        "upload-storm: {} uploads of {} bytes, {} at a time: {} completed in {:.1} s ({:.0} MB/s through S3)\n\
         command-api RSS: idle {:.1} MiB, peak {:.1} MiB (+{:.1} MiB); CPU {:.2} s\n\n{}",
        report.uploads,
        report.size_bytes,
        report.concurrency,
        report.completed,
        report.seconds,
        report.megabytes_per_second,
        report.api_rss_idle_mib,
        report.api_rss_peak_mib,
        report.api_rss_growth_mib,
        report.api_cpu_seconds,
        markdown(&report.steps)
    )
}
