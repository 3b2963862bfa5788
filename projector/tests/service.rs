//! The projector against the real local stack: migrations at start, ops endpoints, dependency failure,
//! SIGTERM.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use chatsdk_platform::config::Secret;
use chatsdk_platform::service::Service;
use chatsdk_testkit::service::{
    assert_binary_stops_cleanly_on_sigterm, assert_not_ready_without, assert_ops_endpoints_ready,
};
use chatsdk_testkit::{Stack, TestDatabase, unused_port};
use projector::{Application, Config};

fn config() -> Config {
    let mut config = Config::load(None).unwrap();
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    config
}

#[tokio::test]
async fn applies_migrations_to_an_empty_database_then_reports_ready() {
    let database = TestDatabase::create(&Stack::from_env()).await;
    let mut config = config();
    config.postgres.url = Secret::new(database.url.clone());

    assert_ops_endpoints_ready::<Application>(
        config,
        &["kafka", "postgres", "registry", "migrations"],
        Duration::from_secs(60),
    )
    .await;

    let checkpoints: Option<String> = sqlx::query_scalar("SELECT to_regclass('projector_checkpoints')::text")
        .fetch_one(&database.pool)
        .await
        .unwrap();
    assert_eq!(checkpoints.as_deref(), Some("projector_checkpoints"));
    database.drop_database().await;
}

#[tokio::test]
async fn postgres_down_leaves_migrations_pending_and_readyz_503() {
    let mut config = config();
    config.postgres.url = Secret::new(format!("postgres://chatsdk@127.0.0.1:{}/chatsdk", unused_port()));
    assert_not_ready_without::<Application>(config.clone(), "postgres").await;
    assert_not_ready_without::<Application>(config, "migrations").await;
}

#[tokio::test]
async fn binary_drains_and_exits_zero_on_sigterm() {
    assert_binary_stops_cleanly_on_sigterm(Path::new(env!("CARGO_BIN_EXE_projector"))).await;
}

#[tokio::test]
async fn a_consumer_that_cannot_subscribe_stops_the_process_instead_of_idling() {
    let database = TestDatabase::create(&Stack::from_env()).await;
    let mut config = config();
    config.postgres.url = Secret::new(database.url.clone());
    // An invalid topic pattern: librdkafka refuses the subscription.
    config.consumer.topic = "^[".to_owned();
    let application = Application::build(config).await.unwrap();
    let stopped =
        tokio::time::timeout(Duration::from_secs(30), application.run_until_stopped(futures::future::pending()))
            .await
            .expect("the projector kept running without a consumer");
    assert!(stopped.is_err(), "a failed consumer must fail the process");
    database.drop_database().await;
}
