//! schema_registry_converter against the real Apicurio registry of the local stack: a JSON Schema is
//! registered under TopicRecordNameStrategy and a value round-trips in Confluent wire format.

#![allow(clippy::unwrap_used)]

use chatsdk_testkit::Stack;
use schema_registry_converter::async_impl::json::{JsonDecoder, JsonEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use serde_json::{Value, json};

const RECORD_NAME: &str = "chatsdk.test.Ping";

fn ping_schema() -> SuppliedSchema {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": RECORD_NAME,
        "type": "object",
        "properties": {
            "event_id": { "type": "string" },
            "text": { "type": "string", "maxLength": 100 }
        },
        "required": ["event_id", "text"],
        "additionalProperties": false
    });
    SuppliedSchema::new(Some(RECORD_NAME.to_owned()), SchemaType::Json, schema.to_string())
}

fn strategy(topic: &str) -> SubjectNameStrategy {
    SubjectNameStrategy::TopicRecordNameStrategyWithSchema(topic.to_owned(), ping_schema())
}

fn settings(stack: &Stack) -> SrSettings {
    SrSettings::new(stack.registry.url.clone())
}

#[tokio::test]
async fn json_value_round_trips_in_confluent_wire_format() {
    let stack = Stack::from_env();
    // A random topic name gives a subject of its own: no test sees another's schema.
    let topic = format!("test.registry.{}", uuid::Uuid::new_v4().simple());
    let encoder = JsonEncoder::new(settings(&stack));
    let value = json!({ "event_id": "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f60", "text": "héllo" });

    let bytes = encoder
        .encode(&value, strategy(&topic))
        .await
        .unwrap_or_else(|error| panic!("registry at {} failed: {error}; is the stack up?", stack.registry.url));

    // Confluent framing: magic byte 0, big-endian schema id, then the JSON document.
    assert_eq!(bytes[0], 0);
    let schema_id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    assert_eq!(serde_json::from_slice::<Value>(&bytes[5..]).unwrap(), value);

    // The registry knows the id under the TopicRecordNameStrategy subject.
    let subject = format!("{topic}-{RECORD_NAME}");
    let latest: Value = reqwest::get(format!("{}/subjects/{subject}/versions/latest", stack.registry.url))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["id"].as_u64(), Some(u64::from(schema_id)));

    let decoded = JsonDecoder::new(settings(&stack)).decode(Some(&bytes)).await.unwrap().unwrap();
    assert_eq!(decoded.value, value);
    assert_eq!(decoded.schema.id, schema_id);
}

#[tokio::test]
async fn a_value_that_violates_the_schema_is_not_encoded() {
    let stack = Stack::from_env();
    let topic = format!("test.registry.{}", uuid::Uuid::new_v4().simple());
    let encoder = JsonEncoder::new(settings(&stack));
    // The schema is registered and a valid value encodes, so the failures below are validation failures.
    encoder
        .encode(&json!({ "event_id": "e1", "text": "t" }), strategy(&topic))
        .await
        .unwrap_or_else(|error| panic!("registry at {} failed: {error}; is the stack up?", stack.registry.url));

    let missing_text = encoder.encode(&json!({ "event_id": "e1" }), strategy(&topic)).await;
    assert!(missing_text.is_err(), "a value without a required field was encoded");

    let unknown_field = encoder.encode(&json!({ "event_id": "e1", "text": "t", "extra": 1 }), strategy(&topic)).await;
    assert!(unknown_field.is_err(), "a value with an unknown field was encoded");
}

#[tokio::test]
async fn bytes_without_confluent_framing_are_a_decode_error() {
    let stack = Stack::from_env();
    let decoder = JsonDecoder::new(settings(&stack));
    let outcome = decoder.decode(Some(br#"{"event_id":"e1","text":"t"}"#)).await;
    assert!(outcome.is_err(), "plain JSON without magic byte and schema id was decoded");
}
