//! The run's report: a JSON file with everything, a Markdown summary, and SVG plots of the timeline
//! (latency percentiles and throughput over time), all in one directory.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::Connection;

use super::config::{Options, Scenario};
use super::metrics::{DELIVERY, HISTORY, PROJECTION, SEND, WindowStats};
use super::verify::Verdict;
use crate::measure::{RunStats, closed_loop, markdown as table};
use crate::stack::{Deployment, Stack};

#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub scenario: Scenario,
    pub machine: String,
    pub commit: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub seconds: f64,
    /// Over the run's own windows.
    pub accepted_per_second: f64,
    /// Sends acknowledged after the run ended (a saturated run's backlog).
    pub accepted_after_run: u64,
    pub deliveries_per_second: f64,
    /// Projection-lag samples skipped because 20 probes were in flight.
    pub lag_unsampled: u64,
    pub typing_frames: u64,
    /// How long the projectors needed after the run to apply everything.
    pub projector_catch_up_seconds: f64,
    pub totals: Vec<RunStats>,
    pub timeline: Vec<WindowStats>,
    pub processes: Vec<ProcessUsage>,
    pub kills: Vec<Kill>,
    pub storm: Option<Storm>,
    pub verdict: Verdict,
    pub baselines: Option<Baselines>,
}

#[derive(Debug, Serialize)]
pub struct ProcessUsage {
    pub name: String,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
    pub killed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    pub process: String,
    pub at_seconds: f64,
    /// Its usage until the kill.
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Storm {
    pub uploads: usize,
    pub size_mb: u64,
    pub completed: usize,
    pub failed: usize,
    pub seconds: f64,
    pub command_api_rss_before_mib: f64,
    pub command_api_rss_peak_mib: f64,
}

/// The physical bounds on the same broker and database, measured right after the run.
#[derive(Debug, Serialize)]
pub struct Baselines {
    /// Raw rdkafka produce of an encoded `message.sent`, same producer settings, 32 tasks for 10 s.
    pub produce: RunStats,
    /// One `COPY` of 200,000 message rows into a plain table.
    pub copy_rows_per_second: f64,
}

/// The commit the binaries were built from, if this is a git checkout.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn stat<'a>(report: &'a Report, label: &str) -> Option<&'a RunStats> {
    report.totals.iter().find(|run| run.label == label)
}

/// The project's performance goals against this run (the send goal applies at 1,000 msg/s).
/// `Some(met)`, or `None` when the run offered less than the goal is about.
fn goals(report: &Report) -> Vec<(String, String, Option<bool>)> {
    let mut goals = Vec::new();
    let p99 = |label: &str| stat(report, label).map(|run| run.p99_ms);
    let offered = report.scenario.peak_rate();
    if let Some(send) = p99(SEND) {
        goals.push((
            format!("send p99 ≤ 25 ms at 1,000 msg/s (offered here: {offered:.0}/s)"),
            format!("{send:.1} ms"),
            (offered >= 1_000.0).then_some(send <= 25.0),
        ));
    }
    if let Some(delivery) = p99(DELIVERY) {
        goals.push(("send → delivery p99 ≤ 100 ms".to_owned(), format!("{delivery:.1} ms"), Some(delivery <= 100.0)));
    }
    if let Some(lag) = p99(PROJECTION) {
        goals.push(("projection lag p99 ≤ 250 ms".to_owned(), format!("{lag:.1} ms"), Some(lag <= 250.0)));
    }
    if let Some(history) = p99(HISTORY) {
        goals.push(("history p99 ≤ 20 ms".to_owned(), format!("{history:.1} ms"), Some(history <= 20.0)));
    }
    goals.push((
        "≥ 5,000 msg/s accepted and projected".to_owned(),
        format!("{:.0} msg/s accepted (offered {offered:.0}/s)", report.accepted_per_second),
        (offered >= 5_000.0).then_some(report.accepted_per_second >= 5_000.0),
    ));
    goals
}

pub fn markdown(report: &Report) -> String {
    let scenario = &report.scenario;
    let mut text = String::new();
    let _ = writeln!(text, "### Scenario `{}` — topology {}\n", scenario.name, scenario.topology);
    let _ = writeln!(text, "```sh\n{}\n```\n", report.command);
    let _ = writeln!(
        text,
        "Machine: {}; commit {}; {}. {} users ({} % active, {}), {} s measured, {} partitions.\n",
        report.machine,
        report.commit,
        report.started_at.format("%Y-%m-%d %H:%M UTC"),
        scenario.users,
        scenario.active_share * 100.0,
        scenario.rate.map_or_else(
            || format!(
                "{} msg/min each{}",
                scenario.messages_per_minute,
                if scenario.spike { ", 10× ramp" } else { "" }
            ),
            |rate| format!("open loop at {rate} msg/s"),
        ),
        report.seconds.round(),
        scenario.partitions,
    );
    text.push_str(&table(&report.totals));
    let _ = writeln!(
        text,
        "\nThroughput during the run: **{:.0} msg/s accepted** ({} more acknowledged after it), {:.0} deliveries/s, {} \
         typing frames; the projectors caught up {:.1} s after the run; {} projection-lag samples skipped (20 probes \
         in flight).",
        report.accepted_per_second,
        report.accepted_after_run,
        report.deliveries_per_second,
        report.typing_frames,
        report.projector_catch_up_seconds,
        report.lag_unsampled
    );
    if !report.kills.is_empty() {
        let kills: Vec<String> =
            report.kills.iter().map(|kill| format!("{} at {:.0} s", kill.process, kill.at_seconds)).collect();
        let _ = writeln!(text, "Killed (SIGKILL): {}.", kills.join(", "));
    }
    if let Some(storm) = &report.storm {
        let _ = writeln!(
            text,
            "Upload storm: {} of {} × {} MB uploads completed ({} failed) in {:.1} s; command-api RSS {:.1} MiB before, \
             {:.1} MiB peak (+{:.1} MiB).",
            storm.completed,
            storm.uploads,
            storm.size_mb,
            storm.failed,
            storm.seconds,
            storm.command_api_rss_before_mib,
            storm.command_api_rss_peak_mib,
            storm.command_api_rss_peak_mib - storm.command_api_rss_before_mib
        );
    }
    let verdict = &report.verdict;
    let _ = writeln!(
        text,
        "\nCorrectness: **{} violations**. {} deliveries owed to {} socket chains ({} resumed, {} of them on another \
         node; {} ended by resync; {} users without a live socket), {} received; missing {}, duplicated {}, out of order {}, unexpected {}, stalled {}; {} \
         acknowledged sends, {} lost; {} messages in history, {} duplicate ids; sync = history for {} users ({} \
         mismatches).",
        verdict.violations(),
        verdict.deliveries_expected,
        verdict.chains,
        verdict.chains_resumed,
        verdict.chains_moved,
        verdict.chains_resynced,
        verdict.users_without_stream,
        verdict.deliveries_received,
        verdict.missing,
        verdict.duplicates,
        verdict.out_of_order,
        verdict.unexpected,
        verdict.stalled_chains,
        verdict.acknowledged_sends,
        verdict.lost_sends,
        verdict.messages_in_history,
        verdict.duplicate_message_ids,
        verdict.sync_users_checked,
        verdict.sync_mismatches
    );
    for example in &verdict.examples {
        let _ = writeln!(text, "- {example}");
    }
    text.push_str("\n| process | CPU s in the run | CPU % of one core (mean) | peak RSS MiB |\n|---|---:|---:|---:|\n");
    for process in &report.processes {
        let _ = writeln!(
            text,
            "| {}{} | {:.1} | {:.0} | {:.0} |",
            process.name,
            if process.killed { " (killed)" } else { "" },
            process.cpu_seconds,
            process.cpu_seconds / report.seconds * 100.0,
            process.peak_rss_mib
        );
    }
    if let Some(baselines) = &report.baselines {
        let _ = writeln!(
            text,
            "\nBaselines on the same broker and database: raw rdkafka produce {:.0} msg/s (32 tasks, p99 {:.1} ms) — the \
             run accepted {:.1} % of it; PostgreSQL `COPY` {:.0} rows/s.",
            baselines.produce.per_second,
            baselines.produce.p99_ms,
            report.accepted_per_second / baselines.produce.per_second * 100.0,
            baselines.copy_rows_per_second
        );
    }
    text.push_str("\n| goal | measured | met |\n|---|---|---|\n");
    for (goal, measured, met) in goals(report) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a (offered less)",
        };
        let _ = writeln!(text, "| {goal} | {measured} | {met} |");
    }
    text
}

/// Writes `report.json`, `summary.md`, `latency.svg` and `throughput.svg`; returns the directory.
pub fn write(report: &Report, options: &Options) -> anyhow::Result<PathBuf> {
    let out = options.out.clone().unwrap_or_else(|| {
        PathBuf::from("loadtest-results").join(format!(
            "{}-{}",
            report.scenario.name,
            report.started_at.format("%Y%m%d-%H%M%S")
        ))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(report)?)?;
    std::fs::write(out.join("summary.md"), markdown(report))?;
    // Each window at its middle; latencies (log scale) only where measured, counts also where zero.
    let middle = report.scenario.window_secs as f64 / 2.0;
    let points = |pick: fn(&WindowStats) -> f64, keep_zero: bool| -> Vec<(f64, f64)> {
        report
            .timeline
            .iter()
            .map(|window| (window.at_seconds + middle, pick(window)))
            .filter(|(_, value)| keep_zero || *value > 0.0)
            .collect()
    };
    let series = |pick: fn(&WindowStats) -> f64| points(pick, false);
    let counts = |pick: fn(&WindowStats) -> f64| points(pick, true);
    let latency = chart(
        &format!("{}: latency percentiles per {} s window", report.scenario.name, report.scenario.window_secs),
        "ms (log scale)",
        true,
        &[
            ("send p50", "#1f77b4", series(|w| w.send_p50_ms)),
            ("send p99", "#aec7e8", series(|w| w.send_p99_ms)),
            ("delivery p50", "#2ca02c", series(|w| w.delivery_p50_ms)),
            ("delivery p99", "#98df8a", series(|w| w.delivery_p99_ms)),
            ("projection lag p99", "#d62728", series(|w| w.projection_p99_ms)),
        ],
        &report.kills,
    );
    std::fs::write(out.join("latency.svg"), latency)?;
    let throughput = [
        chart(
            &format!("{}: messages per second", report.scenario.name),
            "msg/s",
            false,
            &[
                ("offered", "#7f7f7f", counts(|w| w.offered_per_second)),
                ("accepted", "#1f77b4", counts(|w| w.accepted_per_second)),
            ],
            &report.kills,
        ),
        chart(
            "deliveries per second (all sockets)",
            "deliveries/s",
            false,
            &[("delivered", "#2ca02c", counts(|w| w.deliveries_per_second))],
            &report.kills,
        ),
        chart(
            "connected users",
            "users",
            false,
            &[("connected", "#9467bd", counts(|w| w.connected_users as f64))],
            &report.kills,
        ),
    ];
    std::fs::write(out.join("throughput.svg"), stack_vertically(&throughput))?;
    Ok(out)
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// A named line: (name, colour, points).
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// A line chart (SVG) of `series` (x in seconds), with vertical markers where processes were killed.
fn chart(title: &str, unit: &str, log: bool, series: &[Series<'_>], kills: &[Kill]) -> String {
    let points = series.iter().flat_map(|(_, _, points)| points.iter());
    let x_max = points.clone().map(|(x, _)| *x).fold(1.0_f64, f64::max);
    let y_values: Vec<f64> = points.map(|(_, y)| *y).collect();
    let y_max = y_values.iter().copied().fold(0.0_f64, f64::max).max(1e-3);
    let y_min = y_values.iter().copied().fold(f64::INFINITY, f64::min).min(y_max);
    let step = nice_ceiling(y_max / 5.0);
    let (low, high) = if log {
        (y_min.max(0.01).log10().floor(), y_max.log10().ceil().max(y_min.max(0.01).log10().floor() + 1.0))
    } else {
        (0.0, (y_max / step).ceil().max(1.0) * step)
    };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |x: f64| LEFT + x / x_max * plot_w;
    let y_of = |y: f64| {
        let value = if log { y.max(1e-9).log10() } else { y };
        TOP + plot_h - (value - low) / (high - low) * plot_h
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{}</text>
"#,
        escape(title)
    );
    // Axes and grid.
    let ticks: Vec<f64> = if log {
        (low as i32..=high as i32).map(|power| 10_f64.powi(power)).collect()
    } else {
        (0..=(high / step).round() as usize).map(|index| index as f64 * step).collect()
    };
    for tick in ticks {
        let y = y_of(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            short(tick)
        );
    }
    let x_step = nice_ceiling(x_max / 6.0).max(1.0);
    let mut x = 0.0;
    while x <= x_max + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="#eee"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            x_of(x),
            TOP + plot_h,
            TOP + plot_h + 16.0,
            short(x)
        );
        x += x_step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the run</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(unit)
    );
    for (index, kill) in kills.iter().enumerate() {
        let x = x_of(kill.at_seconds);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#d62728" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" fill="#d62728" font-size="9">✕ {}</text>"##,
            TOP + plot_h,
            x + 2.0,
            TOP + 10.0 + index as f64 * 11.0,
            escape(&kill.process)
        );
    }
    for (index, (name, color, points)) in series.iter().enumerate() {
        if !points.is_empty() {
            let path: Vec<String> = points.iter().map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y))).collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
                path.join(" ")
            );
        }
        let legend_y = TOP + 12.0 + index as f64 * 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{0}" x2="{1}" y1="{2:.1}" y2="{2:.1}" stroke="{color}" stroke-width="3"/><text x="{3}" y="{4:.1}">{5}</text>"#,
            WIDTH - RIGHT + 10.0,
            WIDTH - RIGHT + 28.0,
            legend_y,
            WIDTH - RIGHT + 32.0,
            legend_y + 4.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Several charts in one SVG, one under the other.
fn stack_vertically(charts: &[String]) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{}">"#,
        HEIGHT * charts.len() as f64
    );
    for (index, chart) in charts.iter().enumerate() {
        let inner = chart.replacen("<svg ", &format!(r#"<svg y="{}" "#, HEIGHT * index as f64), 1);
        svg.push_str(&inner);
    }
    svg.push_str("</svg>\n");
    svg
}

/// 1, 2 or 5 times a power of ten, at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10_f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|step| step * power).find(|candidate| *candidate >= value).unwrap_or(10.0 * power)
}

fn short(value: f64) -> String {
    if value >= 1000.0 {
        format!("{}k", value / 1000.0)
    } else if value >= 1.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Raw produce and COPY on the deployment's broker and database.
pub async fn baselines(stack: &Stack, deployment: &Deployment, partitions: i32) -> anyhow::Result<Baselines> {
    eprintln!("baselines: raw produce, then COPY");
    // Same broker, settings and partition count as the run's topic; no consumer.
    let topic = format!("{}.baseline", deployment.topic);
    stack.create_topic(&topic, partitions).await?;
    let text = "seq:0:u0: hello deploy meeting lunch review release tomorrow thanks".to_owned();
    let operation = crate::send_bench::produce_operation(stack, &deployment.topic, &topic, 1000, text).await?;
    let produce = move |i: u64| operation(i);
    closed_loop("warm-up", 32, Duration::from_secs(2), produce.clone()).await;
    let produce = closed_loop("raw rdkafka produce", 32, Duration::from_secs(10), produce).await;
    let _ = stack.delete_topic(&topic).await;

    let mut connection = sqlx::PgConnection::connect(&deployment.database_url).await?;
    sqlx::query("CREATE TABLE copy_baseline (message_id uuid, channel_id text, author_id text, text text, created_at timestamptz)")
        .execute(&mut connection)
        .await?;
    let rows = 200_000;
    let mut data = String::with_capacity(rows * 160);
    for row in 0..rows {
        let _ = writeln!(
            data,
            "{}\tg-{}\tu{}\tseq:{row}:u{}: hello deploy meeting lunch review release tomorrow thanks\t2026-11-29 00:00:00+00",
            uuid::Uuid::new_v4(),
            row % 1250,
            row % 10_000,
            row % 10_000
        );
    }
    let began = std::time::Instant::now();
    let mut copy = connection.copy_in_raw("COPY copy_baseline FROM STDIN").await?;
    copy.send(data.as_bytes()).await?;
    copy.finish().await?;
    let copy_rows_per_second = rows as f64 / began.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE copy_baseline").execute(&mut connection).await?;
    Ok(Baselines { produce, copy_rows_per_second })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_place_points_inside_the_plot_and_mark_kills() {
        let kills = [Kill { process: "query-api-3".to_owned(), at_seconds: 60.0, cpu_seconds: 1.0, peak_rss_mib: 1.0 }];
        let svg = chart("t", "ms", true, &[("a", "#000", vec![(0.0, 1.0), (100.0, 1000.0)])], &kills);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // 1 ms sits on the plot's bottom edge, 1000 ms on its top edge (log scale from 1 to 1000).
        let bottom = TOP + (HEIGHT - TOP - BOTTOM);
        assert!(svg.contains(&format!("{LEFT:.1},{bottom:.1}")), "{svg}");
        assert!(svg.contains(&format!("{:.1},{TOP:.1}", WIDTH - RIGHT)), "{svg}");
        assert!(svg.contains("query-api-3"));
        assert_eq!(nice_ceiling(430.0), 500.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
    }
}
