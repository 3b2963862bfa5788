//! The query-api against the real local stack: ops endpoints, dependency failure, SIGTERM.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use chatsdk_platform::config::Secret;
use chatsdk_testkit::service::{
    assert_binary_stops_cleanly_on_sigterm, assert_not_ready_without, assert_ops_endpoints_ready,
};
use chatsdk_testkit::unused_port;
use query_api::{Application, Config};

fn config() -> Config {
    let mut config = Config::load(None).unwrap();
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    config
}

#[tokio::test]
async fn ready_when_every_dependency_of_the_stack_answers() {
    assert_ops_endpoints_ready::<Application>(
        config(),
        &["kafka", "postgres", "registry", "s3", "realtime"],
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test]
async fn postgres_down_makes_readyz_503_while_the_process_keeps_serving() {
    let mut config = config();
    config.postgres.url = Secret::new(format!("postgres://chatsdk@127.0.0.1:{}/chatsdk", unused_port()));
    assert_not_ready_without::<Application>(config, "postgres").await;
}

#[tokio::test]
async fn kafka_down_makes_readyz_503() {
    let mut config = config();
    config.kafka.brokers = format!("127.0.0.1:{}", unused_port());
    assert_not_ready_without::<Application>(config, "kafka").await;
}

#[tokio::test]
async fn binary_drains_and_exits_zero_on_sigterm() {
    assert_binary_stops_cleanly_on_sigterm(Path::new(env!("CARGO_BIN_EXE_query-api"))).await;
}
