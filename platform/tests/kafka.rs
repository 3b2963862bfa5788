//! The Kafka client setup against the real broker of the local stack.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chatsdk_platform::kafka::KafkaConfig;
use chatsdk_schemas::channel_key;
use chatsdk_testkit::{Stack, create_topic};
use futures::future::join_all;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 12;

/// Produces every (key, value) at once (up to 5 requests in flight) and returns (partition, offset) of each.
async fn produce_all(kafka: &KafkaConfig, topic: &str, records: &[(String, String)]) -> Vec<(i32, i64)> {
    let producer = kafka.producer("platform-test").unwrap();
    let deliveries = records.iter().map(|(key, value)| {
        let record = FutureRecord::to(topic).key(key).payload(value);
        producer.send(record, Timeout::After(Duration::from_secs(10)))
    });
    join_all(deliveries)
        .await
        .into_iter()
        .map(|delivery| {
            let delivered = delivery.map_err(|(error, _)| error).unwrap();
            (delivered.partition, delivered.offset)
        })
        .collect()
}

#[tokio::test]
async fn same_key_lands_in_one_partition_in_order() {
    let stack = Stack::from_env();
    let topic = create_topic(&stack, "ordering", PARTITIONS).await;
    let key = channel_key("app_1", "general");
    let records: Vec<(String, String)> =
        (0..200).map(|sequence| (key.clone(), format!("message-{sequence}"))).collect();

    let positions = produce_all(&stack.kafka, &topic, &records).await;

    let partition = positions[0].0;
    assert!(positions.iter().all(|(other, _)| *other == partition), "one key, several partitions: {positions:?}");
    assert!(positions.windows(2).all(|pair| pair[1].1 == pair[0].1 + 1), "offsets not in send order: {positions:?}");

    // A group id only because librdkafka wants one for a consumer; partitions are assigned by hand and
    // nothing is committed.
    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = stack.kafka.consumer_config("platform-test", Some(&group)).create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, partition, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let mut received = Vec::new();
    while received.len() < records.len() {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("no message within 20 s")
            .unwrap();
        assert_eq!(message.key(), Some(key.as_bytes()));
        received.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
    }
    let sent: Vec<String> = records.into_iter().map(|(_, value)| value).collect();
    assert_eq!(received, sent);
}

#[tokio::test]
async fn partition_of_a_key_matches_java_default_partitioner() {
    // Generated with Java's murmur2 (infra/local/kafka/Murmur2Vectors.java) for 12 partitions.
    let expected = [
        ("app_1:general", 10),
        ("app_1:random", 4),
        ("app_2:general", 0),
        ("acme:dm-alice-bob", 3),
        ("tenant-42:support", 10),
        ("a:b", 3),
        ("émoji-app:канал", 6),
        ("app_1:0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f60", 2),
    ];
    let stack = Stack::from_env();
    let topic = create_topic(&stack, "murmur2", PARTITIONS).await;
    let records: Vec<(String, String)> = expected.iter().map(|(key, _)| ((*key).to_owned(), "x".to_owned())).collect();

    let positions = produce_all(&stack.kafka, &topic, &records).await;

    let actual: Vec<(&str, i32)> =
        expected.iter().zip(&positions).map(|((key, _), (partition, _))| (*key, *partition)).collect();
    assert_eq!(actual, expected.to_vec());
}

#[tokio::test]
async fn produce_to_an_unreachable_broker_fails_within_the_delivery_deadline() {
    let kafka = KafkaConfig {
        brokers: format!("127.0.0.1:{}", chatsdk_testkit::unused_port()),
        delivery_timeout_ms: 1_500,
        ..KafkaConfig::default()
    };
    let producer = kafka.producer("platform-test").unwrap();
    let record = FutureRecord::to("chatsdk.channel-events.v1").key("a:b").payload("x");
    // The outer timeout only guards the test; the assertion is that the producer itself gives up.
    let outcome =
        tokio::time::timeout(Duration::from_secs(30), producer.send(record, Timeout::After(Duration::from_secs(1))))
            .await
            .expect("the producer kept waiting past its delivery deadline");
    assert!(outcome.is_err(), "a produce to a closed port succeeded");
}
