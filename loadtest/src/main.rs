//! The ChatSDK load generator. Today: `send-bench`, the command path against its physical bounds (issue 5),
//! `query-bench`, reads, sync and realtime delivery (issue 6), and `search-bench`, the search index against
//! PostgreSQL full-text search (issue 7), and `upload-storm`, concurrent direct uploads against the command API's
//! memory (issue 8). The seed's scenarios (steady, spike, heavy,
//! upload storm) come with the loadtest issue.

#![allow(clippy::print_stdout)] // a command-line tool: results on stdout, progress on stderr

mod measure;
mod peer;
mod query_bench;
mod scenario;
mod search_bench;
mod send_bench;
mod stack;
mod upload_storm;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: loadtest scenario steady|spike|heavy|upload-storm|smoke [--file SCENARIO.toml]
                          [--users N] [--seconds S] [--rate MSG_PER_S] [--active-share F] [--messages-per-minute F]
                          [--other-actions F] [--uploads N] [--upload-mb MB] [--upload-concurrency N]
                          [--topology 1-1-1|2-2-3] [--kill true] [--partitions 12] [--sync-checks N]
                          [--baselines true] [--out DIR] [--bin-dir DIR]
  The seed's scenarios against release builds of the three services (cargo build --release -p command-api
  -p projector -p query-api -p loadtest) on the local stack; fails on any correctness violation. Needs an
  open-file limit above --users (ulimit -n \"$(ulimit -Hn)\").
       loadtest peer-synapse [--users 200] [--group-size 8] [--workers 16] [--rate 20] [--seconds 30]
                          [--partitions 12] [--bin-dir DIR] [--json PATH]
  The same message workload against Matrix Synapse and ChatSDK, as ratios. Start the peer first:
  loadtest/peers/synapse up && eval \"$(loadtest/peers/synapse env)\"
       loadtest send-bench [--rate 1000] [--seconds 20] [--workers 32] [--channels 100]
                          [--users-per-channel 10] [--partitions 12] [--text-bytes 120]
                          [--bin-dir DIR] [--json PATH]
  Needs the local stack (infra/local/stack up; eval \"$(infra/local/stack env)\") and release binaries of
  command-api and projector next to this one (cargo build --release -p command-api -p projector -p loadtest).
       loadtest query-bench [--seconds 10] [--rate 1000] [--read-rate 500] [--channels 100]
                          [--users-per-channel 10] [--history 100] [--sockets 18000] [--fanout-channels 10]
                          [--fanout-rate 50] [--partitions 12] [--bin-dir DIR] [--json PATH]
  Also needs query-api's release binary, and an open-file limit above --sockets for this process and the
  query API it starts (ulimit -n \"$(ulimit -Hn)\").
       loadtest search-bench [--messages 1000000] [--channels 2000] [--users 5000] [--queries 500]
                          [--pg-queries 50] [--member-channels 50] [--partitions 12] [--skip-postgres true]
                          [--json PATH]
  Needs the local stack only (the search consumer runs in this process).
       loadtest upload-storm [--uploads 200] [--size-mb 10] [--concurrency 200] [--users 50] [--partitions 12]
                          [--bin-dir DIR] [--json PATH]
  Needs the release binaries of command-api and projector next to this one.";

#[tokio::main]
async fn main() -> ExitCode {
    // The bench's "bare axum" bound runs as a child process of this binary.
    if std::env::var_os("CHATSDK_LOADTEST_BARE").is_some() {
        return match bare_server().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("bare server: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let rest = arguments.get(1..).unwrap_or_default();
    match arguments.first().map(String::as_str) {
        Some("scenario") => command("scenario", scenario_options(rest), scenario::run).await,
        Some("peer-synapse") => command("peer-synapse", peer_options(rest), peer::run).await,
        Some("send-bench") => command("send-bench", options(rest), send_bench::run).await,
        Some("query-bench") => command("query-bench", query_options(rest), query_bench::run).await,
        Some("search-bench") => command("search-bench", search_options(rest), search_bench::run).await,
        Some("upload-storm") => command("upload-storm", storm_options(rest), upload_storm::run).await,
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs one subcommand: its report on stdout; a usage error exits 2, a failed run 1.
async fn command<O, F, Fut>(name: &str, options: Result<O, String>, run: F) -> ExitCode
where
    F: FnOnce(O) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    match options {
        Ok(options) => match run(options).await {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("loadtest {name}: {error:#}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn scenario_options(arguments: &[String]) -> Result<scenario::Options, String> {
    let name = arguments.first().ok_or("which scenario?")?;
    let mut scenario = scenario::Scenario::preset(name).ok_or_else(|| format!("unknown scenario {name}"))?;
    let mut rest = &arguments[1..];
    if rest.first().map(String::as_str) == Some("--file") {
        let path = rest.get(1).ok_or("--file needs a path")?;
        scenario = scenario::config::layered(scenario, std::path::Path::new(path))?;
        rest = &rest[2..];
    }
    let mut options = scenario::Options {
        scenario,
        bin_dir: stack::default_bin_dir(),
        out: None,
        baselines: false,
        command_line: std::iter::once("loadtest".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
    };
    flags(rest, |flag, value| {
        let scenario = &mut options.scenario;
        match flag {
            "--users" => scenario.users = number(flag, value)?,
            "--seconds" => scenario.seconds = number(flag, value)?,
            "--rate" => scenario.rate = Some(number(flag, value)?),
            "--active-share" => scenario.active_share = number(flag, value)?,
            "--messages-per-minute" => scenario.messages_per_minute = number(flag, value)?,
            "--other-actions" => scenario.other_actions = number(flag, value)?,
            "--uploads" => scenario.uploads = number(flag, value)?,
            "--upload-mb" => scenario.upload_mb = number(flag, value)?,
            "--upload-concurrency" => scenario.upload_concurrency = number(flag, value)?,
            "--topology" => scenario.topology = value.parse()?,
            "--kill" => scenario.kill = boolean(flag, value)?,
            "--partitions" => scenario.partitions = number(flag, value)?,
            "--sync-checks" => scenario.sync_checks = number(flag, value)?,
            "--baselines" => options.baselines = boolean(flag, value)?,
            "--out" => options.out = Some(PathBuf::from(value)),
            "--bin-dir" => options.bin_dir = PathBuf::from(value),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    options.scenario.validate()?;
    Ok(options)
}

fn peer_options(arguments: &[String]) -> Result<peer::Options, String> {
    let mut options = peer::Options {
        users: 200,
        group_size: 8,
        workers: 16,
        rate: 20.0,
        seconds: 30,
        partitions: 12,
        bin_dir: stack::default_bin_dir(),
        json: None,
    };
    flags(arguments, |flag, value| {
        match flag {
            "--users" => options.users = number(flag, value)?,
            "--group-size" => options.group_size = number(flag, value)?,
            "--workers" => options.workers = number(flag, value)?,
            "--rate" => options.rate = number(flag, value)?,
            "--seconds" => options.seconds = number(flag, value)?,
            "--partitions" => options.partitions = number(flag, value)?,
            "--bin-dir" => options.bin_dir = PathBuf::from(value),
            "--json" => options.json = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if options.users < 2
        || options.group_size < 2
        || options.workers == 0
        || options.seconds == 0
        || options.rate <= 0.0
    {
        return Err("users and group size (at least 2), workers, seconds and rate must be positive".to_owned());
    }
    Ok(options)
}

fn boolean(flag: &str, value: &str) -> Result<bool, String> {
    value.parse().map_err(|_| format!("{flag}: expected true or false, got {value}"))
}

fn storm_options(arguments: &[String]) -> Result<upload_storm::Options, String> {
    let mut options = upload_storm::Options {
        uploads: 200,
        size_bytes: 10_000_000,
        concurrency: 200,
        users: 50,
        partitions: 12,
        bin_dir: stack::default_bin_dir(),
        json: None,
    };
    flags(arguments, |flag, value| {
        match flag {
            "--uploads" => options.uploads = number(flag, value)?,
            "--size-mb" => options.size_bytes = number::<u64>(flag, value)? * 1_000_000,
            "--concurrency" => options.concurrency = number(flag, value)?,
            "--users" => options.users = number(flag, value)?,
            "--partitions" => options.partitions = number(flag, value)?,
            "--bin-dir" => options.bin_dir = PathBuf::from(value),
            "--json" => options.json = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if [options.uploads, options.concurrency, options.users, options.size_bytes as usize].contains(&0) {
        return Err("uploads, size, concurrency and users must be positive".to_owned());
    }
    Ok(options)
}

fn search_options(arguments: &[String]) -> Result<search_bench::Options, String> {
    let mut options = search_bench::Options {
        messages: 1_000_000,
        channels: 2_000,
        users: 5_000,
        queries: 500,
        pg_queries: 50,
        partitions: 12,
        member_channels: 50,
        skip_postgres: false,
        json: None,
    };
    flags(arguments, |flag, value| {
        match flag {
            "--messages" => options.messages = number(flag, value)?,
            "--channels" => options.channels = number(flag, value)?,
            "--users" => options.users = number(flag, value)?,
            "--queries" => options.queries = number(flag, value)?,
            "--pg-queries" => options.pg_queries = number(flag, value)?,
            "--member-channels" => options.member_channels = number(flag, value)?,
            "--partitions" => options.partitions = number(flag, value)?,
            "--skip-postgres" => options.skip_postgres = value == "true",
            "--json" => options.json = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if [options.messages, options.channels, options.users, options.queries, options.member_channels].contains(&0) {
        return Err("messages, channels, users, queries and member channels must be positive".to_owned());
    }
    Ok(options)
}

/// Applies each `--flag value` pair with `set`, which answers `Ok(false)` for a flag the command does not have.
fn flags(arguments: &[String], mut set: impl FnMut(&str, &str) -> Result<bool, String>) -> Result<(), String> {
    let mut iter = arguments.iter();
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if !set(flag, value)? {
            return Err(format!("unknown option {flag}"));
        }
    }
    Ok(())
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag}: not a number: {value}"))
}

fn query_options(arguments: &[String]) -> Result<query_bench::Options, String> {
    let mut options = query_bench::Options {
        seconds: 10,
        rate: 1000.0,
        read_rate: 500.0,
        channels: 100,
        users_per_channel: 10,
        history: 100,
        sockets: 18_000,
        fanout_channels: 10,
        fanout_rate: 50.0,
        partitions: 12,
        bin_dir: stack::default_bin_dir(),
        json: None,
    };
    flags(arguments, |flag, value| {
        match flag {
            "--seconds" => options.seconds = number(flag, value)?,
            "--rate" => options.rate = number(flag, value)?,
            "--read-rate" => options.read_rate = number(flag, value)?,
            "--channels" => options.channels = number(flag, value)?,
            "--users-per-channel" => options.users_per_channel = number(flag, value)?,
            "--history" => options.history = number(flag, value)?,
            "--sockets" => options.sockets = number(flag, value)?,
            "--fanout-channels" => options.fanout_channels = number(flag, value)?,
            "--fanout-rate" => options.fanout_rate = number(flag, value)?,
            "--partitions" => options.partitions = number(flag, value)?,
            "--bin-dir" => options.bin_dir = PathBuf::from(value),
            "--json" => options.json = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let positive =
        [options.seconds, options.channels as u64, options.users_per_channel as u64, options.fanout_channels as u64];
    if positive.contains(&0) || options.rate <= 0.0 || options.read_rate <= 0.0 || options.fanout_rate <= 0.0 {
        return Err("seconds, rates, channels, users per channel and fan-out channels must be positive".to_owned());
    }
    Ok(options)
}

fn options(arguments: &[String]) -> Result<send_bench::Options, String> {
    let mut options = send_bench::Options {
        rate: 1000.0,
        seconds: 20,
        workers: 32,
        channels: 100,
        users_per_channel: 10,
        partitions: 12,
        text_bytes: 120,
        bin_dir: stack::default_bin_dir(),
        json: None,
    };
    flags(arguments, |flag, value| {
        match flag {
            "--rate" => options.rate = number(flag, value)?,
            "--seconds" => options.seconds = number(flag, value)?,
            "--workers" => options.workers = number(flag, value)?,
            "--channels" => options.channels = number(flag, value)?,
            "--users-per-channel" => options.users_per_channel = number(flag, value)?,
            "--partitions" => options.partitions = number(flag, value)?,
            "--text-bytes" => options.text_bytes = number(flag, value)?,
            "--bin-dir" => options.bin_dir = PathBuf::from(value),
            "--json" => options.json = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if options.rate <= 0.0 || options.seconds == 0 || options.workers == 0 || options.channels == 0 {
        return Err("rate, seconds, workers and channels must be positive".to_owned());
    }
    Ok(options)
}

/// Answers every request with 202 and a small JSON body: the HTTP stack's own cost, nothing else.
async fn bare_server() -> anyhow::Result<()> {
    use axum::http::StatusCode;
    let bind = std::env::var("CHATSDK_HTTP__BIND").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let accepted = || async {
        (StatusCode::ACCEPTED, [("content-type", "application/json")], r#"{"position":{"partition":0,"offset":0}}"#)
    };
    let router = axum::Router::new()
        .route("/readyz", axum::routing::get(|| async { "ok" }))
        .fallback(axum::routing::post(move |_body: axum::body::Bytes| accepted()));
    axum::serve(listener, router).with_graceful_shutdown(chatsdk_platform::server::shutdown_signal()).await?;
    Ok(())
}
