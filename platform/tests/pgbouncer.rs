//! In production the APIs reach PostgreSQL through PgBouncer in transaction mode (infra/k8s/manifests/
//! 10-pgbouncer.yaml, docs/deploy.md). sqlx prepares every query as a *named* statement cached per client
//! connection, while in transaction mode each transaction of a client may run on another server connection. These
//! tests put a real PgBouncer (the stack builds it) with the production settings that matter — `pool_mode =
//! transaction`, `max_prepared_statements`, `ignore_startup_parameters = extra_float_digits,options`, TLS to the
//! server verified — in front of the stack's PostgreSQL and run the APIs' pool through it, far more clients than
//! server connections. The control shows the test can fail: without `max_prepared_statements` the same work breaks.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chatsdk_platform::config::Secret;
use chatsdk_platform::postgres::PostgresConfig;
use chatsdk_testkit::{Stack, unused_port, wait_for};
use sqlx::{Connection, PgPool};

const CLIENTS: usize = 8;
const ROUNDS: usize = 40;

/// A PgBouncer process on a free port, stopped (and its directory removed) on drop.
struct Bouncer {
    child: Child,
    directory: PathBuf,
    url: String,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// `postgres://user:password@host:port/database` split into its parts.
fn parts(url: &str) -> (String, String, String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (userinfo, location) = rest.split_once('@').expect("a user and password in the stack's URL");
    let (user, password) = userinfo.split_once(':').expect("a password in the stack's URL");
    let location = location.split_once('?').map_or(location, |(location, _)| location);
    let (address, database) = location.split_once('/').expect("a database in the stack's URL");
    (user.to_owned(), password.to_owned(), address.to_owned(), database.to_owned())
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

async fn start_bouncer(stack: &Stack, max_prepared_statements: u32) -> Bouncer {
    let binary = std::env::var("CHATSDK_PGBOUNCER_BIN")
        .expect("CHATSDK_PGBOUNCER_BIN: export the variables of `infra/local/stack env` (the stack builds PgBouncer)");
    let ca = std::env::var("CHATSDK_POSTGRES_TLS_CA").expect("CHATSDK_POSTGRES_TLS_CA (infra/local/stack env)");
    let (user, password, address, database) = parts(stack.postgres.url.expose());
    let (host, port) = address.split_once(':').expect("host:port in the stack's URL");
    let listen = unused_port();
    let directory = std::env::temp_dir().join(format!("chatsdk-pgbouncer-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&directory).unwrap();
    // PgBouncer refuses to run as root: as root the test runs it as the postgres user, who must read these.
    std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A copy beside the config: the state directory may sit where the postgres user cannot read (under /root).
    let ca_copy = directory.join("postgres-ca.crt");
    std::fs::copy(&ca, &ca_copy).unwrap();
    let userlist = directory.join("userlist.txt");
    std::fs::write(&userlist, format!("\"{user}\" \"{password}\"\n")).unwrap();
    let config = directory.join("pgbouncer.ini");
    std::fs::write(
        &config,
        format!(
            "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = \
             {listen}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {userlist}\npool_mode = \
             transaction\nmax_prepared_statements = {max_prepared_statements}\nignore_startup_parameters = \
             extra_float_digits,options\ndefault_pool_size = 2\nmax_client_conn = 100\nserver_tls_sslmode = \
             verify-full\nserver_tls_ca_file = {ca}\n",
            userlist = userlist.display(),
            ca = ca_copy.display(),
        ),
    )
    .unwrap();
    for file in [&userlist, &config, &ca_copy] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut command = if running_as_root() {
        // The binary too may sit where the postgres user cannot reach (~/.cache under /root): run a copy.
        let copy = directory.join("pgbouncer");
        std::fs::copy(&binary, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        // setpriv execs PgBouncer itself, so killing the child stops it (runuser would stay in between).
        let mut command = Command::new("setpriv");
        command.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(&copy);
        command
    } else {
        Command::new(&binary)
    };
    let log = std::fs::File::create(directory.join("pgbouncer.log")).unwrap();
    let child = command.arg(&config).stdout(Stdio::null()).stderr(log).spawn().expect("starting PgBouncer");
    let url = format!("postgres://{user}:{password}@127.0.0.1:{listen}/{database}");
    let bouncer = Bouncer { child, directory, url };
    let probe_url = bouncer.url.clone();
    wait_for("PgBouncer accepting connections", Duration::from_secs(20), || {
        let probe_url = probe_url.clone();
        async move {
            let mut connection = sqlx::PgConnection::connect(&probe_url).await.ok()?;
            sqlx::query("SELECT 1").execute(&mut connection).await.ok().map(|_| ())
        }
    })
    .await;
    bouncer
}

/// One client's work: three parameterized queries in a client-specific order (so each client's statement names
/// map to other SQL than its neighbours'), and query-api's read-only snapshot transaction; every answer checked.
async fn client_work(pool: PgPool, client: usize) -> Result<(), String> {
    for round in 0..ROUNDS {
        let value = (client * 1000 + round) as i64;
        for step in 0..3 {
            match (client + step) % 3 {
                0 => {
                    let next: i64 = sqlx::query_scalar("SELECT $1::int8 + 1")
                        .bind(value)
                        .fetch_one(&pool)
                        .await
                        .map_err(|error| error.to_string())?;
                    if next != value + 1 {
                        return Err(format!("int8 + 1 answered {next} for {value}"));
                    }
                }
                1 => {
                    let text = format!("client-{client}-round-{round}");
                    let length: i32 = sqlx::query_scalar("SELECT length($1::text)")
                        .bind(&text)
                        .fetch_one(&pool)
                        .await
                        .map_err(|error| error.to_string())?;
                    if length as usize != text.len() {
                        return Err(format!("length answered {length} for {text:?}"));
                    }
                }
                _ => {
                    let (doubled, label): (i32, String) = sqlx::query_as("SELECT $1::int4 * 2, $2::text")
                        .bind(round as i32)
                        .bind("label")
                        .fetch_one(&pool)
                        .await
                        .map_err(|error| error.to_string())?;
                    if doubled != 2 * round as i32 || label != "label" {
                        return Err(format!("int4 * 2 answered {doubled}, {label:?} for {round}"));
                    }
                }
            }
        }
        // query-api's sync: a REPEATABLE READ READ ONLY transaction, one pooled transaction for PgBouncer.
        let mut transaction = pool.begin().await.map_err(|error| error.to_string())?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *transaction)
            .await
            .map_err(|error| error.to_string())?;
        let isolation: String = sqlx::query_scalar("SELECT current_setting('transaction_isolation')")
            .fetch_one(&mut *transaction)
            .await
            .map_err(|error| error.to_string())?;
        transaction.commit().await.map_err(|error| error.to_string())?;
        if isolation != "repeatable read" {
            return Err(format!("the transaction ran as {isolation}"));
        }
    }
    Ok(())
}

/// The APIs' pool (with its `options` startup parameter) through `bouncer`, all clients at once.
async fn run_clients(stack: &Stack, bouncer: &Bouncer) -> Vec<Result<(), String>> {
    let config = PostgresConfig {
        url: Secret::new(bouncer.url.clone()),
        max_connections: CLIENTS as u32,
        ..stack.postgres.clone()
    };
    let pool = config.point_lookup_pool().unwrap();
    let tasks: Vec<_> = (0..CLIENTS).map(|client| tokio::spawn(client_work(pool.clone(), client))).collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        let outcome = tokio::time::timeout(Duration::from_secs(60), task).await;
        outcomes.push(match outcome {
            Ok(joined) => joined.unwrap(),
            Err(_) => Err("a client did not finish within 60 s".to_owned()),
        });
    }
    pool.close().await;
    outcomes
}

#[tokio::test]
async fn the_apis_pool_works_through_pgbouncer_in_transaction_mode() {
    let stack = Stack::from_env();
    let bouncer = start_bouncer(&stack, 200).await;
    let failures: Vec<String> = run_clients(&stack, &bouncer).await.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{} of {CLIENTS} clients failed: {failures:?}", failures.len());
}

// The control: the same work without PgBouncer's prepared-statement tracking fails, so the test above can fail.
#[tokio::test]
async fn without_max_prepared_statements_the_same_work_breaks() {
    let stack = Stack::from_env();
    let bouncer = start_bouncer(&stack, 0).await;
    let failures: Vec<String> = run_clients(&stack, &bouncer).await.into_iter().filter_map(Result::err).collect();
    assert!(!failures.is_empty(), "named prepared statements survived transaction pooling without tracking");
    assert!(
        failures.iter().any(|failure| failure.contains("prepared statement")),
        "failures, but not the prepared-statement kind: {failures:?}"
    );
}
