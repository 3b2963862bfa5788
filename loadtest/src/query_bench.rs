//! `loadtest query-bench`: the query API's reads, sync and realtime, against release binaries of all three
//! services on the local stack. Phases, each on the same deployment:
//!
//! 1. history pages, 2. sync pages and searches (`GET /v1/search` in the caller's channels: membership lookup,
//!    the index, hydration from the read models) at a fixed rate (open loop);
//! 3. WebSocket connects (upgrade + `connected` frame) at a fixed rate;
//! 4. send → delivery: every member of every channel connected, sends at a fixed rate through the command
//!    API, latency from the send's scheduled start to each *other* member's socket receiving it — and a check
//!    that every accepted message reached every other member exactly once;
//! 5. many idle sockets on one node: the query API's RSS per socket;
//! 6. fan-out: those sockets are members of a few large channels; messages at a fixed rate; deliveries/s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use chatsdk_client::api::{CreateChannel, NewMember, SendMessage};
use chatsdk_client::token::{Claims, mint};
use chatsdk_client::{Client, Credentials, create_app};
use chatsdk_schemas::events::ChannelType;
use chatsdk_schemas::ids::{ChannelId, UserId};
use futures::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::measure::{Recorder, RunStats, closed_loop, fixed_rate, markdown};
use crate::stack::{Deployment, Stack, file_limit, usage};

#[derive(Debug, Clone)]
pub struct Options {
    pub seconds: u64,
    /// Sends per second in the send → delivery phase.
    pub rate: f64,
    /// History, sync and connect requests per second.
    pub read_rate: f64,
    pub channels: usize,
    pub users_per_channel: usize,
    /// Messages per channel before the read phases.
    pub history: usize,
    /// Idle sockets held by one node (phase 5), also the fan-out audience.
    pub sockets: usize,
    pub fanout_channels: usize,
    /// Messages per second across the fan-out channels.
    pub fanout_rate: f64,
    pub partitions: i32,
    pub bin_dir: PathBuf,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    options: String,
    machine: String,
    runs: Vec<RunStats>,
    delivery_expected: u64,
    delivery_received: u64,
    delivery_duplicates: u64,
    sockets_held: usize,
    query_rss_before_sockets_mib: f64,
    query_rss_with_sockets_mib: f64,
    kib_per_socket: f64,
    fanout_sent: u64,
    fanout_deliveries: u64,
    fanout_seconds: f64,
    fanout_deliveries_per_second: f64,
    query_cpu_percent_during_fanout: f64,
}

pub async fn run(options: Options) -> anyhow::Result<String> {
    let limit = file_limit();
    anyhow::ensure!(
        (options.sockets as u64) + 500 < limit,
        "{} sockets need more than this process's open-file limit of {limit}: run `ulimit -n \"$(ulimit -Hn)\"` \
         first or pass a smaller --sockets",
        options.sockets
    );
    let stack = Stack::from_env()?;
    let deployment = Deployment::start(&stack, &options.bin_dir, options.partitions, true).await?;
    let outcome = bench(&stack, &options, &deployment).await;
    deployment.stop(&stack, outcome.is_err()).await;
    outcome
}

struct Tenant {
    http: reqwest::Client,
    api_url: String,
    query_url: String,
    ws_url: String,
    api_key: String,
    secret: String,
}

impl Tenant {
    fn token(&self, user: &UserId) -> String {
        mint(&self.secret, &Claims::new(user, chrono::Utc::now().timestamp(), 24 * 3600))
    }

    fn user(&self, user: &UserId) -> Client {
        let credentials = Credentials::User { api_key: self.api_key.clone(), token: self.token(user) };
        Client::with_http(self.http.clone(), &self.api_url, credentials)
            .with_query_url(&self.query_url)
            .without_session_consistency()
    }

    fn server(&self) -> Client {
        let credentials = Credentials::Server { api_key: self.api_key.clone(), api_secret: self.secret.clone() };
        Client::with_http(self.http.clone(), &self.api_url, credentials)
    }

    fn socket_url(&self, user: &UserId) -> String {
        format!("{}/v1/ws?api_key={}&auth={}", self.ws_url, self.api_key, self.token(user))
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and waits for the `connected` frame.
async fn connect(url: &str) -> Result<Socket, String> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.map_err(|error| format!("connect: {error}"))?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.as_str().contains("\"connected\"") => return Ok(socket),
            Some(Ok(_)) => {}
            _ => return Err("closed before connected".to_owned()),
        }
    }
}

async fn bench(stack: &Stack, options: &Options, deployment: &Deployment) -> anyhow::Result<String> {
    let query = deployment.query().context("the query API")?;
    let query_pid = query.pid().context("query-api pid")?;
    let app = create_app(&deployment.api().url, &deployment.admin_token, &"bench".parse()?).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(Duration::from_secs(30)).build()?;
    let tenant = Arc::new(Tenant {
        http,
        api_url: deployment.api().url.clone(),
        query_url: query.url.clone(),
        ws_url: query.url.replace("http://", "ws://"),
        api_key: app.api_key,
        secret: app.api_secret,
    });
    let server = tenant.server();
    let duration = Duration::from_secs(options.seconds);
    let mut runs = Vec::new();

    // Channels of `users_per_channel` members; a sync token per user from before the history was written.
    let mut members: Vec<(UserId, ChannelId)> = Vec::new();
    for index in 0..options.channels {
        let channel: ChannelId = format!("q-{index}").parse()?;
        let users: Vec<UserId> =
            (0..options.users_per_channel).map(|user| format!("u{index}-{user}").parse()).collect::<Result<_, _>>()?;
        let new_members = users.iter().map(|user| NewMember { user_id: user.clone(), role: None }).collect();
        server
            .create_channel(&CreateChannel {
                channel_id: Some(channel.clone()),
                members: new_members,
                ..CreateChannel::new(ChannelType::Group)
            })
            .await?;
        members.extend(users.into_iter().map(|user| (user, channel.clone())));
    }
    deployment.wait_caught_up(stack, options.partitions).await?;
    let mut sync_tokens = Vec::with_capacity(members.len());
    for (user, _) in &members {
        sync_tokens.push(tenant.user(user).sync(None, Some(1)).await?.next_token);
    }
    let members = Arc::new(members);
    let sync_tokens = Arc::new(sync_tokens);

    // History: `history` messages per channel, sent by its members.
    let writers: Arc<Vec<(Client, ChannelId)>> =
        Arc::new(members.iter().map(|(user, channel)| (tenant.user(user), channel.clone())).collect());
    let total = (options.history * options.channels) as u64;
    let sequence = Arc::new(AtomicU64::new(0));
    let fill = {
        let (writers, sequence) = (Arc::clone(&writers), Arc::clone(&sequence));
        move |_: u64| {
            let n = sequence.fetch_add(1, Ordering::Relaxed);
            let (client, channel) = writers[(n as usize) % writers.len()].clone();
            async move {
                if n >= total {
                    return Ok(());
                }
                let request = SendMessage::text(format!("history message {n} with a few ordinary words in it"));
                client.send_message(&channel, &request).await.map(|_| ()).map_err(|error| error.to_string())
            }
        }
    };
    while sequence.load(Ordering::Relaxed) < total {
        let filled = closed_loop("fill", 32, Duration::from_secs(2), fill.clone()).await;
        anyhow::ensure!(filled.errors.is_empty(), "filling history failed: {:?}", filled.errors);
    }
    deployment.wait_caught_up(stack, options.partitions).await?;

    // 1. History pages.
    let readers: Arc<Vec<(Client, ChannelId)>> =
        Arc::new(members.iter().map(|(user, channel)| (tenant.user(user), channel.clone())).collect());
    let history = {
        let readers = Arc::clone(&readers);
        move |i: u64| {
            let (client, channel) = readers[(i as usize * 7919) % readers.len()].clone();
            async move {
                let page = client.history(&channel, &[("limit", "50")]).await.map_err(|error| error.to_string())?;
                if page.messages.is_empty() { Err("empty page".into()) } else { Ok(()) }
            }
        }
    };
    closed_loop("warm-up", 8, Duration::from_secs(2), history.clone()).await;
    runs.push(fixed_rate("history page (50 messages)", options.read_rate, duration, 10_000, history).await);

    // 1b. Searches: a word of every history message, in the caller's channels (100 hits), relevance order.
    let search = {
        let readers = Arc::clone(&readers);
        move |i: u64| {
            let (client, _channel) = readers[(i as usize * 7919) % readers.len()].clone();
            async move {
                let found = client.search("ordinary", &[("limit", "20")]).await.map_err(|error| error.to_string())?;
                if found.results.is_empty() { Err("no hits".into()) } else { Ok(()) }
            }
        }
    };
    deployment.wait_search_caught_up(stack).await?;
    closed_loop("warm-up", 8, Duration::from_secs(2), search.clone()).await;
    runs.push(fixed_rate("search (20 of 100 hits, highlights)", options.read_rate, duration, 10_000, search).await);

    // 2. Sync pages from before the history: each returns up to 100 events of the user's channel.
    let sync = {
        let (readers, tokens) = (Arc::clone(&readers), Arc::clone(&sync_tokens));
        move |i: u64| {
            let index = (i as usize * 7919) % readers.len();
            let (client, token) = (readers[index].0.clone(), tokens[index].clone());
            async move {
                let page = client.sync(Some(&token), Some(100)).await.map_err(|error| error.to_string())?;
                if page.events.is_empty() { Err("empty sync".into()) } else { Ok(()) }
            }
        }
    };
    closed_loop("warm-up", 8, Duration::from_secs(2), sync.clone()).await;
    runs.push(fixed_rate("sync page (≤100 events)", options.read_rate, duration, 10_000, sync).await);

    // 3. Connects.
    let connects = {
        let (tenant, members) = (Arc::clone(&tenant), Arc::clone(&members));
        move |i: u64| {
            let url = tenant.socket_url(&members[(i as usize) % members.len()].0);
            async move {
                let mut socket = connect(&url).await?;
                let _ = socket.close(None).await;
                Ok(())
            }
        }
    };
    runs.push(fixed_rate("WebSocket connect", options.read_rate.min(500.0), duration, 10_000, connects).await);

    // 4. Send → delivery at every other member's socket.
    let (delivery, expected, received, duplicates) = send_to_delivery(&tenant, &members, options, duration).await?;
    runs.extend(delivery);

    // 5. Idle sockets, members of the fan-out channels (added before they connect).
    let audience: Vec<UserId> = (0..options.sockets).map(|i| format!("f{i}").parse()).collect::<Result<_, _>>()?;
    let per_channel = options.sockets.div_ceil(options.fanout_channels.max(1));
    let mut fanout_channels = Vec::new();
    for (index, group) in audience.chunks(per_channel).enumerate() {
        let channel: ChannelId = format!("fanout-{index}").parse()?;
        let initial = group.iter().take(500).map(|user| NewMember { user_id: user.clone(), role: None }).collect();
        server
            .create_channel(&CreateChannel {
                channel_id: Some(channel.clone()),
                members: initial,
                ..CreateChannel::new(ChannelType::Public)
            })
            .await?;
        fanout_channels.push(channel.clone());
        let rest: Arc<Vec<UserId>> = Arc::new(group.iter().skip(500).cloned().collect());
        let next = Arc::new(AtomicU64::new(0));
        let add = {
            let (server, rest, next, channel) = (server.clone(), Arc::clone(&rest), Arc::clone(&next), channel.clone());
            move |_: u64| {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let (server, user, channel) = (server.clone(), rest.get(n).cloned(), channel.clone());
                async move {
                    match user {
                        Some(user) => {
                            server.add_member(&channel, &user, None).await.map(|_| ()).map_err(|e| e.to_string())
                        }
                        None => Ok(()),
                    }
                }
            }
        };
        while (next.load(Ordering::Relaxed) as usize) < rest.len() {
            closed_loop("members", 32, Duration::from_secs(1), add.clone()).await;
        }
    }
    deployment.wait_caught_up(stack, options.partitions).await?;
    let rss_before = usage(query_pid).rss_mib;
    let counted = Arc::new(AtomicU64::new(0));
    let mut holders = JoinSet::new();
    let opened = Arc::new(AtomicU64::new(0));
    for chunk in audience.chunks(200) {
        let mut connecting = JoinSet::new();
        for user in chunk {
            let url = tenant.socket_url(user);
            connecting.spawn(async move { connect(&url).await });
        }
        while let Some(result) = connecting.join_next().await {
            let socket = result.context("connect task")?.map_err(|error| anyhow::anyhow!(error))?;
            opened.fetch_add(1, Ordering::Relaxed);
            let counted = Arc::clone(&counted);
            holders.spawn(async move {
                let mut socket = socket;
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message
                        && text.as_str().starts_with("{\"type\":\"event\"")
                    {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
    let rss_with = usage(query_pid).rss_mib;
    let held = opened.load(Ordering::Relaxed) as usize;
    let kib_per_socket = (rss_with - rss_before) * 1024.0 / held.max(1) as f64;

    // 6. Fan-out.
    let fanout_writer = Arc::new((server.clone(), fanout_channels));
    let sent = Arc::new(AtomicU64::new(0));
    let fanout = {
        let (writer, sent) = (Arc::clone(&fanout_writer), Arc::clone(&sent));
        move |i: u64| {
            let (server, channels) = (&writer.0, &writer.1);
            let (server, channel, sent) =
                (server.clone(), channels[(i as usize) % channels.len()].clone(), Arc::clone(&sent));
            async move {
                server
                    .send_message(&channel, &SendMessage::text(format!("fan-out {i}")))
                    .await
                    .map_err(|e| e.to_string())?;
                sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    };
    let before_cpu = usage(query_pid).cpu_seconds;
    let started = Instant::now();
    let counted_before = counted.load(Ordering::Relaxed);
    runs.push(fixed_rate("fan-out send", options.fanout_rate, duration, 10_000, fanout).await);
    // Deliveries until they stop growing (bounded).
    let sent_total = sent.load(Ordering::Relaxed);
    let expected_fanout = sent_total * per_channel as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (counted.load(Ordering::Relaxed), Instant::now());
    while counted.load(Ordering::Relaxed) - counted_before < expected_fanout && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counted.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let fanout_seconds = last.1.duration_since(started).as_secs_f64();
    let fanout_deliveries = counted.load(Ordering::Relaxed) - counted_before;
    let cpu = (usage(query_pid).cpu_seconds - before_cpu) / fanout_seconds * 100.0;
    holders.abort_all();

    let report = Report {
        options: format!("{options:?}"),
        machine: crate::send_bench::machine(),
        runs,
        delivery_expected: expected,
        delivery_received: received,
        delivery_duplicates: duplicates,
        sockets_held: held,
        query_rss_before_sockets_mib: rss_before,
        query_rss_with_sockets_mib: rss_with,
        kib_per_socket,
        fanout_sent: sent_total,
        fanout_deliveries,
        fanout_seconds,
        fanout_deliveries_per_second: fanout_deliveries as f64 / fanout_seconds,
        query_cpu_percent_during_fanout: cpu,
    };
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    anyhow::ensure!(
        report.delivery_received == report.delivery_expected && report.delivery_duplicates == 0,
        "delivery was not exactly once: {} of {} expected, {} duplicates",
        report.delivery_received,
        report.delivery_expected,
        report.delivery_duplicates
    );
    Ok(format!(
        "{}\nSend → delivery: {} deliveries expected, {} received, {} duplicates.\n\
         {} idle sockets on one query-api: RSS {:.0} → {:.0} MiB, {:.1} KiB per socket.\n\
         Fan-out: {} messages to {} channels of {} members → {} deliveries in {:.1} s = {:.0} deliveries/s \
         (query-api CPU {:.0}%).\nMachine: {}\n",
        markdown(&report.runs),
        report.delivery_expected,
        report.delivery_received,
        report.delivery_duplicates,
        report.sockets_held,
        report.query_rss_before_sockets_mib,
        report.query_rss_with_sockets_mib,
        report.kib_per_socket,
        report.fanout_sent,
        options.fanout_channels,
        per_channel,
        report.fanout_deliveries,
        report.fanout_seconds,
        report.fanout_deliveries_per_second,
        report.query_cpu_percent_during_fanout,
        report.machine,
    ))
}

/// (receiving member, sequence) → (first receipt, times received).
type Receipts = HashMap<(usize, u64), (Instant, u32)>;

/// Phase 4: every member connected; sends at `rate` from random members; each other member's socket must
/// receive each accepted message exactly once. Returns the runs (send acknowledgement, send → delivery,
/// acknowledgement → delivery), and the deliveries expected, received and duplicated.
async fn send_to_delivery(
    tenant: &Arc<Tenant>,
    members: &Arc<Vec<(UserId, ChannelId)>>,
    options: &Options,
    duration: Duration,
) -> anyhow::Result<(Vec<RunStats>, u64, u64, u64)> {
    // Scheduled start of each send by its sequence number; receivers look it up.
    let starts: Arc<Mutex<HashMap<u64, (Instant, usize)>>> = Arc::default();
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let seen: Arc<Mutex<Receipts>> = Arc::default();
    let mut receivers = JoinSet::new();
    for (index, (user, _)) in members.iter().enumerate() {
        let mut socket = connect(&tenant.socket_url(user)).await.map_err(|error| anyhow::anyhow!(error))?;
        let (starts, recorder, seen) = (Arc::clone(&starts), Arc::clone(&recorder), Arc::clone(&seen));
        receivers.spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else { continue };
                let Some(sequence) = sequence_of(text.as_str()) else { continue };
                let start = starts.lock().unwrap_or_else(PoisonError::into_inner).get(&sequence).copied();
                if let Some((start, sender)) = start
                    && sender != index
                {
                    recorder.lock().unwrap_or_else(PoisonError::into_inner).record(start.elapsed(), Ok(()));
                }
                let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                seen.entry((index, sequence)).or_insert((Instant::now(), 0)).1 += 1;
            }
        });
    }
    let senders: Arc<Vec<(Client, ChannelId)>> =
        Arc::new(members.iter().map(|(user, channel)| (tenant.user(user), channel.clone())).collect());
    // (sequence, sender, acknowledged at).
    let accepted: Arc<Mutex<Vec<(u64, usize, Instant)>>> = Arc::default();
    let send = {
        let (senders, starts, accepted) = (Arc::clone(&senders), Arc::clone(&starts), Arc::clone(&accepted));
        move |i: u64| {
            let sender = (i as usize * 7919) % senders.len();
            let (client, channel) = senders[sender].clone();
            starts.lock().unwrap_or_else(PoisonError::into_inner).insert(i, (Instant::now(), sender));
            let accepted = Arc::clone(&accepted);
            async move {
                let text = format!("seq:{i}: a message of ordinary length to every member of the channel");
                client.send_message(&channel, &SendMessage::text(text)).await.map_err(|error| error.to_string())?;
                accepted.lock().unwrap_or_else(PoisonError::into_inner).push((i, sender, Instant::now()));
                Ok(())
            }
        }
    };
    let sending = fixed_rate("send with 1,000 sockets open", options.rate, duration, 10_000, send).await;
    // Every other member of the sender's channel must have it once; wait for stragglers (bounded).
    let accepted = accepted.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let by_channel: HashMap<&ChannelId, Vec<usize>> =
        members.iter().enumerate().fold(HashMap::new(), |mut map, (index, (_, channel))| {
            map.entry(channel).or_default().push(index);
            map
        });
    let wanted: Vec<(usize, u64)> = accepted
        .iter()
        .flat_map(|&(sequence, sender, _)| {
            by_channel[&members[sender].1]
                .iter()
                .filter(move |member| **member != sender)
                .map(move |member| (*member, sequence))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let complete = {
            let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            wanted.iter().all(|key| seen.contains_key(key))
        };
        if complete || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receivers.abort_all();
    while receivers.join_next().await.is_some() {}
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let received = wanted.iter().filter(|key| seen.contains_key(key)).count() as u64;
    let duplicates = seen.values().filter(|(_, count)| *count > 1).count() as u64;
    // From the sender's acknowledgement to each receipt (0 when the socket had it first).
    let mut after_ack = Recorder::new();
    for (sequence, sender, acked) in &accepted {
        for member in by_channel[&members[*sender].1].iter().filter(|member| *member != sender) {
            if let Some((received_at, _)) = seen.get(&(*member, *sequence)) {
                after_ack.record(received_at.saturating_duration_since(*acked), Ok(()));
            }
        }
    }
    let recorder = Arc::try_unwrap(recorder).map_err(|_| anyhow::anyhow!("recorder still shared"))?;
    let recorder = recorder.into_inner().unwrap_or_else(PoisonError::into_inner);
    let window = Duration::from_secs_f64(sending.seconds);
    let delivery = recorder.finish("send → delivery at each other member", "open loop (from scheduled send)", window);
    let after_ack = after_ack.finish("ack → delivery at each other member", "open loop (from the send's 202)", window);
    Ok((vec![sending, delivery, after_ack], wanted.len() as u64, received, duplicates))
}

/// The `seq:N:` a phase-4 message carries, if this frame is one.
fn sequence_of(frame: &str) -> Option<u64> {
    let start = frame.find("\"text\":\"seq:")? + "\"text\":\"seq:".len();
    let rest = &frame[start..];
    rest[..rest.find(':')?].parse().ok()
}
