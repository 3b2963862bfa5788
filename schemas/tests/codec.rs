//! The event codec against the real registry and broker of the local stack.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatsdk_schemas::catalog::{record_name, schema_file};
use chatsdk_schemas::codec::{COMPATIBILITY, frame};
use chatsdk_schemas::events::{Event, MessageSent};
use chatsdk_schemas::{
    DecodeError, EncodeError, EventDecoder, EventEncoder, EventType, RegistryError, RegistrySettings,
};
use chatsdk_testkit::{Stack, create_topic, unused_port};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn settings(url: &str) -> RegistrySettings {
    RegistrySettings::new(url, Duration::from_secs(5))
}

/// A topic name of its own per test, so subjects (`{topic}-{record}`) are never shared between tests.
fn fresh_topic_name() -> String {
    format!("test.codec.{}", uuid::Uuid::new_v4().simple())
}

async fn registered_encoder(stack: &Stack, topic: &str) -> EventEncoder {
    let encoder = EventEncoder::new(settings(&stack.registry.url), topic).unwrap();
    encoder
        .register_all()
        .await
        .unwrap_or_else(|error| panic!("registry at {}: {error}; is the stack up?", stack.registry.url));
    encoder
}

#[tokio::test]
async fn registration_sets_backward_transitive_on_every_subject() {
    let stack = Stack::from_env();
    let topic = fresh_topic_name();
    let encoder = EventEncoder::new(settings(&stack.registry.url), &topic).unwrap();
    let registrations = encoder.register_all().await.unwrap();
    assert_eq!(registrations.len(), EventType::ALL.len());

    for registration in &registrations {
        let config: Value = reqwest::get(format!("{}/config/{}", stack.registry.url, registration.subject))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(config["compatibilityLevel"], json!(COMPATIBILITY), "{}: {config}", registration.subject);
    }
    // Registering again is a no-op that keeps the ids.
    assert_eq!(encoder.register_all().await.unwrap(), registrations);
}

#[tokio::test]
async fn every_sample_round_trips_through_kafka_and_the_registry() {
    let stack = Stack::from_env();
    let topic = create_topic(&stack, "codec", 1).await;
    let encoder = registered_encoder(&stack, &topic).await;
    let samples: Vec<_> = common::full_samples().into_iter().chain(common::minimal_samples()).collect();

    let producer = stack.kafka.producer("schemas-test").unwrap();
    for sample in &samples {
        let bytes = encoder.encode(sample).await.unwrap();
        let key = sample.key();
        producer
            .send(FutureRecord::to(&topic).key(&key).payload(&bytes), Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }

    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = stack.kafka.consumer_config("schemas-test", Some(&group)).create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let decoder = EventDecoder::new(&settings(&stack.registry.url)).unwrap();
    for expected in &samples {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv()).await.unwrap().unwrap();
        assert_eq!(message.key(), Some(expected.key().as_bytes()));
        let decoded = decoder.decode(message.payload().unwrap()).await.unwrap();
        assert_eq!(&decoded, expected);
    }
}

#[tokio::test]
async fn breaking_change_is_rejected_and_additive_change_accepted() {
    let stack = Stack::from_env();
    let topic = fresh_topic_name();
    let encoder = EventEncoder::new(settings(&stack.registry.url), &topic).unwrap();
    let registrations = encoder.register_all().await.unwrap();
    let subject = format!("{topic}-{}", record_name("reaction.added"));
    let v1_id = registrations.iter().find(|registration| registration.subject == subject).unwrap().schema_id;
    let v1: Value = serde_json::from_str(schema_file(EventType::ReactionAdded, 1).unwrap().source).unwrap();
    let sr = SrSettings::new(stack.registry.url.clone());
    let post = |schema: Value| {
        let sr = sr.clone();
        let subject = subject.clone();
        async move {
            let supplied =
                SuppliedSchema::new(Some(record_name("reaction.added")), SchemaType::Json, schema.to_string());
            post_schema(&sr, subject, supplied).await
        }
    };

    // v2 that drops the required `emoji`: old events carry it, and the closed v2 schema would reject them.
    let mut breaking = v1.clone();
    breaking["properties"]["payload"]["properties"].as_object_mut().unwrap().remove("emoji");
    breaking["properties"]["payload"]["required"] = json!(["message_id"]);
    let rejected = post(breaking).await;
    let error = rejected.err().map(|error| format!("{} {:?}", error.error, error.cause)).unwrap_or_default();
    assert!(error.contains("409"), "a breaking v2 was not rejected as incompatible: {error:?}");

    // v2 that adds an optional field: every v1 event is still valid.
    let mut additive = v1.clone();
    additive["properties"]["payload"]["properties"]["skin_tone"] =
        json!({ "type": "integer", "minimum": 1, "maximum": 5 });
    let accepted = post(additive).await.unwrap_or_else(|error| panic!("an additive v2 was rejected: {error}"));
    assert_ne!(accepted.id, v1_id, "the additive change must be a new schema version");

    // With a newer version in the subject, registering the v1 file again (every service start does) still
    // works and keeps v1's id.
    assert_eq!(encoder.register_all().await.unwrap(), registrations);
}

#[tokio::test]
async fn bad_bytes_are_typed_decode_errors_never_panics() {
    let stack = Stack::from_env();
    let topic = fresh_topic_name();
    let encoder = registered_encoder(&stack, &topic).await;
    let decoder = EventDecoder::new(&settings(&stack.registry.url)).unwrap();
    let sample = common::full_samples().remove(6);
    let good = encoder.encode(&sample).await.unwrap();
    let schema_id = u32::from_be_bytes(good[1..5].try_into().unwrap());

    assert!(matches!(decoder.decode(b"plain text").await, Err(DecodeError::NotConfluentFraming(_))));
    assert!(matches!(decoder.decode(&[0, 0]).await, Err(DecodeError::NotConfluentFraming(_))));
    assert!(matches!(
        decoder.decode(&frame(0x7fff_fff0, &sample.to_value())).await,
        Err(DecodeError::UnknownSchemaId(0x7fff_fff0))
    ));

    let mut not_json = good[..5].to_vec();
    not_json.extend_from_slice(b"{not json");
    assert!(matches!(decoder.decode(&not_json).await, Err(DecodeError::InvalidJson(_))));

    let mut violating = sample.to_value();
    violating["payload"]["text"] = json!(12);
    let outcome = decoder.decode(&frame(schema_id, &violating)).await;
    assert!(
        matches!(outcome, Err(DecodeError::SchemaViolation { schema_id: id, .. }) if id == schema_id),
        "{outcome:?}"
    );

    // Valid under another type's schema but framed with message.sent's id.
    let other = common::full_samples().remove(0).to_value();
    assert!(matches!(decoder.decode(&frame(schema_id, &other)).await, Err(DecodeError::SchemaViolation { .. })));

    // The good bytes still decode: errors did not poison the cache.
    assert_eq!(decoder.decode(&good).await.unwrap(), sample);
}

#[tokio::test]
async fn the_encoder_refuses_events_that_break_the_contract() {
    let stack = Stack::from_env();
    let encoder = registered_encoder(&stack, &fresh_topic_name()).await;
    let mut too_long = common::full_samples().remove(6);
    if let Event::MessageSent(MessageSent { text, .. }) = &mut too_long.event {
        *text = "é".repeat(10_001);
    }
    assert!(matches!(
        encoder.encode(&too_long).await,
        Err(EncodeError::SchemaViolation { event_type: "message.sent", .. })
    ));

    let mut unknown_version = common::full_samples().remove(6);
    unknown_version.version = 9;
    assert!(matches!(encoder.encode(&unknown_version).await, Err(EncodeError::NoSchema { version: 9, .. })));
}

#[tokio::test]
async fn registry_unreachable_is_a_retriable_error() {
    let url = format!("http://127.0.0.1:{}/apis/ccompat/v7", unused_port());
    let decoder = EventDecoder::new(&settings(&url)).unwrap();
    let error = decoder.decode(&frame(1, &json!({}))).await.err().unwrap();
    assert!(error.is_retriable(), "{error}");

    let encoder = EventEncoder::new(settings(&url), "t").unwrap();
    let outcome = encoder.encode(&common::full_samples().remove(0)).await;
    assert!(matches!(outcome, Err(EncodeError::Registry(RegistryError::Unavailable(_)))), "{outcome:?}");
}

/// A TCP proxy in front of the registry that counts HTTP requests passing through it.
async fn counting_proxy(target: &str) -> (String, Arc<AtomicUsize>) {
    let upstream = target.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let path =
        target.trim_start_matches("http://").split_once('/').map(|(_, path)| path.to_owned()).unwrap_or_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let to_server = async move {
                    let mut buffer = vec![0_u8; 16 * 1024];
                    while let Ok(read) = client_read.read(&mut buffer).await {
                        if read == 0 || server_write.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                        // Request lines end in " HTTP/1.1\r\n"; bodies (JSON) never contain that.
                        let chunk = &buffer[..read];
                        let count = chunk.windows(11).filter(|window| window == b" HTTP/1.1\r\n").count();
                        counter.fetch_add(count, Ordering::SeqCst);
                    }
                };
                let to_client = async move {
                    let _closed = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                tokio::join!(to_server, to_client);
            });
        }
    });
    (format!("http://{address}/{path}"), requests)
}

#[tokio::test]
async fn after_warm_up_encoding_and_decoding_make_no_registry_call() {
    let stack = Stack::from_env();
    let (proxied, requests) = counting_proxy(&stack.registry.url).await;
    let topic = fresh_topic_name();
    let encoder = EventEncoder::new(settings(&proxied), &topic).unwrap();
    let decoder = EventDecoder::new(&settings(&proxied)).unwrap();
    let samples = common::full_samples();

    // Warm-up: each type registered once, each schema fetched once.
    for sample in &samples {
        decoder.decode(&encoder.encode(sample).await.unwrap()).await.unwrap();
    }
    let after_warm_up = requests.load(Ordering::SeqCst);
    assert!(after_warm_up >= samples.len(), "the proxy saw {after_warm_up} requests: is it in the path?");

    for _round in 0..20 {
        for sample in &samples {
            let decoded = decoder.decode(&encoder.encode(sample).await.unwrap()).await.unwrap();
            assert_eq!(&decoded, sample);
        }
    }
    assert_eq!(requests.load(Ordering::SeqCst), after_warm_up, "the hot path called the registry");
}
