//! What a scenario measures: a latency histogram per kind of operation for the whole run, and per time
//! window the counts and percentiles that the plots show.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::measure::{Recorder, RunStats};

/// The kinds of operation with a latency.
pub const SEND: &str = "send (scheduled → 202)";
pub const DELIVERY: &str = "send → delivery at each receiving socket";
pub const PROJECTION: &str = "projection lag (202 → visible in a read)";
pub const HISTORY: &str = "history page (50)";
pub const CHANNELS: &str = "channel list";
pub const SYNC: &str = "sync page (≤100 events)";
pub const SEARCH: &str = "search (20 hits)";
pub const CONNECT: &str = "WebSocket connect (→ connected frame)";
pub const REACT: &str = "reaction";
pub const EDIT: &str = "edit";
pub const MARK_READ: &str = "mark read";
pub const UPLOAD: &str = "upload (create → PUT → complete)";

/// The order of the summary table.
pub const KINDS: [&str; 12] =
    [SEND, DELIVERY, PROJECTION, HISTORY, CHANNELS, SYNC, SEARCH, CONNECT, REACT, EDIT, MARK_READ, UPLOAD];

/// Counters per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Count {
    /// Sends scheduled by the open loop.
    Offered,
    /// Sends acknowledged (`202`/`200`).
    Accepted,
    /// Message events received by sockets.
    Delivered,
    /// Typing frames sent.
    Typing,
    /// Socket reconnects (with a resume token).
    Reconnects,
    /// Projection-lag samples skipped (too many probes in flight).
    LagUnsampled,
}

#[derive(Debug)]
struct Window {
    send: Histogram<u64>,
    delivery: Histogram<u64>,
    projection: Histogram<u64>,
    counts: BTreeMap<Count, u64>,
    errors: u64,
}

impl Window {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 300_000_000, 3).unwrap_or_else(|_| unreachable!("bounds"));
        Self { send: histogram(), delivery: histogram(), projection: histogram(), counts: BTreeMap::new(), errors: 0 }
    }
}

#[derive(Debug, Default)]
struct Inner {
    totals: BTreeMap<&'static str, Recorder>,
    windows: Vec<Window>,
    gauges: Vec<Gauges>,
}

/// Sampled at the end of each window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gauges {
    pub connected_users: usize,
    /// Per process: CPU % of one core over the window, and resident memory.
    pub processes: BTreeMap<String, (f64, f64)>,
}

/// One window of the timeline, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct WindowStats {
    /// Seconds since the measured run began (window start).
    pub at_seconds: f64,
    pub offered_per_second: f64,
    pub accepted_per_second: f64,
    pub deliveries_per_second: f64,
    pub errors: u64,
    pub reconnects: u64,
    pub send_p50_ms: f64,
    pub send_p99_ms: f64,
    pub delivery_p50_ms: f64,
    pub delivery_p99_ms: f64,
    pub projection_p99_ms: f64,
    pub connected_users: usize,
    /// Per process: (CPU %, RSS MiB).
    pub processes: BTreeMap<String, (f64, f64)>,
}

#[derive(Debug)]
pub struct Metrics {
    window: Duration,
    began: OnceLock<Instant>,
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn new(window: Duration) -> Self {
        Self { window, began: OnceLock::new(), inner: Mutex::default() }
    }

    /// Starts the timeline; nothing recorded before counts.
    pub fn begin(&self) -> Instant {
        *self.began.get_or_init(Instant::now)
    }

    pub fn began(&self) -> Option<Instant> {
        self.began.get().copied()
    }

    fn window_of(&self, at: Instant) -> Option<usize> {
        let began = self.began()?;
        let since = at.checked_duration_since(began)?;
        Some((since.as_micros() / self.window.as_micros().max(1)) as usize)
    }

    /// Applies a record made at `at` to its window; records from before the run (the set-up's login wave)
    /// are dropped.
    fn with(&self, at: Instant, apply: impl FnOnce(&mut Inner, usize)) {
        let Some(index) = self.window_of(at) else { return };
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.windows.len() <= index {
            inner.windows.push(Window::new());
        }
        apply(&mut inner, index);
    }

    /// An operation of `kind` that took `took`, finished now.
    pub fn latency(&self, kind: &'static str, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).clamp(1, 300_000_000);
        self.with(Instant::now(), |inner, index| {
            inner.totals.entry(kind).or_default().record(took, Ok(()));
            let window = &mut inner.windows[index];
            let histogram = match kind {
                SEND => &mut window.send,
                DELIVERY => &mut window.delivery,
                PROJECTION => &mut window.projection,
                _ => return,
            };
            histogram.saturating_record(micros);
        });
    }

    pub fn error(&self, kind: &'static str, code: String) {
        self.with(Instant::now(), |inner, index| {
            inner.totals.entry(kind).or_default().record(Duration::ZERO, Err(code));
            inner.windows[index].errors += 1;
        });
    }

    pub fn count(&self, count: Count, n: u64) {
        self.with(Instant::now(), |inner, index| {
            *inner.windows[index].counts.entry(count).or_default() += n;
        });
    }

    /// Gauges sampled at the end of window `index`.
    pub fn gauges(&self, index: usize, gauges: Gauges) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.gauges.len() <= index {
            inner.gauges.push(Gauges::default());
        }
        inner.gauges[index] = gauges;
    }

    /// Totals per kind over `elapsed`, in the summary's order.
    pub fn totals(&self, elapsed: Duration) -> Vec<RunStats> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        KINDS
            .iter()
            .filter_map(|kind| inner.totals.remove(kind).map(|recorder| recorder.finish(kind, "open loop", elapsed)))
            .collect()
    }

    /// The timeline up to `windows` windows.
    pub fn timeline(&self, windows: usize) -> Vec<WindowStats> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seconds = self.window.as_secs_f64();
        let ms = |histogram: &Histogram<u64>, quantile: f64| {
            if histogram.is_empty() { 0.0 } else { histogram.value_at_quantile(quantile) as f64 / 1000.0 }
        };
        (0..windows.min(inner.windows.len()))
            .map(|index| {
                let window = &inner.windows[index];
                let count = |count: Count| window.counts.get(&count).copied().unwrap_or(0);
                let gauges = inner.gauges.get(index).cloned().unwrap_or_default();
                WindowStats {
                    at_seconds: index as f64 * seconds,
                    offered_per_second: count(Count::Offered) as f64 / seconds,
                    accepted_per_second: count(Count::Accepted) as f64 / seconds,
                    deliveries_per_second: count(Count::Delivered) as f64 / seconds,
                    errors: window.errors,
                    reconnects: count(Count::Reconnects),
                    send_p50_ms: ms(&window.send, 0.5),
                    send_p99_ms: ms(&window.send, 0.99),
                    delivery_p50_ms: ms(&window.delivery, 0.5),
                    delivery_p99_ms: ms(&window.delivery, 0.99),
                    projection_p99_ms: ms(&window.projection, 0.99),
                    connected_users: gauges.connected_users,
                    processes: gauges.processes,
                }
            })
            .collect()
    }

    /// A counter summed over the first `windows` windows (the run) and over the rest (after it).
    pub fn sum(&self, count: Count, windows: usize) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let of = |window: &Window| window.counts.get(&count).copied().unwrap_or(0);
        let during = inner.windows.iter().take(windows).map(of).sum();
        let after = inner.windows.iter().skip(windows).map(of).sum();
        (during, after)
    }

    /// Live figures for the progress line: (accepted, delivered, errors, send p99 ms of the last full window).
    pub fn progress(&self) -> (u64, u64, u64, f64) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let sum =
            |count: Count| -> u64 { inner.windows.iter().map(|w| w.counts.get(&count).copied().unwrap_or(0)).sum() };
        let errors = inner.windows.iter().map(|w| w.errors).sum();
        let last = inner.windows.len().checked_sub(2).and_then(|index| inner.windows.get(index));
        let p99 = last.filter(|w| !w.send.is_empty()).map_or(0.0, |w| w.send.value_at_quantile(0.99) as f64 / 1000.0);
        (sum(Count::Accepted), sum(Count::Delivered), errors, p99)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_before_the_run_are_dropped_and_windows_split_by_time() {
        let metrics = Metrics::new(Duration::from_millis(50));
        metrics.latency(CONNECT, Duration::from_millis(3));
        metrics.count(Count::Accepted, 5);
        metrics.begin();
        metrics.latency(SEND, Duration::from_millis(10));
        metrics.count(Count::Accepted, 2);
        std::thread::sleep(Duration::from_millis(60));
        metrics.latency(SEND, Duration::from_millis(30));
        metrics.count(Count::Accepted, 1);
        let timeline = metrics.timeline(10);
        assert_eq!(timeline.len(), 2);
        assert_eq!(timeline[0].accepted_per_second, 2.0 / 0.05);
        assert_eq!(timeline[1].accepted_per_second, 1.0 / 0.05);
        assert!((timeline[1].send_p99_ms - 30.0).abs() < 1.0, "{timeline:?}");
        let totals = metrics.totals(Duration::from_secs(1));
        let kinds: Vec<&str> = totals.iter().map(|run| run.label.as_str()).collect();
        assert_eq!(kinds, [SEND]);
        assert_eq!(totals[0].ok, 2);
    }
}
