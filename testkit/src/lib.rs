//! Helpers for tests that talk to the real local stack (`infra/local/stack up`).
//!
//! The stack's addresses come from the same `CHATSDK_*` variables the services read (`./dev test` exports
//! them; by hand: `eval "$(infra/local/stack env)"`). A component that is not reachable fails the test with
//! a message saying so; nothing is skipped.

#![allow(clippy::unwrap_used)] // test helpers: a failed expectation is a test failure

pub mod fault;
pub mod service;

use std::future::Future;
use std::time::{Duration, Instant};

use chatsdk_platform::config;
use chatsdk_platform::kafka::KafkaConfig;
use chatsdk_platform::postgres::PostgresConfig;
use chatsdk_platform::registry::RegistryConfig;
use chatsdk_platform::s3::S3Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
// Database names are generated here (`test_` + a UUID), never taken from input.
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// The local stack's settings, as the services would load them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stack {
    pub kafka: KafkaConfig,
    pub postgres: PostgresConfig,
    pub registry: RegistryConfig,
    pub s3: S3Config,
    pub kafka_fault: KafkaFault,
}

/// The broker's fault-injection listener (`infra/local/env.sh`): it advertises `proxy`, so a client
/// bootstrapped at `proxy` talks to the broker only through a [`fault::FaultProxy`] listening there.
/// Only one test at a time may hold the proxy port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaFault {
    pub listener: std::net::SocketAddr,
    pub proxy: std::net::SocketAddr,
}

impl Default for KafkaFault {
    fn default() -> Self {
        Self {
            listener: std::net::SocketAddr::from(([127, 0, 0, 1], 19094)),
            proxy: std::net::SocketAddr::from(([127, 0, 0, 1], 19095)),
        }
    }
}

const HOW_TO_START: &str = "start the stack with `infra/local/stack up` and run tests through `./dev test` \
                            (or export the variables printed by `infra/local/stack env`)";

impl Stack {
    pub fn from_env() -> Self {
        config::load(None).unwrap_or_else(|error| panic!("loading the stack settings: {error}"))
    }
}

/// Polls `condition` until it yields `Some`, failing the test after `deadline`. Never a fixed sleep:
/// the poll interval only bounds how often we ask.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A database of its own for one test, created empty on the stack's PostgreSQL.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    admin_options: PgConnectOptions,
}

impl TestDatabase {
    pub async fn create(stack: &Stack) -> Self {
        let admin_options: PgConnectOptions = stack.postgres.url.expose().parse().unwrap();
        let mut admin = PgConnection::connect_with(&admin_options).await.unwrap_or_else(|error| {
            panic!("PostgreSQL unreachable at {}: {error}; {HOW_TO_START}", describe(&admin_options))
        });
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
        let url = chatsdk_platform::postgres::url_with_database(stack.postgres.url.expose(), &name);
        let mut config = stack.postgres.clone();
        config.url = config::Secret::new(url.clone());
        let pool = config.pool().unwrap();
        Self { name, url, pool, admin_options }
    }

    /// Drops the database (closing this pool first). Call it at the end of a test that passed.
    pub async fn drop_database(self) {
        self.pool.close().await;
        let mut admin = PgConnection::connect_with(&self.admin_options).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

fn describe(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Creates a topic with a random name, so tests never share data, and waits until it is usable.
pub async fn create_topic(stack: &Stack, prefix: &str, partitions: i32) -> String {
    let admin: AdminClient<DefaultClientContext> =
        stack.kafka.consumer_config("chatsdk-testkit", None).create().unwrap();
    let name = format!("test.{prefix}.{}", uuid::Uuid::new_v4().simple());
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(Duration::from_secs(20), admin.create_topics([&topic], &options))
        .await
        .unwrap_or_else(|_| panic!("Kafka at {} did not answer CreateTopics; {HOW_TO_START}", stack.kafka.brokers))
        .unwrap_or_else(|error| panic!("Kafka at {} unreachable: {error}; {HOW_TO_START}", stack.kafka.brokers));
    for result in results {
        result.unwrap_or_else(|(topic, error)| panic!("creating topic {topic}: {error}"));
    }
    name
}

/// A loopback port with nothing listening (bound, then released), for "dependency down" tests.
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A directory path of its own under the system's temporary directory (not created), removed with everything
/// in it — and beside it, like an index's lock file — when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    pub path: std::path::PathBuf,
}

impl ScratchDir {
    pub fn new(prefix: &str) -> Self {
        Self { path: std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple())) }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _best_effort = std::fs::remove_dir_all(&self.path);
        if let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name().and_then(|name| name.to_str())) {
            for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
                if entry.file_name().to_str().is_some_and(|other| other.starts_with(&format!("{name}."))) {
                    let _also_best_effort = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}
