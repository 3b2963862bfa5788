//! sqlx against the real PostgreSQL of the local stack.

#![allow(clippy::unwrap_used)]

use chatsdk_platform::config::Secret;
use chatsdk_platform::postgres::{MIGRATOR, PostgresConfig};
use chatsdk_testkit::{Stack, TestDatabase, unused_port};

#[tokio::test]
async fn migrations_apply_to_a_fresh_database_and_reapply_as_a_no_op() {
    let stack = Stack::from_env();
    let database = TestDatabase::create(&stack).await;

    MIGRATOR.run(&database.pool).await.unwrap();
    MIGRATOR.run(&database.pool).await.unwrap();

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&database.pool)
        .await
        .unwrap();
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
    // The checkpoint table enforces its invariants.
    sqlx::query("INSERT INTO projector_checkpoints (consumer, topic, partition, next_offset) VALUES ('c', 't', 0, 0)")
        .execute(&database.pool)
        .await
        .unwrap();
    let negative = sqlx::query(
        "INSERT INTO projector_checkpoints (consumer, topic, partition, next_offset) VALUES ('c', 't', 1, -1)",
    )
    .execute(&database.pool)
    .await;
    assert!(negative.is_err(), "a negative offset was accepted");
    database.drop_database().await;
}

#[tokio::test]
async fn readiness_probe_passes_on_the_stack_and_fails_on_a_closed_port() {
    let stack = Stack::from_env();
    let live = stack.postgres.readiness_probe(stack.postgres.pool().unwrap());
    live.check().await.unwrap_or_else(|error| panic!("PostgreSQL of the stack: {error}"));

    let dead = PostgresConfig {
        url: Secret::new(format!("postgres://chatsdk@127.0.0.1:{}/chatsdk", unused_port())),
        ..stack.postgres.clone()
    };
    let error = dead.readiness_probe(dead.pool().unwrap()).check().await.err().unwrap_or_default();
    assert!(!error.is_empty(), "a probe against a closed port passed");
}

// RDS forces TLS (rds.force_ssl=1 in infra/terraform); the projector connects to it directly with
// `sslmode=verify-full` and the RDS CA bundle. The local stack's PostgreSQL has TLS on with a self-signed
// certificate for 127.0.0.1 (infra/local/stack), standing in for RDS's.
#[tokio::test]
async fn connects_over_tls_and_verifies_the_server_certificate_when_asked() {
    let stack = Stack::from_env();
    let ca = std::env::var("CHATSDK_POSTGRES_TLS_CA")
        .expect("CHATSDK_POSTGRES_TLS_CA (the stack's certificate): export the variables of `infra/local/stack env`");
    let url = stack.postgres.url.expose().to_owned();
    let with = |query: &str| {
        let separator = if url.contains('?') { '&' } else { '?' };
        PostgresConfig { url: Secret::new(format!("{url}{separator}{query}")), ..stack.postgres.clone() }
    };
    let uses_tls = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    for query in ["sslmode=require".to_owned(), format!("sslmode=verify-full&sslrootcert={ca}")] {
        let pool = with(&query).pool().unwrap();
        let encrypted: bool =
            sqlx::query_scalar(uses_tls).fetch_one(&pool).await.unwrap_or_else(|error| panic!("{query}: {error}"));
        assert!(encrypted, "{query}: the connection is not encrypted");
    }

    // Verification is real: the system's public CAs did not sign the stack's certificate.
    let public_cas = "/etc/ssl/certs/ca-certificates.crt";
    assert!(std::path::Path::new(public_cas).is_file(), "{public_cas} missing (package ca-certificates)");
    let untrusted = with(&format!("sslmode=verify-full&sslrootcert={public_cas}")).pool().unwrap();
    let refused = sqlx::query_scalar::<_, bool>(uses_tls).fetch_one(&untrusted).await;
    assert!(refused.is_err(), "a certificate no trusted CA signed was accepted");
}
