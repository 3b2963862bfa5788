//! The Prometheus recorder and the name of every metric, in one place.
//!
//! Labels stay low-cardinality: route templates, methods, status codes, dependency names; never user,
//! channel or app ids.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS_TOTAL: &str = "chatsdk_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "chatsdk_http_request_duration_seconds";
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "chatsdk_http_requests_in_flight";
pub const DEPENDENCY_UP: &str = "chatsdk_dependency_up";
pub const DEPENDENCY_PROBE_DURATION_SECONDS: &str = "chatsdk_dependency_probe_duration_seconds";
pub const BUILD_INFO: &str = "chatsdk_build_info";

pub const PROJECTOR_EVENTS_APPLIED_TOTAL: &str = "chatsdk_projector_events_applied_total";
pub const PROJECTOR_BATCH_EVENTS: &str = "chatsdk_projector_batch_events";
pub const PROJECTOR_BATCH_DURATION_SECONDS: &str = "chatsdk_projector_batch_duration_seconds";
pub const PROJECTOR_DEAD_LETTERS_TOTAL: &str = "chatsdk_projector_dead_letters_total";
pub const PROJECTOR_REBALANCES_TOTAL: &str = "chatsdk_projector_rebalances_total";
pub const PROJECTOR_ASSIGNED_PARTITIONS: &str = "chatsdk_projector_assigned_partitions";
/// Events in the log not yet applied, per partition (from librdkafka's statistics).
pub const PROJECTOR_LAG: &str = "chatsdk_projector_lag";
pub const PROJECTOR_STALE_BATCHES_TOTAL: &str = "chatsdk_projector_stale_batches_total";
pub const PROJECTOR_RETRIES_TOTAL: &str = "chatsdk_projector_retries_total";
/// Next offset to apply, per partition (a label bounded by the partition count).
pub const PROJECTOR_CHECKPOINT: &str = "chatsdk_projector_checkpoint";

/// Events the search consumer read, decodable or not.
pub const SEARCH_EVENTS_TOTAL: &str = "chatsdk_search_events_total";
/// Documents the search consumer added, replaced or turned into tombstones.
pub const SEARCH_DOCUMENT_CHANGES_TOTAL: &str = "chatsdk_search_document_changes_total";
/// Duration of a Tantivy commit (with its offsets).
pub const SEARCH_COMMIT_DURATION_SECONDS: &str = "chatsdk_search_commit_duration_seconds";
/// Next offset the search index will apply, per partition (its last commit).
pub const SEARCH_CHECKPOINT: &str = "chatsdk_search_checkpoint";
/// Searches answered, by outcome (`ok`, `invalid_query`, `unavailable`).
pub const QUERY_SEARCHES_TOTAL: &str = "chatsdk_query_searches_total";
/// Events the command API appended, by event type.
pub const COMMAND_EVENTS_APPENDED_TOTAL: &str = "chatsdk_command_events_appended_total";
/// From handing an event to the producer to Kafka's acknowledgement (acks=all), successful or not.
pub const COMMAND_PRODUCE_DURATION_SECONDS: &str = "chatsdk_command_produce_duration_seconds";
/// Produces that failed or timed out (answered 503).
pub const COMMAND_PRODUCE_FAILURES_TOTAL: &str = "chatsdk_command_produce_failures_total";
/// Commands that waited for their `min_position`, by outcome (`reached`, `timeout`).
pub const COMMAND_POSITION_WAITS_TOTAL: &str = "chatsdk_command_position_waits_total";
/// Sends answered as retries of an earlier send, by where the original was found (`memory`, `read_model`).
pub const COMMAND_RETRIED_SENDS_TOTAL: &str = "chatsdk_command_retried_sends_total";
/// Open WebSockets on this query node.
pub const QUERY_WS_CONNECTIONS: &str = "chatsdk_query_ws_connections";
/// Event frames written to sockets.
pub const QUERY_WS_DELIVERIES_TOTAL: &str = "chatsdk_query_ws_deliveries_total";
/// Sockets told to resync, by reason (`token_too_old`, `slow_consumer`).
pub const QUERY_WS_RESYNCS_TOTAL: &str = "chatsdk_query_ws_resyncs_total";
/// Records of the event log this node's tail has read.
pub const QUERY_TAIL_RECORDS_TOTAL: &str = "chatsdk_query_tail_records_total";
/// Seconds from an event's `occurred_at` to this node's tail reading it.
pub const QUERY_TAIL_DELAY_SECONDS: &str = "chatsdk_query_tail_delay_seconds";
/// `/v1/sync` events returned.
pub const QUERY_SYNC_EVENTS_TOTAL: &str = "chatsdk_query_sync_events_total";

const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder, installed on first use. Several services started in one test process
/// share it, which is harmless: every series carries the `service` label.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS_SECONDS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Records the build as a gauge so dashboards can tell versions apart.
pub fn describe_service(service: &'static str) {
    prometheus();
    metrics::gauge!(BUILD_INFO, "service" => service, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
