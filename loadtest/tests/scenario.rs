//! The steady scenario, small, against this build's service binaries on the local stack, with every
//! correctness check on: delivered exactly once and in order to every socket, nothing lost, no duplicate
//! ids, sync equal to history. Also the scale-out topology with one process of each service killed.
//!
//! `cargo test --workspace` builds the services' binaries next to this one (their own tests need them).

use std::path::Path;
use std::process::Command;

use chatsdk_testkit::ScratchDir;
use serde_json::Value;

/// Runs `loadtest scenario smoke` with `flags`; answers the report.
fn smoke(flags: &[&str]) -> Value {
    let loadtest = Path::new(env!("CARGO_BIN_EXE_loadtest"));
    let bin_dir = loadtest.parent().unwrap_or_else(|| Path::new("."));
    for service in ["command-api", "projector", "query-api"] {
        assert!(
            bin_dir.join(service).exists(),
            "{service} is not built next to loadtest: run the workspace's tests (cargo test --workspace)"
        );
    }
    let out = ScratchDir::new("loadtest-smoke");
    let output = Command::new(loadtest)
        .args(["scenario", "smoke", "--bin-dir"])
        .arg(bin_dir)
        .arg("--out")
        .arg(&out.path)
        .args(flags)
        .output()
        .unwrap_or_else(|error| panic!("running loadtest: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadtest failed\n{stdout}\n{stderr}");
    for plot in ["latency.svg", "throughput.svg"] {
        let svg = std::fs::read_to_string(out.path.join(plot)).unwrap_or_default();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{plot} has no lines: {svg}");
    }
    assert!(stdout.contains("Correctness: **0 violations**"), "{stdout}");
    let json = std::fs::read(out.path.join("report.json")).unwrap_or_default();
    serde_json::from_slice(&json).unwrap_or_else(|error| panic!("report.json: {error}"))
}

fn count(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("{pointer} missing: {report}"))
}

fn assert_nothing_violated(report: &Value) {
    for violation in [
        "missing",
        "duplicates",
        "out_of_order",
        "unexpected",
        "stalled_chains",
        "lost_sends",
        "duplicate_message_ids",
        "sync_mismatches",
        "users_without_stream",
    ] {
        assert_eq!(count(report, &format!("/verdict/{violation}")), 0, "{violation}: {}", report["verdict"]);
    }
    // The checks had something to judge: every user's socket, their sync, and the messages of the run.
    let users = count(report, "/scenario/users");
    assert!(count(report, "/verdict/chains") >= users, "{}", report["verdict"]);
    assert_eq!(count(report, "/verdict/sync_users_checked"), users);
    let acknowledged = count(report, "/verdict/acknowledged_sends");
    assert!(acknowledged > 50, "only {acknowledged} sends acknowledged");
    assert!(count(report, "/verdict/messages_in_history") >= acknowledged);
    let owed = count(report, "/verdict/deliveries_expected");
    assert!(owed > acknowledged, "deliveries owed {owed}");
    assert_eq!(count(report, "/verdict/deliveries_received"), owed);
}

#[test]
fn a_short_steady_scenario_delivers_everything_exactly_once_and_in_order() {
    let report = smoke(&[]);
    assert_nothing_violated(&report);
    // Every kind of operation ran and succeeded at least once (exact labels: "send" is not "send → delivery").
    let totals = report["totals"].as_array().cloned().unwrap_or_default();
    for measured in [
        "send (scheduled → 202)",
        "send → delivery at each receiving socket",
        "projection lag (202 → visible in a read)",
        "history page (50)",
        "sync page (≤100 events)",
        "search (20 hits)",
        "WebSocket connect (→ connected frame)",
        "mark read",
    ] {
        let ok = totals.iter().find(|run| run["label"] == measured).and_then(|run| run["ok"].as_u64());
        assert!(ok.is_some_and(|ok| ok > 0), "{measured} not measured: {totals:?}");
    }
    assert!(!report["timeline"].as_array().is_none_or(Vec::is_empty), "no timeline");
}

#[test]
fn the_scale_out_topology_stays_correct_when_one_process_of_each_service_is_killed() {
    let report = smoke(&["--topology", "2-2-3", "--kill", "true", "--seconds", "20"]);
    assert_nothing_violated(&report);
    let killed: Vec<&str> =
        report["kills"].as_array().into_iter().flatten().filter_map(|kill| kill["process"].as_str()).collect();
    assert_eq!(killed, ["command-api-2", "projector-2", "query-api-3"]);
    // The sockets of the killed query node resumed on another node with their tokens.
    assert!(count(&report, "/verdict/chains_moved") > 0, "{}", report["verdict"]);
}
