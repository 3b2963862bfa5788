//! `loadtest send-bench`: the command path's send latency at a fixed rate and its peak throughput, beside
//! the two physical bounds of that path on the same machine in the same run — raw rdkafka produce with the
//! same producer settings, and a bare axum endpoint answering 202 without Kafka.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use chatsdk_client::api::{CreateChannel, NewMember, SendMessage};
use chatsdk_client::token::{Claims, mint};
use chatsdk_client::{Client, Credentials, create_app};
use chatsdk_schemas::Envelope;
use chatsdk_schemas::codec::{EventEncoder, RegistrySettings};
use chatsdk_schemas::events::{ChannelType, Event, MessageSent};
use chatsdk_schemas::ids::{ChannelId, MessageId, UserId};
use futures::future::BoxFuture;
use rdkafka::producer::FutureRecord;
use serde::Serialize;

use crate::measure::{RunStats, closed_loop, fixed_rate, markdown};
use crate::stack::{Deployment, Process, Stack, Usage, free_port, usage};

#[derive(Debug, Clone)]
pub struct Options {
    pub rate: f64,
    pub seconds: u64,
    pub workers: usize,
    pub channels: usize,
    pub users_per_channel: usize,
    pub partitions: i32,
    pub text_bytes: usize,
    pub bin_dir: PathBuf,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    options: String,
    machine: String,
    runs: Vec<RunStats>,
    command_api_cpu_percent_at_rate: f64,
    command_api_peak_rss_mib: f64,
    command_api_idle_rss_mib: f64,
    projector_catch_up_after_closed_loop_seconds: f64,
}

/// The message text of every send: `text_bytes` of ordinary words.
fn text(bytes: usize) -> String {
    let words = ["hello", "are", "we", "still", "on", "for", "lunch", "today", "see", "you", "there", "soon"];
    let mut text = String::with_capacity(bytes + 8);
    let mut i = 0;
    while text.len() < bytes {
        text.push_str(words[i % words.len()]);
        text.push(' ');
        i += 1;
    }
    text.truncate(bytes);
    text
}

pub async fn run(options: Options) -> anyhow::Result<String> {
    let stack = Stack::from_env()?;
    let deployment = Deployment::start(&stack, &options.bin_dir, options.partitions, false).await?;
    let outcome = bench(&stack, &options, &deployment).await;
    deployment.stop(&stack, outcome.is_err()).await;
    outcome
}

async fn bench(stack: &Stack, options: &Options, deployment: &Deployment) -> anyhow::Result<String> {
    let (api, log_dir) = (deployment.api(), deployment.log_dir.as_path());
    let api_pid = api.pid().context("command-api pid")?;
    let admin_token = deployment.admin_token.clone();

    // Tenancy: one app, channels of `users_per_channel` members each; every user sends in their channel.
    let app = create_app(&api.url, &admin_token, &"bench".parse()?).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(Duration::from_secs(30)).build()?;
    let server = Client::with_http(
        http.clone(),
        &api.url,
        Credentials::Server { api_key: app.api_key.clone(), api_secret: app.api_secret.clone() },
    );
    let now = chrono::Utc::now().timestamp();
    let mut senders: Vec<(Client, ChannelId)> = Vec::new();
    for channel_index in 0..options.channels {
        let channel: ChannelId = format!("bench-{channel_index}").parse()?;
        let users: Vec<UserId> = (0..options.users_per_channel)
            .map(|user| format!("u{channel_index}-{user}").parse())
            .collect::<Result<_, _>>()?;
        let created = server
            .create_channel(&CreateChannel {
                channel_id: Some(channel.clone()),
                members: users.iter().map(|user| NewMember { user_id: user.clone(), role: None }).collect(),
                ..CreateChannel::new(ChannelType::Group)
            })
            .await?;
        for user in users {
            let token = mint(&app.api_secret, &Claims::new(&user, now, 24 * 3600));
            let client =
                Client::with_http(http.clone(), &api.url, Credentials::User { api_key: app.api_key.clone(), token });
            client.observe(created.position);
            senders.push((client, channel.clone()));
        }
    }
    let senders = Arc::new(senders);
    let body = text(options.text_bytes);
    let sequence = Arc::new(AtomicU64::new(0));
    let send = {
        let (senders, body, sequence) = (Arc::clone(&senders), body.clone(), Arc::clone(&sequence));
        move |i: u64| {
            let (client, channel) = senders[(i as usize) % senders.len()].clone();
            let key = format!("m{}", sequence.fetch_add(1, Ordering::Relaxed));
            let request = SendMessage { client_msg_id: Some(key), ..SendMessage::text(body.clone()) };
            async move {
                client
                    .send_message(&channel, &request)
                    .await
                    .map(|_| ())
                    .map_err(|error| error.code().map_or_else(|| format!("transport: {error}"), str::to_owned))
            }
        }
    };
    let duration = Duration::from_secs(options.seconds);
    let mut runs = Vec::new();
    // Warm-up: every user once (connections, caches, schema ids), not reported.
    let warm_up = closed_loop("warm-up", options.workers, Duration::from_secs(3), send.clone()).await;
    anyhow::ensure!(warm_up.ok > 0, "no send succeeded during warm-up: {:?}", warm_up.errors);
    let idle_rss = usage(api_pid).rss_mib;
    // Each phase starts with the projector caught up, so no phase pays for the previous one's backlog.
    let caught_up = || deployment.wait_caught_up(stack, options.partitions);
    caught_up().await?;

    let before = usage(api_pid);
    runs.push(fixed_rate("command-api send", options.rate, duration, 10_000, send.clone()).await);
    let after = usage(api_pid);
    let cpu_percent = (after.cpu_seconds - before.cpu_seconds) / runs[0].seconds * 100.0;
    caught_up().await?;
    runs.push(closed_loop("command-api send", options.workers, duration, send.clone()).await);
    let peak: Usage = usage(api_pid);
    let catch_up = caught_up().await?;

    // Bound 1: raw produce of the same bytes, same producer settings, each task awaiting its delivery.
    let raw_topic = format!("{}.dlq", deployment.topic); // same broker and settings; keeps the projector out of it
    let operation = produce_operation(stack, &deployment.topic, &raw_topic, options.channels, body.clone()).await?;
    let produce = move |i: u64| operation(i);
    // Warm-up, not reported: the producer's first sends to a topic wait for its metadata.
    closed_loop("warm-up", options.workers, Duration::from_secs(2), produce.clone()).await;
    runs.push(fixed_rate("raw rdkafka produce", options.rate, duration, 10_000, produce.clone()).await);
    runs.push(closed_loop("raw rdkafka produce", options.workers, duration, produce).await);

    // Bound 2: an axum endpoint in its own process that answers 202 at once, same HTTP client and body.
    let bare_port = free_port()?;
    let bare = Process::start(
        "bare-axum",
        &std::env::current_exe()?,
        bare_port,
        &[("CHATSDK_LOADTEST_BARE", "1".to_owned())],
        log_dir,
    )
    .await?;
    let bare_url = format!("{}/v1/channels/bench-0/messages", bare.url);
    let bare_body = serde_json::to_vec(&SendMessage { client_msg_id: Some("m".into()), ..SendMessage::text(body) })?;
    let post = {
        let (http, bare_url, bare_body) = (http.clone(), bare_url.clone(), bare_body.clone());
        move |_: u64| {
            let request = http.post(&bare_url).header("content-type", "application/json").body(bare_body.clone());
            async move {
                match request.send().await {
                    Ok(response) if response.status() == reqwest::StatusCode::ACCEPTED => {
                        response.bytes().await.map(|_| ()).map_err(|error| format!("transport: {error}"))
                    }
                    Ok(response) => Err(format!("status {}", response.status())),
                    Err(error) => Err(format!("transport: {error}")),
                }
            }
        }
    };
    closed_loop("warm-up", options.workers, Duration::from_secs(2), post.clone()).await;
    runs.push(fixed_rate("bare axum 202", options.rate, duration, 10_000, post.clone()).await);
    caught_up().await?;
    runs.push(closed_loop("bare axum 202", options.workers, duration, post).await);
    bare.stop().await;

    let report = Report {
        options: format!("{options:?}"),
        machine: machine(),
        runs,
        command_api_cpu_percent_at_rate: cpu_percent,
        command_api_peak_rss_mib: peak.peak_rss_mib,
        command_api_idle_rss_mib: idle_rss,
        projector_catch_up_after_closed_loop_seconds: catch_up.as_secs_f64(),
    };
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    let lower_bound = report.runs[3].per_second.min(report.runs[5].per_second);
    Ok(format!(
        "{}\nProjector caught up {:.1} s after the closed-loop phase ended.\n\
         command-api at {:.0}/s: {:.0}% CPU, RSS {:.0} MiB after warm-up, peak {:.0} MiB. \
         Closed-loop sends reach {:.0}% of the lower bound (min of raw produce and bare axum at {} workers).\n\
         Machine: {}\n",
        markdown(&report.runs),
        report.projector_catch_up_after_closed_loop_seconds,
        options.rate,
        report.command_api_cpu_percent_at_rate,
        report.command_api_idle_rss_mib,
        report.command_api_peak_rss_mib,
        report.runs[1].per_second / lower_bound * 100.0,
        options.workers,
        report.machine,
    ))
}

/// One raw produce, awaiting its delivery report.
pub(crate) type Operation = Arc<dyn Fn(u64) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Raw produce of an encoded `message.sent` (registered as `subject_topic`'s) to `topic`, with the services'
/// producer settings: the broker's bound for the command path.
pub(crate) async fn produce_operation(
    stack: &Stack,
    subject_topic: &str,
    topic: &str,
    channels: usize,
    text: String,
) -> anyhow::Result<Operation> {
    let encoder = EventEncoder::new(
        RegistrySettings::new(&stack.registry.url, Duration::from_millis(stack.registry.timeout_ms)),
        subject_topic,
    )?;
    let sample = Envelope::new(
        "bench".parse()?,
        "bench-0".parse()?,
        "u0-0".parse()?,
        Event::MessageSent(MessageSent {
            message_id: MessageId::from_uuid(uuid::Uuid::now_v7()),
            client_msg_id: Some("m0".into()),
            text,
            mentions: Vec::new(),
            attachments: Vec::new(),
            parent_id: None,
            custom: None,
        }),
    );
    let payload = Arc::new(encoder.encode(&sample).await?);
    let producer = stack.kafka.producer("loadtest")?;
    let topic = topic.to_owned();
    Ok(Arc::new(move |i: u64| {
        let (producer, payload, topic) = (producer.clone(), Arc::clone(&payload), topic.clone());
        Box::pin(async move {
            let key = format!("bench:bench-{}", i as usize % channels.max(1));
            let record = FutureRecord::to(&topic).key(&key).payload(payload.as_slice());
            match producer.send_result(record) {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((error, _))) => Err(format!("kafka: {error}")),
                    Err(_) => Err("canceled".to_owned()),
                },
                Err((error, _)) => Err(format!("kafka: {error}")),
            }
        })
    }))
}

pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| info.lines().find(|line| line.starts_with("model name")).map(|line| line.to_owned()))
        .and_then(|line| line.split_once(':').map(|(_, model)| model.trim().to_owned()))
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().next().map(str::to_owned))
        .and_then(|line| line.split_whitespace().nth(1).and_then(|kib| kib.parse::<f64>().ok()))
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cpus} CPUs ({model}), {memory:.0} GiB")
}
