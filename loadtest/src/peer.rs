//! `loadtest peer-synapse`: the same message workload against Matrix Synapse (a stock homeserver on the
//! same PostgreSQL, started by `loadtest/peers/synapse up`) and against ChatSDK on the same machine, side by
//! side, as ratios.
//!
//! The workload: `users` users in rooms (channels) of `group_size`; (1) closed loop — `workers` senders back
//! to back for `seconds`: the throughput each system sustains; (2) open loop at `rate` messages/s (below
//! Synapse's saturation, so both are measured unsaturated) with one member of every room receiving — over
//! `/sync` long-polls on Synapse, a WebSocket on ChatSDK — send latency and send → delivery latency.
//!
//! Matrix: users registered with the shared-secret admin API, rooms by `createRoom` with invites and
//! `join`, messages by `PUT /rooms/{room}/send/m.room.message/{txnId}`, delivery by `/sync`.

use std::fmt::Write as _;
use std::future::Future;
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
use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::measure::{Recorder, RunStats, closed_loop, fixed_rate, markdown};
use crate::scenario::parse_marker;
use crate::stack::{Deployment, Stack};

#[derive(Debug, Clone)]
pub struct Options {
    pub users: usize,
    pub group_size: usize,
    pub workers: usize,
    pub rate: f64,
    pub seconds: u64,
    pub partitions: i32,
    pub bin_dir: PathBuf,
    pub json: Option<PathBuf>,
}

/// One system's figures.
#[derive(Debug, Serialize)]
struct Side {
    system: String,
    closed_loop: RunStats,
    open_loop: RunStats,
    delivery: RunStats,
    deliveries_expected: u64,
    deliveries_received: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    options: String,
    machine: String,
    synapse_version: String,
    synapse: Side,
    chatsdk: Side,
    throughput_ratio: f64,
}

/// Scheduled sends and their receipts, shared by the senders and the receivers of the open-loop phase.
#[derive(Debug)]
struct Probe {
    epoch: Instant,
    scheduled: Vec<AtomicU64>,
    delivery: Mutex<Recorder>,
    /// Distinct messages received (a duplicate cannot hide a missing one).
    received: Mutex<std::collections::HashSet<u64>>,
    accepted: Mutex<Vec<u64>>,
}

impl Probe {
    fn new(sends: usize) -> Self {
        Self {
            epoch: Instant::now(),
            scheduled: (0..sends).map(|_| AtomicU64::new(0)).collect(),
            delivery: Mutex::new(Recorder::new()),
            received: Mutex::default(),
            accepted: Mutex::default(),
        }
    }

    fn schedule(&self, seq: u64) {
        if let Some(slot) = self.scheduled.get(seq as usize) {
            slot.store(self.epoch.elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
        }
    }

    /// A message text reached `receiver`.
    fn receipt(&self, text: &str, receiver: usize) {
        let Some((seq, sender)) = parse_marker(text) else { return };
        let micros = self.scheduled.get(seq as usize).map_or(0, |slot| slot.load(Ordering::Relaxed));
        let first = sender != receiver
            && micros > 0
            && self.received.lock().unwrap_or_else(PoisonError::into_inner).insert(seq);
        if first {
            let at = self.epoch + Duration::from_micros(micros - 1);
            self.delivery.lock().unwrap_or_else(PoisonError::into_inner).record(at.elapsed(), Ok(()));
        }
    }
}

/// Rooms of `group_size`: user → room index, and each room's first member (its receiver).
fn rooms(options: &Options) -> (Vec<usize>, Vec<usize>) {
    let room_of: Vec<usize> = (0..options.users).map(|user| user / options.group_size).collect();
    let receivers: Vec<usize> = (0..options.users).step_by(options.group_size).collect();
    (room_of, receivers)
}

fn text(seq: Option<u64>, user: usize) -> String {
    let marker = seq.map_or_else(|| format!("u{user}"), |seq| format!("seq:{seq}:u{user}:"));
    format!("{marker} are we still on for the release review today? see you there soon")
}

pub async fn run(options: Options) -> anyhow::Result<String> {
    let url = std::env::var("SYNAPSE_URL").context(
        "SYNAPSE_URL is not set: start the peer first (loadtest/peers/synapse up && eval \"$(loadtest/peers/synapse env)\")",
    )?;
    let secret = std::env::var("SYNAPSE_SHARED_SECRET").context("SYNAPSE_SHARED_SECRET is not set")?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).timeout(Duration::from_secs(60)).build()?;
    let version: Value = http.get(format!("{url}/_synapse/admin/v1/server_version")).send().await?.json().await?;
    let synapse_version = version["server_version"].as_str().unwrap_or("unknown").to_owned();
    eprintln!("Synapse {synapse_version}: registering {} users", options.users);
    let synapse = synapse_side(&options, &http, &url, &secret).await?;
    eprintln!("ChatSDK: the same workload");
    let chatsdk = chatsdk_side(&options).await?;
    let report = Report {
        options: format!("{options:?}"),
        machine: crate::send_bench::machine(),
        synapse_version,
        throughput_ratio: chatsdk.closed_loop.per_second / synapse.closed_loop.per_second.max(1e-9),
        synapse,
        chatsdk,
    };
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(render(&report))
}

fn render(report: &Report) -> String {
    let (chatsdk, synapse) = (&report.chatsdk, &report.synapse);
    let runs: Vec<RunStats> = [synapse, chatsdk]
        .iter()
        .flat_map(|side| {
            [&side.closed_loop, &side.open_loop, &side.delivery]
                .into_iter()
                .map(|run| RunStats { label: format!("{}: {}", side.system, run.label), ..run.clone() })
        })
        .collect();
    let mut text = markdown(&runs);
    let ratio = |ours: f64, theirs: f64| if ours > 0.0 { theirs / ours } else { f64::NAN };
    let _ = writeln!(
        text,
        "\nSynapse {}: closed-loop throughput ChatSDK / Synapse = **{:.1}×**; at the same open-loop rate Synapse's send \
         p50 / p99 are {:.1}× / {:.1}× ChatSDK's and its send → delivery p50 / p99 {:.1}× / {:.1}×. Deliveries: \
         Synapse {} of {}, ChatSDK {} of {}.\nMachine: {}",
        report.synapse_version,
        report.throughput_ratio,
        ratio(chatsdk.open_loop.p50_ms, synapse.open_loop.p50_ms),
        ratio(chatsdk.open_loop.p99_ms, synapse.open_loop.p99_ms),
        ratio(chatsdk.delivery.p50_ms, synapse.delivery.p50_ms),
        ratio(chatsdk.delivery.p99_ms, synapse.delivery.p99_ms),
        synapse.deliveries_received,
        synapse.deliveries_expected,
        chatsdk.deliveries_received,
        chatsdk.deliveries_expected,
        report.machine
    );
    text
}

/// The shared-secret admin registration: returns the access token.
async fn register(http: &reqwest::Client, url: &str, secret: &str, name: &str) -> anyhow::Result<String> {
    let endpoint = format!("{url}/_synapse/admin/v1/register");
    let nonce: Value = http.get(&endpoint).send().await?.json().await?;
    let nonce = nonce["nonce"].as_str().context("no nonce")?.to_owned();
    let password = format!("pw-{name}");
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    for (index, part) in [nonce.as_str(), name, password.as_str(), "notadmin"].iter().enumerate() {
        if index > 0 {
            mac.update(b"\0");
        }
        mac.update(part.as_bytes());
    }
    let digest: String = mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    let body = json!({"nonce": nonce, "username": name, "password": password, "admin": false, "mac": digest});
    let response = http.post(&endpoint).json(&body).send().await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    if status.is_success() {
        return answer["access_token"].as_str().map(str::to_owned).context("no access token");
    }
    // Registered by an earlier run: log in instead.
    anyhow::ensure!(answer["errcode"] == "M_USER_IN_USE", "registering {name}: {status} {answer}");
    let login =
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": password});
    let answer: Value = http.post(format!("{url}/_matrix/client/v3/login")).json(&login).send().await?.json().await?;
    answer["access_token"].as_str().map(str::to_owned).with_context(|| format!("logging in {name}: {answer}"))
}

async fn matrix(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: &Value,
) -> Result<Value, String> {
    let response =
        http.request(method, url).bearer_auth(token).json(body).send().await.map_err(|_| "transport".to_owned())?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|_| format!("status {status}"))?;
    if status.is_success() { Ok(answer) } else { Err(answer["errcode"].as_str().unwrap_or("error").to_owned()) }
}

async fn synapse_side(options: &Options, http: &reqwest::Client, url: &str, secret: &str) -> anyhow::Result<Side> {
    use reqwest::Method;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut tokens = Vec::with_capacity(options.users);
    for user in 0..options.users {
        tokens.push(register(http, url, secret, &format!("lt{run}u{user}")).await?);
    }
    let (room_of, receivers) = rooms(options);
    eprintln!("Synapse: creating {} rooms", receivers.len());
    let mut room_ids = Vec::new();
    for creator in &receivers {
        let members: Vec<usize> = (*creator..(*creator + options.group_size).min(options.users)).collect();
        let invite: Vec<String> = members[1..].iter().map(|user| format!("@lt{run}u{user}:localhost")).collect();
        let body = json!({"preset": "private_chat", "name": format!("room {creator}"), "invite": invite});
        let created =
            matrix(http, Method::POST, format!("{url}/_matrix/client/v3/createRoom"), &tokens[*creator], &body)
                .await
                .map_err(anyhow::Error::msg)?;
        let room = created["room_id"].as_str().context("no room id")?.to_owned();
        let encoded: String = form_urlencoded::byte_serialize(room.as_bytes()).collect();
        for member in &members[1..] {
            let join = format!("{url}/_matrix/client/v3/join/{encoded}");
            matrix(http, Method::POST, join, &tokens[*member], &json!({})).await.map_err(anyhow::Error::msg)?;
        }
        room_ids.push(encoded);
    }
    let (tokens, room_ids, room_of) = (Arc::new(tokens), Arc::new(room_ids), Arc::new(room_of));
    let txn = Arc::new(AtomicU64::new(0));
    let send = {
        let (http, url, tokens, room_ids, room_of, txn) = (
            http.clone(),
            url.to_owned(),
            Arc::clone(&tokens),
            Arc::clone(&room_ids),
            Arc::clone(&room_of),
            Arc::clone(&txn),
        );
        move |user: usize, seq: Option<u64>| {
            let id = txn.fetch_add(1, Ordering::Relaxed);
            let endpoint =
                format!("{url}/_matrix/client/v3/rooms/{}/send/m.room.message/lt{run}t{id}", room_ids[room_of[user]]);
            let (http, token) = (http.clone(), tokens[user].clone());
            async move {
                let body = json!({"msgtype": "m.text", "body": text(seq, user)});
                matrix(&http, Method::PUT, endpoint, &token, &body).await.map(|_| ())
            }
        }
    };
    let closed_loop = closed_phase(send.clone(), options).await;

    // Receivers: one member of each room long-polls /sync from now on.
    let probe = Arc::new(Probe::new((options.rate * options.seconds as f64 * 1.2) as usize + 100));
    let mut listeners = JoinSet::new();
    for receiver in receivers.iter().copied() {
        let (http, url, token, probe) = (http.clone(), url.to_owned(), tokens[receiver].clone(), Arc::clone(&probe));
        let filter = r#"{"room":{"timeline":{"limit":100}}}"#;
        let filter: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let initial = format!("{url}/_matrix/client/v3/sync?timeout=0&filter={filter}");
        let first = matrix(&http, Method::GET, initial, &token, &Value::Null).await.map_err(anyhow::Error::msg)?;
        let mut since = first["next_batch"].as_str().context("no next_batch")?.to_owned();
        listeners.spawn(async move {
            loop {
                let poll = format!("{url}/_matrix/client/v3/sync?timeout=30000&since={since}&filter={filter}");
                let Ok(page) = matrix(&http, Method::GET, poll, &token, &Value::Null).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                for room in page["rooms"]["join"].as_object().into_iter().flat_map(|rooms| rooms.values()) {
                    for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                        if event["type"] == "m.room.message" {
                            probe.receipt(event["content"]["body"].as_str().unwrap_or_default(), receiver);
                        }
                    }
                }
                if let Some(next) = page["next_batch"].as_str() {
                    since = next.to_owned();
                }
            }
        });
    }
    let open_loop = open_phase(send, &probe, options).await;
    let side = finish("Synapse", closed_loop, open_loop, &probe, options).await;
    listeners.abort_all();
    Ok(side)
}

/// The sender of message `seq` (or of an unmarked one) as `user`.
trait Sender: Fn(usize, Option<u64>) -> Self::Sending + Clone + Send + 'static {
    type Sending: Future<Output = Result<(), String>> + Send + 'static;
}

impl<F, Fut> Sender for F
where
    F: Fn(usize, Option<u64>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    type Sending = Fut;
}

/// The user sending the `i`-th message of a phase.
fn sender_of(i: u64, options: &Options) -> usize {
    (i as usize * 7919) % options.users
}

/// Phase 1: `workers` senders back to back (after a 2 s warm-up): the sustained throughput.
async fn closed_phase(send: impl Sender, options: &Options) -> RunStats {
    let closed = {
        let options = options.clone();
        move |i: u64| send(sender_of(i, &options), None)
    };
    closed_loop("warm-up", options.workers, Duration::from_secs(2), closed.clone()).await;
    closed_loop("send", options.workers, Duration::from_secs(options.seconds), closed).await
}

/// Phase 2: marked messages at `rate` (open loop), each scheduled in `probe` for the receivers.
async fn open_phase(send: impl Sender, probe: &Arc<Probe>, options: &Options) -> RunStats {
    let open = {
        let (probe, options) = (Arc::clone(probe), options.clone());
        move |i: u64| {
            probe.schedule(i);
            let (sending, probe) = (send(sender_of(i, &options), Some(i)), Arc::clone(&probe));
            async move {
                sending.await?;
                probe.accepted.lock().unwrap_or_else(PoisonError::into_inner).push(i);
                Ok(())
            }
        }
    };
    fixed_rate("send", options.rate, Duration::from_secs(options.seconds), 10_000, open).await
}

/// Waits (bounded) for the expected deliveries and summarizes one side.
async fn finish(system: &str, closed_loop: RunStats, open_loop: RunStats, probe: &Probe, options: &Options) -> Side {
    let (room_of, receivers) = rooms(options);
    let expected: u64 = {
        let accepted = probe.accepted.lock().unwrap_or_else(PoisonError::into_inner);
        accepted
            .iter()
            .filter(|seq| {
                let sender = sender_of(**seq, options);
                receivers[room_of[sender]] != sender
            })
            .count() as u64
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let received = || probe.received.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
    while received() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window = Duration::from_secs_f64(open_loop.seconds);
    let delivery = std::mem::take(&mut *probe.delivery.lock().unwrap_or_else(PoisonError::into_inner));
    Side {
        system: system.to_owned(),
        closed_loop,
        open_loop,
        delivery: delivery.finish("send → delivery", "open loop", window),
        deliveries_expected: expected,
        deliveries_received: received(),
    }
}

async fn chatsdk_side(options: &Options) -> anyhow::Result<Side> {
    let stack = Stack::from_env()?;
    let deployment = Deployment::start(&stack, &options.bin_dir, options.partitions, true).await?;
    let outcome = chatsdk_workload(&stack, options, &deployment).await;
    deployment.stop(&stack, outcome.is_err()).await;
    outcome
}

async fn chatsdk_workload(stack: &Stack, options: &Options, deployment: &Deployment) -> anyhow::Result<Side> {
    let query = deployment.query().context("query node")?;
    let app = create_app(&deployment.api().url, &deployment.admin_token, &"peer".parse()?).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).timeout(Duration::from_secs(60)).build()?;
    let server = Client::with_http(
        http.clone(),
        &deployment.api().url,
        Credentials::Server { api_key: app.api_key.clone(), api_secret: app.api_secret.clone() },
    );
    let users: Vec<UserId> = (0..options.users).map(|user| format!("u{user}").parse()).collect::<Result<_, _>>()?;
    let (room_of, receivers) = rooms(options);
    let mut channels: Vec<ChannelId> = Vec::new();
    for creator in &receivers {
        let members = (*creator..(*creator + options.group_size).min(options.users))
            .map(|user| NewMember { user_id: users[user].clone(), role: None })
            .collect();
        let request = CreateChannel { members, ..CreateChannel::new(ChannelType::Group) };
        channels.push(server.create_channel(&request).await?.channel_id);
    }
    deployment.wait_caught_up(stack, options.partitions).await?;
    let now = chrono::Utc::now().timestamp();
    let tokens: Vec<String> =
        users.iter().map(|user| mint(&app.api_secret, &Claims::new(user, now, 24 * 3600))).collect();
    let clients: Arc<Vec<Client>> = Arc::new(
        tokens
            .iter()
            .map(|token| {
                let credentials = Credentials::User { api_key: app.api_key.clone(), token: token.clone() };
                Client::with_http(http.clone(), &deployment.api().url, credentials).without_session_consistency()
            })
            .collect(),
    );
    let (channels, room_of) = (Arc::new(channels), Arc::new(room_of));
    let key = Arc::new(AtomicU64::new(0));
    let send = {
        let (clients, channels, room_of, key) =
            (Arc::clone(&clients), Arc::clone(&channels), Arc::clone(&room_of), Arc::clone(&key));
        move |user: usize, seq: Option<u64>| {
            let (client, channel) = (clients[user].clone(), channels[room_of[user]].clone());
            let request = SendMessage {
                client_msg_id: Some(format!("k{}", key.fetch_add(1, Ordering::Relaxed))),
                ..SendMessage::text(text(seq, user))
            };
            async move { client.send_message(&channel, &request).await.map(|_| ()).map_err(|error| error.to_string()) }
        }
    };
    let closed_loop = closed_phase(send.clone(), options).await;
    deployment.wait_caught_up(stack, options.partitions).await?;

    let probe = Arc::new(Probe::new((options.rate * options.seconds as f64 * 1.2) as usize + 100));
    let mut listeners = JoinSet::new();
    for receiver in receivers.iter().copied() {
        let url = format!(
            "{}/v1/ws?api_key={}&auth={}",
            query.url.replace("http://", "ws://"),
            app.api_key,
            tokens[receiver]
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await?;
        let probe = Arc::clone(&probe);
        listeners.spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                if let Message::Text(frame) = frame
                    && let Ok(frame) = serde_json::from_str::<Value>(frame.as_str())
                    && frame["event"]["type"] == "message.sent"
                {
                    probe.receipt(frame["event"]["payload"]["text"].as_str().unwrap_or_default(), receiver);
                }
            }
        });
    }
    let open_loop = open_phase(send, &probe, options).await;
    let side = finish("ChatSDK", closed_loop, open_loop, &probe, options).await;
    listeners.abort_all();
    Ok(side)
}
