//! The downstream example consumer, run as a process against the real broker and registry.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use chatsdk_schemas::{EventEncoder, RegistrySettings};
use chatsdk_testkit::{Stack, create_topic};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde_json::Value;

#[tokio::test]
async fn tail_events_prints_every_event_as_a_json_line_in_order() {
    let stack = Stack::from_env();
    let topic = create_topic(&stack, "tail", 1).await;
    let encoder =
        EventEncoder::new(RegistrySettings::new(&stack.registry.url, Duration::from_secs(5)), &topic).unwrap();
    let samples = common::full_samples();
    let producer = stack.kafka.producer("schemas-test").unwrap();
    for sample in &samples {
        let bytes = encoder.encode(sample).await.unwrap();
        producer
            .send(FutureRecord::to(&topic).key(&sample.key()).payload(&bytes), Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }
    // A record that is not an event: reported on stderr and skipped, not fatal.
    producer
        .send(
            FutureRecord::to(&topic).key("acme:general").payload("not an event"),
            Timeout::After(Duration::from_secs(10)),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();

    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tail-events"))
            .args(["--topic", &topic, "--group", &group, "--from-beginning", "--idle-exit-secs", "5"])
            .args(["--brokers", &stack.kafka.brokers, "--registry", &stack.registry.url])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("tail-events did not exit by itself")
    .unwrap();
    assert!(output.status.success(), "tail-events failed: {}", String::from_utf8_lossy(&output.stderr));

    let lines: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), samples.len());
    for (offset, (line, sample)) in lines.iter().zip(&samples).enumerate() {
        assert_eq!(line["offset"], Value::from(offset));
        assert_eq!(line["key"], Value::from(sample.key()));
        assert_eq!(line["event"], sample.to_value());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("skipping partition 0 offset {}", samples.len())), "{stderr}");
}
