//! Driving an operation at a fixed rate (open loop) or with a fixed number of workers (closed loop), and
//! summarizing latencies with an HDR histogram.
//!
//! Open loop measures each operation from the moment it was *scheduled*, not sent, so a stalled server
//! shows up in the percentiles instead of silently lowering the offered rate (coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;

/// What one run of an operation measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunStats {
    pub label: String,
    pub mode: String,
    pub seconds: f64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Latencies and errors of one run.
#[derive(Debug)]
pub struct Recorder {
    histogram: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        // 1 µs to 5 minutes at 3 significant digits.
        let histogram = Histogram::new_with_bounds(1, 300_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"));
        Self { histogram, errors: BTreeMap::new() }
    }

    pub fn record(&mut self, latency: Duration, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 300_000_000);
                self.histogram.saturating_record(micros);
            }
            Err(code) => *self.errors.entry(code).or_default() += 1,
        }
    }

    pub fn finish(self, label: &str, mode: &str, elapsed: Duration) -> RunStats {
        let ms = |quantile: f64| self.histogram.value_at_quantile(quantile) as f64 / 1000.0;
        let ok = self.histogram.len();
        RunStats {
            label: label.to_owned(),
            mode: mode.to_owned(),
            seconds: elapsed.as_secs_f64(),
            ok,
            errors: self.errors,
            per_second: ok as f64 / elapsed.as_secs_f64(),
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.histogram.max() as f64 / 1000.0,
        }
    }
}

/// Starts `op(i)` every `1/rate` seconds for `duration`, never more than `max_in_flight` at once (beyond
/// that an operation counts as the error `overloaded`), then waits for the stragglers.
pub async fn fixed_rate<F, Fut>(label: &str, rate: f64, duration: Duration, max_in_flight: usize, op: F) -> RunStats
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let mut recorder = Recorder::new();
    let started = Instant::now();
    for i in 0..total {
        let scheduled = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        while let Some(done) = tasks.try_join_next() {
            if let Ok((latency, outcome)) = done {
                recorder.record(latency, outcome);
            }
        }
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            recorder.record(Duration::ZERO, Err("overloaded".to_owned()));
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let operation = op(i);
        let in_flight = Arc::clone(&in_flight);
        tasks.spawn(async move {
            let outcome = operation.await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (scheduled.elapsed(), outcome)
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((latency, outcome)) = done {
            recorder.record(latency, outcome);
        }
    }
    recorder.finish(label, &format!("open loop {rate:.0}/s"), started.elapsed())
}

/// `workers` loops, each running `op` back to back for `duration`: the throughput at that concurrency.
pub async fn closed_loop<F, Fut>(label: &str, workers: usize, duration: Duration, op: F) -> RunStats
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let op = op.clone();
        tasks.spawn(async move {
            let mut recorder = Recorder::new();
            let mut i = worker as u64;
            while Instant::now() < deadline {
                let begun = Instant::now();
                let outcome = op(i).await;
                recorder.record(begun.elapsed(), outcome);
                i += workers as u64;
            }
            recorder
        });
    }
    let mut total = Recorder::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(recorder) = done {
            let _ = total.histogram.add(&recorder.histogram);
            for (code, count) in recorder.errors {
                *total.errors.entry(code).or_default() += count;
            }
        }
    }
    total.finish(label, &format!("closed loop, {workers} workers"), started.elapsed())
}

/// A Markdown table of runs.
pub fn markdown(runs: &[RunStats]) -> String {
    let mut table = String::from(
        "| target | mode | ok | errors | per s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let errors = if run.errors.is_empty() {
            "0".to_owned()
        } else {
            run.errors.iter().map(|(code, count)| format!("{code}: {count}")).collect::<Vec<_>>().join(", ")
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            run.label,
            run.mode,
            run.ok,
            errors,
            run.per_second,
            run.p50_ms,
            run.p95_ms,
            run.p99_ms,
            run.p999_ms,
            run.max_ms
        ));
    }
    table
}

/// SplitMix64: a small, fast, seeded generator (the corpus is the same on every run).
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_loop_counts_every_scheduled_operation_and_its_failures() {
        let stats = fixed_rate("t", 1000.0, Duration::from_millis(200), 1000, |i| async move {
            if i % 10 == 0 { Err("boom".to_owned()) } else { Ok(()) }
        })
        .await;
        assert_eq!(stats.ok + stats.errors.values().sum::<u64>(), 200);
        assert_eq!(stats.errors.get("boom"), Some(&20));
    }

    #[tokio::test]
    async fn a_stalled_operation_counts_from_its_scheduled_time() {
        // Every operation takes 20 ms but only one may run at a time: the rest are refused, not hidden.
        let stats = fixed_rate("t", 500.0, Duration::from_millis(100), 1, |_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        })
        .await;
        assert!(stats.errors.get("overloaded").copied().unwrap_or(0) > 30, "{stats:?}");
        assert!(stats.p50_ms >= 20.0, "{stats:?}");
    }
}
