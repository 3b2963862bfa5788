//! The Rust types and the JSON Schema files agree: every sample validates against its file, every field of
//! every file is used by the types, and the files share one envelope. No registry needed.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use chatsdk_schemas::EventType;
use chatsdk_schemas::catalog::{SCHEMA_FILES, SchemaFile, record_name, schema_file};
use chatsdk_schemas::events::Envelope;
use serde_json::{Value, json};

fn schema(file: &SchemaFile) -> Value {
    serde_json::from_str(file.source).unwrap_or_else(|error| panic!("{} is not JSON: {error}", file.file_name()))
}

fn validator(event_type: EventType) -> (Value, jsonschema::Validator) {
    let file = schema_file(event_type, event_type.latest_version())
        .unwrap_or_else(|| panic!("no schema file for {}", event_type.as_str()));
    let schema = schema(file);
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|error| panic!("{}: {error}", file.file_name()));
    (schema, validator)
}

fn assert_valid(envelope: &Envelope) {
    let (_, validator) = validator(envelope.event_type());
    let value = envelope.to_value();
    let errors: Vec<String> =
        validator.iter_errors(&value).map(|error| format!("{error} at {}", error.instance_path())).collect();
    assert!(errors.is_empty(), "{} sample does not validate: {errors:?}\n{value:#}", envelope.event_type().as_str());
}

/// Every property path a schema allows, following local `$ref`s; the inside of free-form objects (no
/// `properties`) is not a schema field.
fn schema_paths(schema: &Value, root: &Value, prefix: &str, paths: &mut BTreeSet<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/definitions/");
        return schema_paths(&root["definitions"][name], root, prefix, paths);
    }
    if let Some(items) = schema.get("items") {
        return schema_paths(items, root, &format!("{prefix}[]"), paths);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            paths.insert(path.clone());
            schema_paths(property, root, &path, paths);
        }
    }
}

/// Every key path of a value; `custom` objects are the customer's own data, not schema fields.
fn value_paths(value: &Value, prefix: &str, paths: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) => {
            for (name, child) in object {
                let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                paths.insert(path.clone());
                if name != "custom" {
                    value_paths(child, &path, paths);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                value_paths(item, &format!("{prefix}[]"), paths);
            }
        }
        _ => {}
    }
}

#[test]
fn every_event_type_has_one_schema_file_per_version_and_nothing_else() {
    let expected: BTreeSet<(String, u32)> = EventType::ALL
        .iter()
        .flat_map(|event_type| {
            (1..=event_type.latest_version()).map(|version| (event_type.as_str().to_owned(), version))
        })
        .collect();
    let found: BTreeSet<(String, u32)> =
        SCHEMA_FILES.iter().map(|file| (file.event_type.to_owned(), file.version)).collect();
    assert_eq!(found, expected);

    let on_disk: BTreeSet<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/json"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let embedded: BTreeSet<String> = SCHEMA_FILES.iter().map(SchemaFile::file_name).collect();
    assert_eq!(on_disk, embedded, "schemas/json and the embedded catalog differ");
}

#[test]
fn each_file_names_its_record_and_pins_its_type() {
    for file in SCHEMA_FILES {
        let schema = schema(file);
        assert_eq!(schema["title"], json!(record_name(file.event_type)), "{}", file.file_name());
        assert_eq!(schema["properties"]["type"]["const"], json!(file.event_type), "{}", file.file_name());
        assert_eq!(schema["additionalProperties"], json!(false), "{} must be closed", file.file_name());
        assert_eq!(
            schema["properties"]["payload"]["additionalProperties"],
            json!(false),
            "{} payload must be closed",
            file.file_name()
        );
    }
}

#[test]
fn every_file_shares_one_envelope() {
    let envelope_of = |file: &SchemaFile| {
        let mut schema = schema(file);
        let properties = schema["properties"].as_object_mut().unwrap();
        properties.remove("payload");
        properties.remove("type");
        (
            schema["required"].clone(),
            schema["properties"].clone(),
            schema["definitions"]["id"].clone(),
            schema["definitions"]["uuid"].clone(),
        )
    };
    let first = envelope_of(&SCHEMA_FILES[0]);
    for file in &SCHEMA_FILES[1..] {
        assert_eq!(
            envelope_of(file),
            first,
            "{} has a different envelope than {}",
            file.file_name(),
            SCHEMA_FILES[0].file_name()
        );
    }
}

#[test]
fn full_and_minimal_samples_validate_against_their_files() {
    let full = common::full_samples();
    let minimal = common::minimal_samples();
    let covered: BTreeSet<EventType> = full.iter().map(Envelope::event_type).collect();
    assert_eq!(covered.len(), EventType::ALL.len(), "a sample is missing");
    for sample in full.iter().chain(&minimal) {
        assert_valid(sample);
    }
}

#[test]
fn every_schema_field_is_used_by_the_rust_types_and_no_other() {
    for sample in common::full_samples() {
        let (schema, _) = validator(sample.event_type());
        let mut declared = BTreeSet::new();
        schema_paths(&schema, &schema, "", &mut declared);
        let mut written = BTreeSet::new();
        value_paths(&sample.to_value(), "", &mut written);
        assert_eq!(written, declared, "{}: Rust type and schema file disagree", sample.event_type().as_str());
    }
}

#[test]
fn samples_round_trip_through_json() {
    for sample in common::full_samples().into_iter().chain(common::minimal_samples()) {
        let text = serde_json::to_string(&sample).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, sample);
    }
}

#[test]
fn the_files_reject_what_the_contract_forbids() {
    let (_, sent) = validator(EventType::MessageSent);
    let base = common::full_samples()
        .into_iter()
        .find(|sample| sample.event_type() == EventType::MessageSent)
        .unwrap()
        .to_value();
    let mutate = |change: &dyn Fn(&mut Value)| {
        let mut value = base.clone();
        change(&mut value);
        value
    };
    let forbidden = [
        ("text over 10,000 characters", mutate(&|value| value["payload"]["text"] = json!("x".repeat(10_001)))),
        ("unknown payload field", mutate(&|value| value["payload"]["colour"] = json!("red"))),
        ("unknown envelope field", mutate(&|value| value["tenant"] = json!("x"))),
        ("id with a colon", mutate(&|value| value["channel_id"] = json!("a:b"))),
        (
            "uppercase uuid",
            mutate(&|value| value["payload"]["message_id"] = json!("0190F3A2-7C1E-7D3B-9A55-1B2C3D4E5F60")),
        ),
        ("local time", mutate(&|value| value["occurred_at"] = json!("2026-11-29T13:00:00+01:00"))),
        ("version 0", mutate(&|value| value["version"] = json!(0))),
        ("wrong type name", mutate(&|value| value["type"] = json!("message.edited"))),
        ("negative attachment size", mutate(&|value| value["payload"]["attachments"][0]["size"] = json!(-1))),
        (
            "missing text",
            mutate(&|value| {
                value["payload"].as_object_mut().unwrap().remove("text");
            }),
        ),
    ];
    for (what, value) in forbidden {
        assert!(!sent.is_valid(&value), "{what} was accepted");
    }
    assert!(sent.is_valid(&base), "the unmodified sample must stay valid");
}
