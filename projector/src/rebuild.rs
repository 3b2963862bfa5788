//! `projector rebuild` and `projector checksum`: replay the whole log into an empty database, and digest
//! a database's read models so two of them can be compared; `projector rebuild-search`: rebuild the search
//! index from offset 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chatsdk_platform::config::Secret;
use chatsdk_platform::postgres::MIGRATOR;
use chatsdk_schemas::{EventDecoder, RegistrySettings};
use sqlx::PgPool;

use crate::Config;
use crate::consumer::Projector;
use crate::store;
use chatsdk_search::consumer::{SearchProjector, log_ends, reached};
use chatsdk_search::schema::{IndexLock, lock_path, resolved};

/// Projects the topic from offset 0 into the empty database at `target_url` with a consumer group of its own,
/// until every partition reaches the end it had when the rebuild started, and returns the new checksum.
pub async fn rebuild(config: &Config, target_url: &str) -> anyhow::Result<String> {
    let mut postgres = config.postgres.clone();
    postgres.url = Secret::new(target_url);
    let pool = postgres.pool()?;
    MIGRATOR.run(&pool).await.context("applying the migrations to the target database")?;
    let rows: i64 = sqlx::query_scalar!(
        "SELECT (SELECT count(*) FROM projector_checkpoints) + (SELECT count(*) FROM channels) + \
                (SELECT count(*) FROM messages) AS \"rows!\""
    )
    .fetch_one(&pool)
    .await
    .context("checking that the target database is empty")?;
    anyhow::ensure!(rows == 0, "the target database is not empty: rebuild only into a fresh database");

    let ends = log_ends(&config.kafka, &config.consumer.topic).await?;
    let mut settings = config.consumer.clone();
    settings.group_id = format!("{}-rebuild-{}", settings.group_id, uuid::Uuid::new_v4().simple());
    let decoder = EventDecoder::new(&RegistrySettings::new(&config.registry.url, config.registry.timeout()))?;
    let projector = Projector::new(settings.clone(), &config.kafka, pool.clone(), decoder)?;
    tracing::info!(group = settings.group_id, ?ends, "rebuilding from offset 0");
    projector.run(caught_up(pool.clone(), settings.group_id.clone(), settings.topic.clone(), ends)).await?;
    store::checksum(&pool).await
}

/// The digest of the read models at `url`.
pub async fn checksum(config: &Config, url: &str) -> anyhow::Result<String> {
    let mut postgres = config.postgres.clone();
    postgres.url = Secret::new(url);
    store::checksum(&postgres.pool()?).await
}

/// Resolves when every partition's checkpoint has reached its end.
async fn caught_up(pool: PgPool, group: String, topic: String, ends: BTreeMap<i32, i64>) {
    loop {
        let checkpoints = sqlx::query!(
            "SELECT partition, next_offset FROM projector_checkpoints WHERE consumer = $1 AND topic = $2",
            group,
            topic
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        let applied: BTreeMap<i32, i64> = checkpoints.into_iter().map(|row| (row.partition, row.next_offset)).collect();
        if reached(&applied, &ends) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `projector rebuild-search`: builds a new index from offset 0 beside `target` (with a Kafka group of its
/// own), up to the log end it saw when starting, then swaps it in. Holds `target`'s index lock from before the
/// build until after the swap: it refuses to run while a search consumer writes there, and none can start
/// meanwhile. Readers (query nodes) follow the swap by themselves. Returns a summary line.
pub async fn rebuild_search(config: &Config, target: &Path) -> anyhow::Result<String> {
    // The real location, so the lock, the staging directory and the swap are where the index really is.
    let target = resolved(target);
    let lock = IndexLock::acquire(&target)?;
    remove_leftovers(&target);
    let staging = sibling(&target, "rebuild")?;
    let ends = log_ends(&config.kafka, &config.consumer.topic).await?;
    let built = build_search_index(config, &staging, ends.clone()).await.and_then(|offsets| {
        // Only a complete index replaces the old one.
        anyhow::ensure!(reached(&offsets, &ends), "the rebuild stopped before the log's end ({offsets:?} of {ends:?})");
        Ok(offsets)
    });
    // The staging writer is closed: its lock file has no further use.
    let _best_effort = std::fs::remove_file(lock_path(&staging)?);
    let offsets = match built {
        Ok(offsets) => offsets,
        Err(error) => {
            let _also_best_effort = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    let retired = sibling(&target, "retired")?;
    if target.exists() {
        std::fs::rename(&target, &retired).with_context(|| format!("moving {} aside", target.display()))?;
    }
    std::fs::rename(&staging, &target).with_context(|| format!("moving the new index to {}", target.display()))?;
    drop(lock);
    if retired.exists()
        && let Err(error) = std::fs::remove_dir_all(&retired)
    {
        // The new index is in place; the old one is only taking space.
        tracing::warn!(error = %error, retired = %retired.display(), "could not remove the old index");
    }
    let view = chatsdk_search::IndexView::open(&target)?;
    Ok(format!("{} messages searchable in {}, offsets {offsets:?}", view.live_documents()?, target.display()))
}

async fn build_search_index(
    config: &Config,
    staging: &Path,
    ends: BTreeMap<i32, i64>,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut settings = config.search.indexer.clone();
    settings.group_id = format!("{}-rebuild-{}", settings.group_id, uuid::Uuid::new_v4().simple());
    let decoder = EventDecoder::new(&RegistrySettings::new(&config.registry.url, config.registry.timeout()))?;
    tracing::info!(staging = %staging.display(), ?ends, "rebuilding the search index from offset 0");
    let projector = SearchProjector::new(settings, staging, &config.consumer.topic, &config.kafka, decoder);
    projector.run(std::future::pending(), Some(ends)).await
}

/// Staging and retired directories (and their lock files) an interrupted rebuild left beside `target`; only
/// called while holding `target`'s lock, so no other rebuild is using them.
fn remove_leftovers(target: &Path) {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name().and_then(|name| name.to_str())) else {
        return;
    };
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let Some(other) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if other.starts_with(&format!("{name}.rebuild-")) || other.starts_with(&format!("{name}.retired-")) {
            tracing::info!(path = %entry.path().display(), "removing what an interrupted rebuild left");
            let _best_effort = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
        }
    }
}

/// A fresh path next to `target` (same filesystem, so the swap is a rename).
fn sibling(target: &Path, purpose: &str) -> anyhow::Result<PathBuf> {
    let name = target.file_name().and_then(|name| name.to_str()).context("the index directory has no name")?;
    Ok(target.with_file_name(format!("{name}.{purpose}-{}", uuid::Uuid::new_v4().simple())))
}
