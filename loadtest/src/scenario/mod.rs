//! `loadtest scenario`: the seed's load scenarios (steady, spike, heavy, upload storm), scaled to one
//! machine, against release builds of the services in the chosen topology — simulated users that connect
//! a WebSocket, open their channel list and history, send (with `client_msg_id`, sometimes retried), react,
//! edit, mark read, type, search, sync and upload; latencies in HDR histograms, a timeline for the plots,
//! and a correctness verdict that fails the run on any violation (see `verify`).

pub mod config;
mod metrics;
mod report;
mod session;
mod verify;
mod world;

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use chatsdk_client::api::{CompleteUpload, CreateUpload, EditMessage, MarkRead, SendMessage};
use chatsdk_client::create_app;
use chatsdk_client::position::Position;
use chatsdk_client::views::{LoggedEvent, MessageView};
use chatsdk_schemas::ids::MessageId;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use config::{Options, Scenario};
use metrics::{Count, Gauges, Metrics};
use report::{Kill, ProcessUsage, Report, Storm};
pub use session::parse_marker;
use session::{Chain, Shared, Stop};
use world::{Kind, World};

use crate::measure::Random;
use crate::stack::{Deployment, Process, Stack, file_limit, usage};

/// Words of the simulated messages (and of the searches).
const WORDS: [&str; 24] = [
    "hello", "deploy", "meeting", "lunch", "review", "release", "tomorrow", "today", "thanks", "please", "fixed",
    "merged", "build", "server", "coffee", "weekend", "ticket", "customer", "design", "launch", "call", "notes",
    "draft", "update",
];

/// Non-send actions per send, at `other_actions = 1`.
const MIX: [(Action, f64); 8] = [
    (Action::React, 0.3),
    (Action::MarkRead, 0.5),
    (Action::Typing, 0.5),
    (Action::History, 0.2),
    (Action::Sync, 0.1),
    (Action::Search, 0.05),
    (Action::Edit, 0.05),
    (Action::Reconnect, 0.05),
];

/// The share of sends retried with the same `client_msg_id` (a client that lost the acknowledgement).
const RETRY_SHARE: f64 = 0.02;
/// Projection lag is sampled on at most this many sends per second (each sample polls a read).
const LAG_SAMPLES_PER_SECOND: f64 = 40.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Send,
    React,
    MarkRead,
    Typing,
    History,
    Sync,
    Search,
    Edit,
    /// The socket drops and resumes with its token (measures connect; exercises resume under load).
    Reconnect,
}

impl Action {
    /// The operation its latency and errors are recorded under.
    fn kind(self) -> &'static str {
        match self {
            Action::Send => metrics::SEND,
            Action::React => metrics::REACT,
            Action::MarkRead => metrics::MARK_READ,
            Action::History => metrics::HISTORY,
            Action::Sync => metrics::SYNC,
            Action::Search => metrics::SEARCH,
            Action::Edit => metrics::EDIT,
            Action::Typing | Action::Reconnect => metrics::CONNECT,
        }
    }
}

/// The most actions in flight before the scheduler records `overloaded` instead of starting more.
const MAX_IN_FLIGHT: usize = 20_000;

/// A running session's handles.
#[derive(Debug)]
struct SessionHandle {
    stop: watch::Sender<Stop>,
    join: JoinHandle<Vec<Chain>>,
}

/// Every session of the run: the live one per user, and those of users who left and came back.
#[derive(Debug, Default)]
struct Sessions {
    live: Vec<Option<SessionHandle>>,
    retired: Vec<SessionHandle>,
}

/// Everything the actions share.
#[derive(Debug)]
struct Run {
    shared: Arc<Shared>,
    scenario: Scenario,
    sequence: AtomicU64,
    acknowledged: Mutex<Vec<(usize, uuid::Uuid)>>,
    /// Per channel: its latest acknowledged message and where it is (what users react to).
    latest: Vec<Mutex<Option<(MessageId, Position)>>>,
    /// Per user: their latest acknowledged message (what they edit).
    own: Vec<Mutex<Option<(usize, MessageId, Position)>>>,
    /// Sync tokens from before the run, of the users whose sync is checked.
    sync_tokens: BTreeMap<usize, String>,
    typing: Mutex<HashMap<usize, mpsc::Sender<String>>>,
    lag_every: u64,
    /// Projection-lag probes in flight (bounded).
    lag_probes: Semaphore,
    /// The most users connected at once (users `[0, peak)` each had a session).
    peak_connected: AtomicUsize,
    /// Actions in flight beyond which the scheduler records `overloaded` (bounded by the open-file limit:
    /// each may hold a connection).
    max_in_flight: usize,
    retry_mismatches: AtomicU64,
}

impl Run {
    fn world(&self) -> &World {
        &self.shared.world
    }

    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}

pub async fn run(options: Options) -> anyhow::Result<String> {
    let scenario = &options.scenario;
    let limit = file_limit();
    let sockets = scenario.users as u64 + 2_000;
    anyhow::ensure!(
        sockets < limit,
        "{} users need more open files than this process's limit of {limit}: run `ulimit -n \"$(ulimit -Hn)\"` first \
         or pass fewer --users",
        scenario.users
    );
    let stack = Stack::from_env()?;
    let mut extra = vec![
        // The load measures the server, not the app-wide rate limiter.
        ("CHATSDK_LIMITS__APP_RATE", "1000000".to_owned()),
        ("CHATSDK_LIMITS__APP_BURST", "1000000".to_owned()),
    ];
    if scenario.topology.projector > 1 {
        // A killed projector's partitions move to the survivor after the session timeout (30 s by default).
        extra.push(("CHATSDK_KAFKA__SESSION_TIMEOUT_MS", "10000".to_owned()));
        extra.push(("CHATSDK_HTTP__DRAIN_TIMEOUT_MS", "5000".to_owned()));
    }
    eprintln!("starting {} (topology {})", scenario.name, scenario.topology);
    let mut deployment =
        Deployment::start_topology(&stack, &options.bin_dir, scenario.partitions, scenario.topology, &extra).await?;
    let outcome = drive(&stack, &options, &mut deployment).await;
    let failed = !matches!(&outcome, Ok(report) if report.verdict.violations() == 0);
    deployment.stop(&stack, failed).await;
    let report = outcome?;
    let out = report::write(&report, &options)?;
    let summary = report::markdown(&report);
    anyhow::ensure!(
        report.verdict.violations() == 0,
        "{summary}\ncorrectness violated under load ({} violations; report in {})",
        report.verdict.violations(),
        out.display()
    );
    Ok(format!("{summary}\nReport, JSON and plots: {}\n", out.display()))
}

async fn drive(stack: &Stack, options: &Options, deployment: &mut Deployment) -> anyhow::Result<Report> {
    let scenario = options.scenario.clone();
    let started_at = chrono::Utc::now();
    let app = create_app(&deployment.api().url, &deployment.admin_token, &"loadtest".parse()?).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut world = World::new(
        http,
        deployment.apis.iter().map(|process| process.url.clone()).collect(),
        deployment.queries.iter().map(|process| process.url.clone()).collect(),
        app.api_key,
        app.api_secret,
        scenario.shape(),
    )?;
    eprintln!("creating {} users' channels", scenario.users);
    world.populate(scenario.shape()).await?;
    deployment.wait_caught_up(stack, scenario.partitions).await?;

    // Sync tokens from before any message, for the users whose sync is compared with history.
    let step = (scenario.users / scenario.sync_checks.max(1)).max(1);
    let mut sync_tokens = BTreeMap::new();
    for user in (0..scenario.users).step_by(step).take(scenario.sync_checks) {
        let page = world.read(user, |client| async move { client.sync(None, Some(1)).await }).await;
        sync_tokens.insert(user, page.map_err(anyhow::Error::msg)?.next_token);
    }

    let peak_rate = scenario.peak_rate();
    let capacity = (peak_rate * scenario.seconds as f64 * 1.5) as usize + scenario.uploads + 10_000;
    let metrics = Arc::new(Metrics::new(Duration::from_secs(scenario.window_secs)));
    let channels = world.channels.len();
    let shared = Arc::new(Shared {
        world: Arc::new(world),
        metrics: Arc::clone(&metrics),
        scheduled: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        epoch: Instant::now(),
    });
    let run = Arc::new(Run {
        shared: Arc::clone(&shared),
        sequence: AtomicU64::new(0),
        acknowledged: Mutex::default(),
        latest: (0..channels).map(|_| Mutex::new(None)).collect(),
        own: (0..scenario.users).map(|_| Mutex::new(None)).collect(),
        sync_tokens,
        typing: Mutex::default(),
        lag_every: (peak_rate / LAG_SAMPLES_PER_SECOND).ceil().max(1.0) as u64,
        lag_probes: Semaphore::new(20),
        peak_connected: AtomicUsize::new(0),
        max_in_flight: (file_limit().saturating_sub(scenario.users as u64 + 2_000) as usize).clamp(100, MAX_IN_FLIGHT),
        retry_mismatches: AtomicU64::new(0),
        scenario: scenario.clone(),
    });

    // Users connect before the measured run (spike: the base share; the rest join during the ramp).
    let mut sessions = Sessions { live: (0..scenario.users).map(|_| None).collect(), retired: Vec::new() };
    let initial = scenario.connected_at(0.0);
    eprintln!("connecting {initial} users");
    connect_users(&run, &mut sessions, initial).await?;

    // The measured run.
    let began = metrics.begin();
    let window = Duration::from_secs(scenario.seconds);
    let pids: Vec<(String, u32)> =
        deployment.processes().filter_map(|process| Some((process.name.clone(), process.pid()?))).collect();
    let sampling = Arc::new(AtomicU64::new(1));
    let sampler = tokio::spawn(sample(Arc::clone(&run), pids.clone(), Arc::clone(&sampling)));
    let progress = tokio::spawn(progress(Arc::clone(&run), began, window, Arc::clone(&sampling)));
    let storm = if scenario.uploads > 0 {
        let api_pids: Vec<u32> = deployment.apis.iter().filter_map(|process| process.pid()).collect();
        Some(tokio::spawn(upload_storm(Arc::clone(&run), began + window.mul_f64(0.1), api_pids)))
    } else {
        None
    };
    // Kills and the spike's ramp run beside the scheduler, so their waits never delay scheduled actions.
    let victims: Vec<(f64, Process)> = if scenario.kill {
        [(0.4, deployment.apis.pop()), (0.5, deployment.projectors.pop()), (0.6, deployment.queries.pop())]
            .into_iter()
            .filter_map(|(share, process)| Some((share, process?)))
            .collect()
    } else {
        Vec::new()
    };
    let killer = tokio::spawn(kill_on_time(victims, began, window));
    let ramp = tokio::spawn(ramp(Arc::clone(&run), sessions, began, window));
    let cpu_at_begin: HashMap<u32, f64> = pids.iter().map(|(_, pid)| (*pid, usage(*pid).cpu_seconds)).collect();
    let mut actions = JoinSet::new();
    let mut random = Random(0x5CE7_A210);
    let mut next = began;
    let weight: f64 = 1.0 + MIX.iter().map(|(_, weight)| weight).sum::<f64>() * scenario.other_actions;
    while next < began + window {
        let connected = run.world().connected.load(Ordering::Relaxed);
        let rate = scenario.message_rate(connected) * weight;
        if rate <= 0.0 {
            next += Duration::from_millis(100);
            tokio::time::sleep_until(next.into()).await;
            continue;
        }
        tokio::time::sleep_until(next.into()).await;
        while actions.try_join_next().is_some() {}
        let action = pick_action(&mut random, weight, scenario.other_actions);
        if action == Action::Send {
            metrics.count(Count::Offered, 1);
        }
        if let Some(user) = pick_user(&run, &mut random, connected, action == Action::Sync) {
            if actions.len() < run.max_in_flight {
                let seed = random.next();
                actions.spawn(act(Arc::clone(&run), action, user, next, seed));
            } else {
                metrics.error(action.kind(), format!("overloaded ({} actions in flight)", run.max_in_flight));
            }
        }
        next += Duration::from_secs_f64(1.0 / rate);
    }
    let window_end = Instant::now();
    let cpu_at_end: HashMap<u32, f64> = pids.iter().map(|(_, pid)| (*pid, usage(*pid).cpu_seconds)).collect();
    eprintln!("\nrun over; waiting for actions in flight, the projectors and every socket to catch up");
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while !actions.is_empty() && Instant::now() < drain_deadline {
        let _ = tokio::time::timeout(Duration::from_secs(1), actions.join_next()).await;
    }
    if !actions.is_empty() {
        metrics.error(metrics::SEND, format!("abandoned after 60 s ({} actions of all kinds)", actions.len()));
    }
    actions.abort_all();
    let storm = match storm {
        Some(storm) => Some(storm.await.context("upload storm task")?),
        None => None,
    };
    let (victims, kills) = killer.await.context("kill task")?;
    for process in victims {
        let processes = if process.name.starts_with("command-api") {
            &mut deployment.apis
        } else if process.name.starts_with("projector") {
            &mut deployment.projectors
        } else {
            &mut deployment.queries
        };
        processes.push(process);
    }
    let sessions = ramp.await.context("ramp task")??;
    let catch_up = deployment.wait_caught_up(stack, scenario.partitions).await?;
    sampling.store(0, Ordering::Relaxed);
    let _ = progress.await;
    let _ = sampler.await;
    let elapsed = window_end.duration_since(began);

    // Drain: every session reads until its stream covers the log's end, then closes. Heartbeats (every 15 s
    // of silence, checked every 15 s) bring the last token to idle sockets within 30 s.
    let ends = chatsdk_search::consumer::log_ends(&stack.kafka, &deployment.topic).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut chains = Vec::new();
    let handles: Vec<SessionHandle> = sessions.live.into_iter().flatten().chain(sessions.retired).collect();
    for handle in &handles {
        let _ = handle.stop.send(Stop::Drain(ends.clone(), deadline));
    }
    for handle in handles {
        chains.extend(handle.join.await.context("session task")?);
    }

    eprintln!("checking correctness");
    let world = run.world();
    let histories = histories(world).await?;
    let mut syncs = Vec::new();
    for (user, token) in &run.sync_tokens {
        syncs.push((*user, sync_all(world, *user, token).await?));
    }
    let acknowledged = std::mem::take(&mut *run.acknowledged.lock().unwrap_or_else(PoisonError::into_inner));
    let channel_ids: Vec<String> = world.channels.iter().map(|channel| channel.id.to_string()).collect();
    let mut verdict = verify::judge(&verify::Evidence {
        histories: &histories,
        memberships: &world.memberships,
        acknowledged: &acknowledged,
        chains: &chains,
        syncs: &syncs,
        channel_ids: &channel_ids,
        connected_users: run.peak_connected.load(Ordering::Relaxed),
    });
    let retry_mismatches = run.retry_mismatches.load(Ordering::Relaxed);
    if retry_mismatches > 0 {
        verdict.duplicate_message_ids += retry_mismatches as usize;
        verdict.examples.push(format!("{retry_mismatches} retried sends got another message_id"));
    }

    let baselines =
        if options.baselines { Some(report::baselines(stack, deployment, scenario.partitions).await?) } else { None };
    // CPU during the measured run (a killed process: until its kill); peak RSS over its life.
    let processes = pids
        .iter()
        .map(|(name, pid)| {
            let killed = kills.iter().find(|kill: &&Kill| kill.process == *name);
            let end = killed.map_or_else(|| cpu_at_end.get(pid).copied().unwrap_or(0.0), |kill| kill.cpu_seconds);
            let begin = cpu_at_begin.get(pid).copied().unwrap_or(0.0);
            let peak_rss_mib = killed.map_or_else(|| usage(*pid).peak_rss_mib, |kill| kill.peak_rss_mib);
            ProcessUsage { name: name.clone(), cpu_seconds: end - begin, peak_rss_mib, killed: killed.is_some() }
        })
        .collect();
    // Rates over the run's own windows; what completed after it (a saturated run's backlog) apart.
    let windows = scenario.seconds.div_ceil(scenario.window_secs) as usize;
    let run_seconds = scenario.seconds as f64;
    let (accepted, accepted_after) = metrics.sum(Count::Accepted, windows);
    let (delivered, _) = metrics.sum(Count::Delivered, windows);
    let (typing, _) = metrics.sum(Count::Typing, usize::MAX);
    let (lag_unsampled, _) = metrics.sum(Count::LagUnsampled, usize::MAX);
    Ok(Report {
        command: options.command_line.clone(),
        scenario,
        machine: crate::send_bench::machine(),
        commit: report::commit(),
        started_at,
        seconds: elapsed.as_secs_f64(),
        accepted_per_second: accepted as f64 / run_seconds,
        accepted_after_run: accepted_after,
        deliveries_per_second: delivered as f64 / run_seconds,
        lag_unsampled,
        typing_frames: typing,
        projector_catch_up_seconds: catch_up.as_secs_f64(),
        totals: metrics.totals(elapsed),
        timeline: metrics.timeline(windows),
        processes,
        kills,
        storm,
        verdict,
        baselines,
    })
}

/// Starts or stops sessions until users `[0, target)` are connected.
async fn connect_users(run: &Arc<Run>, sessions: &mut Sessions, target: usize) -> anyhow::Result<()> {
    let world = run.world();
    let mut connected = world.connected.load(Ordering::Relaxed);
    // Joining users log in in batches of 200, each batch waited for (30 s at most), like a login wave.
    while connected < target {
        let batch = (target - connected).min(200);
        let mut waits = Vec::new();
        for user in connected..connected + batch {
            let (stop, stop_rx) = watch::channel(Stop::Run);
            let (typing, typing_rx) = mpsc::channel(8);
            let (up, up_rx) = tokio::sync::oneshot::channel();
            let join = tokio::spawn(session::run(Arc::clone(&run.shared), user, stop_rx, typing_rx, up));
            run.typing.lock().unwrap_or_else(PoisonError::into_inner).insert(user, typing);
            if let Some(old) = sessions.live[user].replace(SessionHandle { stop, join }) {
                sessions.retired.push(old);
            }
            let run = Arc::clone(run);
            // A login: the socket is live, then the app loads its channel list and first channel.
            waits.push(tokio::spawn(async move {
                if up_rx.await.is_ok() {
                    open_app(run, user).await;
                }
            }));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for wait in waits {
            let _ = tokio::time::timeout_at(deadline, wait).await;
        }
        connected += batch;
        world.connected.store(connected, Ordering::Relaxed);
        run.peak_connected.fetch_max(connected, Ordering::Relaxed);
    }
    // Leaving users close their sockets (the newest first).
    while connected > target {
        connected -= 1;
        world.connected.store(connected, Ordering::Relaxed);
        if let Some(handle) = &sessions.live[connected] {
            let _ = handle.stop.send(Stop::Leave);
            run.typing.lock().unwrap_or_else(PoisonError::into_inner).remove(&connected);
        }
    }
    Ok(())
}

/// What a client does when it opens: its channel list, then the first channel's latest messages.
async fn open_app(run: Arc<Run>, user: usize) {
    let world = run.world();
    let began = Instant::now();
    match world.read(user, |client| async move { client.channels(&[("limit", "30")]).await }).await {
        Ok(_) => run.metrics().latency(metrics::CHANNELS, began.elapsed()),
        Err(code) => run.metrics().error(metrics::CHANNELS, code),
    }
    if let Some(channel) = world.memberships[user].first() {
        let began = Instant::now();
        let id = world.channels[*channel].id.clone();
        let result = world.read(user, |client| {
            let id = id.clone();
            async move { client.history(&id, &[("limit", "50")]).await }
        });
        match result.await {
            Ok(_) => run.metrics().latency(metrics::HISTORY, began.elapsed()),
            Err(code) => run.metrics().error(metrics::HISTORY, code),
        }
    }
}

fn pick_action(random: &mut Random, weight: f64, other_actions: f64) -> Action {
    let mut draw = random.unit() * weight - 1.0;
    if draw < 0.0 {
        return Action::Send;
    }
    for (action, share) in MIX {
        draw -= share * other_actions;
        if draw < 0.0 {
            return action;
        }
    }
    Action::Send
}

/// A connected user who does `action`: an active one for writes, one whose sync is checked for syncs.
fn pick_user(run: &Run, random: &mut Random, connected: usize, sync: bool) -> Option<usize> {
    if connected == 0 {
        return None;
    }
    if sync {
        let tokens: Vec<usize> = run.sync_tokens.range(..connected).map(|(user, _)| *user).collect();
        return (!tokens.is_empty()).then(|| tokens[random.below(tokens.len())]);
    }
    (0..64).map(|_| random.below(connected)).find(|user| run.world().is_active(*user))
}

/// A message text: the marker the receivers read, then a few words.
fn message_text(seq: u64, user: usize, random: &mut Random) -> String {
    let mut text = format!("seq:{seq}:u{user}:");
    for _ in 0..(6 + random.below(14)) {
        text.push(' ');
        text.push_str(WORDS[random.below(WORDS.len())]);
    }
    text
}

/// A channel of `user` for a message: half the time their group, a third a DM, the rest a public channel.
fn pick_channel(world: &World, user: usize, random: &mut Random) -> Option<usize> {
    let channels = &world.memberships[user];
    let draw = random.unit();
    let kind = if draw < 0.5 {
        Kind::Group
    } else if draw < 0.85 {
        Kind::Dm
    } else {
        Kind::Public
    };
    channels
        .iter()
        .copied()
        .find(|channel| world.channels[*channel].kind == kind)
        .or_else(|| channels.get(random.below(channels.len().max(1))).copied())
}

async fn act(run: Arc<Run>, action: Action, user: usize, scheduled: Instant, seed: u64) {
    let mut random = Random(seed);
    let world = run.world();
    let Some(channel) = pick_channel(world, user, &mut random) else { return };
    let id = world.channels[channel].id.clone();
    let metrics = run.metrics();
    match action {
        Action::Send => send(&run, user, channel, scheduled, &mut random).await,
        Action::React => {
            let latest = *run.latest[channel].lock().unwrap_or_else(PoisonError::into_inner);
            let Some((message, position)) = latest else { return };
            let emoji = ["👍", "❤️", "😂", "🎉", "👀", "🙏"][random.below(6)].to_owned();
            let result = world.command_after(user, Some(position), |client| {
                let (id, emoji) = (id.clone(), emoji.clone());
                async move { client.add_reaction(&id, &message, &emoji).await }
            });
            record(metrics, metrics::REACT, scheduled, result.await.map(|_| ()));
        }
        Action::Edit => {
            let own = *run.own[user].lock().unwrap_or_else(PoisonError::into_inner);
            let Some((channel, message, position)) = own else { return };
            let id = world.channels[channel].id.clone();
            let text = format!("(edited by u{user}) {}", WORDS[random.below(WORDS.len())]);
            let result = world.command_after(user, Some(position), |client| {
                let (id, text) = (id.clone(), text.clone());
                async move { client.edit_message(&id, &message, &EditMessage { text, mentions: Vec::new() }).await }
            });
            record(metrics, metrics::EDIT, scheduled, result.await.map(|_| ()));
        }
        Action::MarkRead => {
            let result = world.command(user, |client| {
                let id = id.clone();
                async move { client.mark_read(&id, &MarkRead::default()).await }
            });
            record(metrics, metrics::MARK_READ, scheduled, result.await.map(|_| ()));
        }
        Action::Typing | Action::Reconnect => {
            let sender = run.typing.lock().unwrap_or_else(PoisonError::into_inner).get(&user).cloned();
            if let Some(sender) = sender {
                let frame = if action == Action::Typing {
                    format!(r#"{{"type":"typing_start","channel_id":"{id}"}}"#)
                } else {
                    session::RECONNECT.to_owned()
                };
                let _ = sender.try_send(frame);
            }
        }
        Action::History => {
            let result = world.read(user, |client| {
                let id = id.clone();
                async move { client.history(&id, &[("limit", "50")]).await }
            });
            record(metrics, metrics::HISTORY, scheduled, result.await.map(|_| ()));
        }
        Action::Sync => {
            let Some(token) = run.sync_tokens.get(&user) else { return };
            let result = world.read(user, |client| async move { client.sync(Some(token), Some(100)).await });
            record(metrics, metrics::SYNC, scheduled, result.await.map(|_| ()));
        }
        Action::Search => {
            let word = WORDS[random.below(WORDS.len())];
            let result = world.read(user, |client| async move { client.search(word, &[("limit", "20")]).await });
            record(metrics, metrics::SEARCH, scheduled, result.await.map(|_| ()));
        }
    }
}

fn record(metrics: &Metrics, kind: &'static str, scheduled: Instant, result: Result<(), String>) {
    match result {
        Ok(()) => metrics.latency(kind, scheduled.elapsed()),
        Err(code) => metrics.error(kind, code),
    }
}

async fn send(run: &Arc<Run>, user: usize, channel: usize, scheduled: Instant, random: &mut Random) {
    let world = run.world();
    let metrics = run.metrics();
    let seq = run.sequence.fetch_add(1, Ordering::Relaxed);
    run.shared.schedule(seq, scheduled);
    let request =
        SendMessage { client_msg_id: Some(format!("m{seq}")), ..SendMessage::text(message_text(seq, user, random)) };
    let id = world.channels[channel].id.clone();
    let send_once = || {
        world.command(user, |client| {
            let (id, request) = (id.clone(), request.clone());
            async move { client.send_message(&id, &request).await }
        })
    };
    let accepted = match send_once().await {
        Ok(accepted) => accepted,
        Err(code) => {
            metrics.error(metrics::SEND, code);
            return;
        }
    };
    let acknowledged_at = Instant::now();
    metrics.latency(metrics::SEND, scheduled.elapsed());
    metrics.count(Count::Accepted, 1);
    let Some(message) = accepted.message_id else { return };
    run.acknowledged.lock().unwrap_or_else(PoisonError::into_inner).push((channel, *message.as_uuid()));
    *run.latest[channel].lock().unwrap_or_else(PoisonError::into_inner) = Some((message, accepted.position));
    *run.own[user].lock().unwrap_or_else(PoisonError::into_inner) = Some((channel, message, accepted.position));
    // A client that lost the acknowledgement sends again: same id, nothing delivered twice.
    if random.unit() < RETRY_SHARE
        && let Ok(again) = send_once().await
        && again.message_id != Some(message)
    {
        run.retry_mismatches.fetch_add(1, Ordering::Relaxed);
    }
    if seq.is_multiple_of(run.lag_every) {
        projection_lag(run, user, channel, message, acknowledged_at).await;
    }
}

/// Polls the message's read (no `min_position`) until it is visible: the projection lag after the 202.
/// Polls every 5 ms, backing off to 50 ms as the lag grows (so a lagging system is not also flooded with
/// polls; the resolution is 5 ms below 20 ms of lag, 50 ms above ~300 ms), at most 20 probes at once.
async fn projection_lag(run: &Arc<Run>, user: usize, channel: usize, message: MessageId, acknowledged: Instant) {
    let Some(_probe) = run.lag_probes.try_acquire().ok() else {
        run.metrics().count(Count::LagUnsampled, 1);
        return;
    };
    let world = run.world();
    let id = world.channels[channel].id.clone();
    let deadline = acknowledged + Duration::from_secs(120);
    let mut pause = Duration::from_millis(5);
    loop {
        let result = world.read(user, |client| {
            let id = id.clone();
            async move { client.message(&id, &message).await }
        });
        match result.await {
            Ok(_) => {
                run.metrics().latency(metrics::PROJECTION, acknowledged.elapsed());
                return;
            }
            Err(code) if Instant::now() < deadline && (code == "message_not_found" || code == "not_found") => {
                tokio::time::sleep(pause).await;
                pause = (pause * 3 / 2).min(Duration::from_millis(50));
            }
            Err(code) => {
                run.metrics().error(metrics::PROJECTION, code);
                return;
            }
        }
    }
}

/// Kills each victim (SIGKILL, as a crash) at its share of the run; gives them back with what happened.
async fn kill_on_time(victims: Vec<(f64, Process)>, began: Instant, window: Duration) -> (Vec<Process>, Vec<Kill>) {
    let mut kills = Vec::new();
    let mut killed = Vec::new();
    for (share, mut process) in victims {
        tokio::time::sleep_until((began + window.mul_f64(share)).into()).await;
        // Its usage up to the kill (a dead process has no /proc entry).
        let before = process.pid().map(usage).unwrap_or_default();
        let at_seconds = began.elapsed().as_secs_f64();
        process.kill().await;
        eprintln!("\nkilled {} (SIGKILL) at {at_seconds:.0} s", process.name);
        kills.push(Kill {
            process: process.name.clone(),
            at_seconds,
            cpu_seconds: before.cpu_seconds,
            peak_rss_mib: before.peak_rss_mib,
        });
        killed.push(process);
    }
    (killed, kills)
}

/// Moves the connected population towards the scenario's plan four times a second until the run ends.
async fn ramp(run: Arc<Run>, mut sessions: Sessions, began: Instant, window: Duration) -> anyhow::Result<Sessions> {
    while began.elapsed() < window {
        let progress = began.elapsed().as_secs_f64() / window.as_secs_f64();
        connect_users(&run, &mut sessions, run.scenario.connected_at(progress)).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(sessions)
}

/// Samples the gauges at the end of each window while `running` is set.
async fn sample(run: Arc<Run>, pids: Vec<(String, u32)>, running: Arc<AtomicU64>) {
    let window = Duration::from_secs(run.scenario.window_secs);
    let Some(began) = run.metrics().began() else { return };
    // Per process: CPU seconds at its last good sample, and when (a failed /proc read is skipped, not zeroed).
    let mut previous: HashMap<u32, (f64, Instant)> =
        pids.iter().map(|(_, pid)| (*pid, (usage(*pid).cpu_seconds, Instant::now()))).collect();
    let mut tick = 1;
    while running.load(Ordering::Relaxed) == 1 {
        tokio::time::sleep_until((began + window * tick).into()).await;
        let mut processes = BTreeMap::new();
        for (name, pid) in &pids {
            let now = usage(*pid);
            if now.rss_mib > 0.0 {
                let (cpu, at) = previous
                    .insert(*pid, (now.cpu_seconds, Instant::now()))
                    .unwrap_or((now.cpu_seconds, Instant::now()));
                let seconds = at.elapsed().as_secs_f64().max(0.001);
                processes.insert(name.clone(), ((now.cpu_seconds - cpu) / seconds * 100.0, now.rss_mib));
            }
        }
        let connected_users = run.world().connected.load(Ordering::Relaxed);
        run.metrics().gauges(tick as usize - 1, Gauges { connected_users, processes });
        tick += 1;
    }
}

/// A progress bar on a terminal, a line every 10 s otherwise.
async fn progress(run: Arc<Run>, began: Instant, window: Duration, running: Arc<AtomicU64>) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal { Duration::from_secs(1) } else { Duration::from_secs(10) };
    while running.load(Ordering::Relaxed) == 1 {
        tokio::time::sleep(every).await;
        let elapsed = began.elapsed().min(window);
        let share = elapsed.as_secs_f64() / window.as_secs_f64();
        let (accepted, delivered, errors, p99) = run.metrics().progress();
        let seconds = elapsed.as_secs_f64().max(0.001);
        let filled = (share * 30.0).round() as usize;
        let line = format!(
            "[{}{}] {:>3.0}% {:>4.0}/{} s  users {}  sent {} ({:.0}/s)  delivered {} ({:.0}/s)  send p99 {:.1} ms  errors {}",
            "#".repeat(filled),
            ".".repeat(30 - filled.min(30)),
            share * 100.0,
            elapsed.as_secs_f64(),
            window.as_secs(),
            run.world().connected.load(Ordering::Relaxed),
            accepted,
            accepted as f64 / seconds,
            delivered,
            delivered as f64 / seconds,
            p99,
            errors
        );
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
        if elapsed >= window {
            break;
        }
    }
}

/// The upload storm: `uploads` direct uploads of `upload_mb` each, `upload_concurrency` at a time, from
/// connected users into their group, starting at `start`; the command APIs' memory sampled throughout.
async fn upload_storm(run: Arc<Run>, start: Instant, api_pids: Vec<u32>) -> Storm {
    tokio::time::sleep_until(start.into()).await;
    let scenario = &run.scenario;
    let rss = || api_pids.iter().map(|pid| usage(*pid).rss_mib).sum::<f64>();
    let before = rss();
    let body =
        bytes::Bytes::from((0..scenario.upload_mb * 1_000_000).map(|index| (index % 251) as u8).collect::<Vec<u8>>());
    let permits = Arc::new(Semaphore::new(scenario.upload_concurrency));
    let began = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..scenario.uploads {
        let (run, body, permits) = (Arc::clone(&run), body.clone(), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let connected = run.world().connected.load(Ordering::Relaxed).max(1);
            let user = (index * 7919) % connected;
            upload(&run, user, body).await
        });
    }
    let mut peak = before;
    let (mut completed, mut failed) = (0, 0);
    let mut every = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(Ok(()))) => completed += 1,
                Some(_) => failed += 1,
                None => break,
            },
            _ = every.tick() => peak = peak.max(rss()),
        }
    }
    Storm {
        uploads: scenario.uploads,
        size_mb: scenario.upload_mb,
        completed,
        failed,
        seconds: began.elapsed().as_secs_f64(),
        command_api_rss_before_mib: before,
        command_api_rss_peak_mib: peak.max(rss()),
    }
}

async fn upload(run: &Arc<Run>, user: usize, body: bytes::Bytes) -> Result<(), String> {
    let world = run.world();
    let metrics = run.metrics();
    let began = Instant::now();
    let Some(channel) = world.memberships[user].first().copied() else { return Ok(()) };
    let id = world.channels[channel].id.clone();
    let request = CreateUpload {
        channel_id: id.clone(),
        name: "storm.bin".to_owned(),
        size: body.len() as u64,
        content_type: "application/octet-stream".to_owned(),
    };
    let outcome = async {
        let ticket = world
            .command(user, |client| {
                let request = request.clone();
                async move { client.create_upload(&request).await }
            })
            .await?;
        let put = ticket.put.ok_or("a multipart ticket: the storm's files are below the multipart threshold")?;
        let response = put.request(&world.http, body).send().await.map_err(|_| "put: transport".to_owned())?;
        if !response.status().is_success() {
            return Err(format!("put: {}", response.status()));
        }
        let seq = run.sequence.fetch_add(1, Ordering::Relaxed);
        run.shared.schedule(seq, Instant::now());
        let complete = CompleteUpload {
            channel_id: id.clone(),
            parts: Vec::new(),
            text: format!("seq:{seq}:u{user}: the file"),
            parent_id: None,
            client_msg_id: None,
        };
        let accepted = world
            .command(user, |client| {
                let complete = complete.clone();
                async move { client.complete_upload(&ticket.upload_id, &complete).await }
            })
            .await?;
        metrics.count(Count::Accepted, 1);
        if let Some(message) = accepted.message_id {
            run.acknowledged.lock().unwrap_or_else(PoisonError::into_inner).push((channel, *message.as_uuid()));
        }
        Ok(())
    };
    let result = outcome.await;
    match &result {
        Ok(()) => metrics.latency(metrics::UPLOAD, began.elapsed()),
        Err(code) => metrics.error(metrics::UPLOAD, code.clone()),
    }
    result
}

/// Every channel's history, oldest first (as the backend reads it).
async fn histories(world: &World) -> anyhow::Result<BTreeMap<usize, Vec<MessageView>>> {
    let next = AtomicUsize::new(0);
    let collected = Mutex::new(BTreeMap::new());
    let worker = || async {
        loop {
            let channel = next.fetch_add(1, Ordering::Relaxed);
            let Some(info) = world.channels.get(channel) else { return anyhow::Ok(()) };
            let mut messages: Vec<MessageView> = Vec::new();
            loop {
                let after = messages.last().map(|message| message.position.offset.to_string());
                let mut query = vec![("order", "asc"), ("limit", "200")];
                if let Some(after) = &after {
                    query.push(("after", after.as_str()));
                }
                let page = world.server(world.apis.pick(0)).history(&info.id, &query).await?;
                messages.extend(page.messages);
                if !page.has_more {
                    break;
                }
            }
            collected.lock().unwrap_or_else(PoisonError::into_inner).insert(channel, messages);
        }
    };
    futures::future::try_join_all((0..16).map(|_| worker())).await?;
    Ok(collected.into_inner().unwrap_or_else(PoisonError::into_inner))
}

/// Every sync page of `user` after `token`.
async fn sync_all(world: &World, user: usize, token: &str) -> anyhow::Result<Vec<LoggedEvent>> {
    let mut events = Vec::new();
    let mut token = token.to_owned();
    loop {
        let current = token.clone();
        let page = world
            .read(user, |client| {
                let current = current.clone();
                async move { client.sync(Some(&current), Some(1000)).await }
            })
            .await
            .map_err(anyhow::Error::msg)?;
        events.extend(page.events);
        token = page.next_token;
        if !page.has_more {
            return Ok(events);
        }
    }
}
