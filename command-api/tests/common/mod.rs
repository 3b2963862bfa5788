//! A private command-api + projector pair on the real stack: its own topic, database, consumer group and app.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use chatsdk_client::api::AppCredentials;
use chatsdk_client::token::{Claims, mint};
use chatsdk_client::{Client, Credentials};
use chatsdk_platform::config::Secret;
use chatsdk_schemas::Envelope;
use chatsdk_schemas::codec::{EventDecoder, RegistrySettings};
use chatsdk_testkit::service::RunningService;
use chatsdk_testkit::{Stack, TestDatabase, create_topic, wait_for};
use command_api::apps::create_app;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;
use uuid::Uuid;

pub const PARTITIONS: i32 = 3;
pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct Harness {
    pub stack: Stack,
    pub topic: String,
    pub group: String,
    pub database: TestDatabase,
    pub projector: RunningService,
    pub api: RunningService,
    pub app: AppCredentials,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// With the command API's config adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut command_api::Config)) -> Self {
        let stack = Stack::from_env();
        let topic = create_topic(&stack, "commands", PARTITIONS).await;
        let dlq_topic = create_topic(&stack, "commands-dlq", 1).await;
        let database = TestDatabase::create(&stack).await;
        let group = format!("test-projector-{}", Uuid::new_v4().simple());

        let mut projector = projector::Config::load(None).unwrap();
        projector.http.bind = "127.0.0.1:0".parse().unwrap();
        projector.postgres.url = Secret::new(database.url.clone());
        projector.consumer.topic = topic.clone();
        projector.consumer.dlq_topic = dlq_topic;
        projector.consumer.group_id = group.clone();
        let projector = RunningService::start::<projector::Application>(projector).await;

        let app_id = format!("app{}", &Uuid::new_v4().simple().to_string()[..12]).parse().unwrap();
        chatsdk_platform::postgres::MIGRATOR.run(&database.pool).await.unwrap();
        let app = create_app(&database.pool, &app_id).await.unwrap();

        let mut config = api_config(&topic, &group, &database);
        adjust(&mut config);
        let api = RunningService::start::<command_api::Application>(config).await;
        Self { stack, topic, group, database, projector, api, app }
    }

    pub fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    /// The app's backend.
    pub fn server(&self) -> Client {
        Client::new(
            self.api.url(""),
            Credentials::Server { api_key: self.app.api_key.clone(), api_secret: self.app.api_secret.clone() },
        )
        .unwrap()
    }

    /// A user of the app with a fresh one-hour token and its own session.
    pub fn user(&self, user: &str) -> Client {
        Client::new(self.api.url(""), Credentials::User { api_key: self.app.api_key.clone(), token: self.token(user) })
            .unwrap()
    }

    pub fn token(&self, user: &str) -> String {
        let claims = Claims::new(&user.parse().unwrap(), chrono::Utc::now().timestamp(), 3600);
        mint(&self.app.api_secret, &claims)
    }

    /// Every event in the topic, per partition in offset order, decoded with the registry.
    pub async fn log(&self) -> Vec<(i32, i64, Envelope)> {
        read_topic(&self.stack, &self.topic).await
    }

    /// Waits until the projector has applied `count` events in total.
    pub async fn wait_projected(&self, count: i64) {
        wait_for("events projected", Duration::from_secs(30), || async {
            let applied: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(next_offset), 0)::bigint FROM projector_checkpoints WHERE consumer = $1",
            )
            .bind(&self.group)
            .fetch_one(&self.database.pool)
            .await
            .unwrap_or(0);
            (applied >= count).then_some(())
        })
        .await;
    }

    pub async fn stop(self) {
        self.api.stop().await.unwrap();
        self.projector.stop().await.unwrap();
        self.database.drop_database().await;
    }
}

pub fn api_config(topic: &str, group: &str, database: &TestDatabase) -> command_api::Config {
    let mut config = command_api::Config::load(None).unwrap();
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    config.postgres.url = Secret::new(database.url.clone());
    config.events.topic = topic.to_owned();
    config.authz.projector_consumer = group.to_owned();
    config.auth.admin_token = Secret::new(ADMIN_TOKEN);
    config
}

pub async fn read_topic(stack: &Stack, topic: &str) -> Vec<(i32, i64, Envelope)> {
    let reader = format!("test-reader-{}", Uuid::new_v4().simple());
    let consumer: BaseConsumer = stack.kafka.consumer_config("command-api-test", Some(&reader)).create().unwrap();
    let decoder = EventDecoder::new(&RegistrySettings::new(&stack.registry.url, Duration::from_secs(5))).unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in 0..PARTITIONS {
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)).unwrap();
        if high > 0 {
            assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
            ends.push((partition, high));
        }
    }
    let total: i64 = ends.iter().map(|(_, high)| high).sum();
    let mut events = Vec::new();
    if total == 0 {
        return events;
    }
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (events.len() as i64) < total {
        assert!(std::time::Instant::now() < deadline, "reading {topic}: {} of {total} events", events.len());
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.unwrap();
        let envelope = decoder.decode(message.payload().unwrap()).await.unwrap();
        events.push((message.partition(), message.offset(), envelope));
    }
    events.sort_by_key(|(partition, offset, _)| (*partition, *offset));
    events
}

/// A validator for one of the document's component schemas (OpenAPI 3.1 schemas are JSON Schema 2020-12).
pub fn component(document: &Value, name: &str) -> jsonschema::Validator {
    let schema =
        serde_json::json!({ "$ref": format!("#/components/schemas/{name}"), "components": document["components"] });
    jsonschema::validator_for(&schema).unwrap_or_else(|error| panic!("schema {name}: {error}"))
}

pub fn assert_valid(document: &Value, name: &str, instance: &Value) {
    let validator = component(document, name);
    let errors: Vec<String> = validator.iter_errors(instance).map(|error| error.to_string()).collect();
    assert!(errors.is_empty(), "{name} rejects {instance}: {errors:?}");
}
