//! `GET /v1/search`: full-text search over the messages of the caller's channels.
//!
//! The index is the directory a search consumer writes (see `projector::search`); this node only reads it and
//! follows its commits. Access is decided here, against the read models: a user searches the channels they
//! are an active member of (or one readable channel named by `channel_id`); the app's backend searches the
//! whole app, or as a user with `user_id`. Hits are shown as history shows them (read from the read models),
//! so a message deleted or refused there is never returned even if the index has not caught up yet.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatsdk_client::SessionPosition;
use chatsdk_client::views::{Highlight, SearchResult, SearchResults};
use chatsdk_platform::api::auth::Actor;
use chatsdk_platform::api::error::ApiError;
use chatsdk_platform::metrics as names;
use chatsdk_platform::ops::Probe;
use chatsdk_schemas::EventDecoder;
use chatsdk_schemas::ids::{ChannelId, UserId};
use chatsdk_search::consumer::{IndexerSettings, SearchProgress, SearchProjector};
use chatsdk_search::engine::{self, Cursor, Scope, SearchRequest, SortOrder};
use chatsdk_search::{IndexView, SearchError, query};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::config::{Config, SearchConfig};
use crate::reads;
use crate::request::{Params, invalid, wait_for_projection};

/// Relevance pages stop after this many hits (deeper pages cost more and mean little); newest-first pages
/// have no such limit.
pub const MAX_RELEVANCE_DEPTH: usize = 1_000;
const DEFAULT_LIMIT: usize = 20;

/// This node's view of the index, opened when the index exists and refreshed on every commit.
#[derive(Debug, Default)]
pub struct SearchIndex {
    directory: Option<PathBuf>,
    view: RwLock<Option<Arc<IndexView>>>,
    /// The embedded consumer's progress, when this node keeps its own replica.
    embedded: Option<(IndexerSettings, SearchProgress)>,
}

impl SearchIndex {
    pub fn new(config: &SearchConfig) -> Self {
        Self {
            directory: config.index_dir.clone(),
            view: RwLock::default(),
            embedded: config.embedded.then(|| (config.indexer.clone(), SearchProgress::default())),
        }
    }

    /// The index, once open — and for an embedded replica, once the loaded commit holds the log as it was
    /// when the node started.
    pub fn view(&self) -> Option<Arc<IndexView>> {
        let view = self.opened()?;
        if let Some((_, progress)) = &self.embedded
            && !progress.covered_by(&view.snapshot().payload.offsets)
        {
            return None;
        }
        Some(view)
    }

    /// The index as opened, caught up or not.
    fn opened(&self) -> Option<Arc<IndexView>> {
        self.view.read().ok().and_then(|view| view.clone())
    }

    fn set(&self, view: IndexView) {
        if let Ok(mut current) = self.view.write() {
            *current = Some(Arc::new(view));
        }
    }

    /// What `/readyz` reports: the committed offsets, or why there is no index.
    pub fn report(&self) -> serde_json::Value {
        let mode = if self.embedded.is_some() { "embedded" } else { "shared" };
        match (&self.directory, self.view()) {
            (None, _) => serde_json::json!("not configured"),
            (Some(_), None) => serde_json::json!({ "mode": mode, "state": "waiting for the index" }),
            (Some(_), Some(view)) => {
                serde_json::json!({ "mode": mode, "committed": view.snapshot().payload.offsets })
            }
        }
    }
}

/// The embedded search consumer of a node that keeps its own replica (`[search] embedded`).
pub fn embedded_consumer(config: &Config, index: &SearchIndex, decoder: EventDecoder) -> Option<SearchProjector> {
    let (settings, progress) = index.embedded.clone()?;
    let directory = index.directory.clone()?;
    Some(
        SearchProjector::new(settings, &directory, &config.events.topic, &config.kafka, decoder)
            .with_progress(progress),
    )
}

/// Not ready until the node's own replica holds the log as it was when the node started.
pub fn embedded_probe(index: Arc<SearchIndex>) -> Probe {
    Probe::new("search", Duration::from_millis(100), move || {
        let ready = index.view().is_some();
        async move {
            anyhow::ensure!(ready, "the search replica is catching up");
            Ok(())
        }
    })
}

/// Opens the index once it exists and loads every new commit, on blocking threads. A failing refresh (the
/// directory swapped by `projector rebuild-search`, files merged away mid-read) reopens the directory; the
/// last good view serves meanwhile.
pub async fn follow(index: Arc<SearchIndex>, every: Duration) {
    let Some(directory) = index.directory.clone() else { return };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        ticks.tick().await;
        let (index, directory) = (Arc::clone(&index), directory.clone());
        let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            if let Some(view) = index.opened()
                && view.refresh().is_ok()
            {
                return Ok(());
            }
            index.set(IndexView::open(&directory)?);
            tracing::info!(directory = %directory.display(), "search index opened");
            Ok(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => warned = false,
            Ok(Err(error)) if !warned => {
                tracing::warn!(error = format!("{error:#}"), "search index not available yet");
                warned = true;
            }
            _ => {}
        }
    }
}

/// What a cursor carries: where the next page starts, and a digest of the request it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct CursorToken {
    skip: Option<usize>,
    before: Option<u64>,
    request: String,
}

const CURSOR_PREFIX: &str = "c1.";

fn encode_cursor(cursor: Cursor, request: &str) -> String {
    let token = match cursor {
        Cursor::Skip(skip) => CursorToken { skip: Some(skip), before: None, request: request.to_owned() },
        Cursor::Before(before) => CursorToken { skip: None, before: Some(before), request: request.to_owned() },
    };
    let json = serde_json::to_vec(&token).unwrap_or_default();
    format!("{CURSOR_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
}

fn decode_cursor(text: &str, order: SortOrder, request: &str) -> Result<Cursor, ApiError> {
    let refused = || ApiError::bad_request("invalid_cursor", "cursor is not one this search returned");
    let bytes =
        text.strip_prefix(CURSOR_PREFIX).and_then(|rest| URL_SAFE_NO_PAD.decode(rest).ok()).ok_or_else(refused)?;
    let token: CursorToken = serde_json::from_slice(&bytes).map_err(|_| refused())?;
    if token.request != request {
        return Err(ApiError::bad_request("invalid_cursor", "the cursor belongs to another query or filters"));
    }
    match (order, token.skip, token.before) {
        (SortOrder::Relevance, Some(skip), None) if skip < MAX_RELEVANCE_DEPTH => Ok(Cursor::Skip(skip)),
        (SortOrder::Newest, None, Some(before)) => Ok(Cursor::Before(before)),
        _ => Err(refused()),
    }
}

fn timestamp(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|value| {
            DateTime::parse_from_rfc3339(value)
                .map(|time| time.with_timezone(&Utc).timestamp_millis())
                .map_err(|_| invalid(name, "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"))
        })
        .transpose()
}

/// The search: parse and check everything, decide the scope, wait for `min_position`, search on a blocking
/// thread, then show the hits from the read models.
pub async fn search(
    State(state): State<Arc<AppState>>,
    actor: Actor,
    uri: Uri,
) -> Result<Json<SearchResults>, ApiError> {
    let outcome = run(&state, &actor, &uri).await;
    let label = match &outcome {
        Ok(_) => "ok",
        Err(ApiError::InvalidQuery { .. }) => "invalid_query",
        Err(error) if error.status().is_server_error() => "unavailable",
        Err(_) => "refused",
    };
    metrics::counter!(names::QUERY_SEARCHES_TOTAL, "outcome" => label).increment(1);
    outcome.map(Json)
}

async fn run(state: &AppState, actor: &Actor, uri: &Uri) -> Result<SearchResults, ApiError> {
    let params = Params::parse(uri.query())?;
    let text = params.get("q").ok_or_else(|| invalid("q", "is required"))?;
    let parsed = query::parse(text)
        .map_err(|error| ApiError::InvalidQuery { message: error.to_string(), position: error.position })?;
    let limit =
        usize::try_from(params.limit(DEFAULT_LIMIT as i64, state.search_max_limit as i64)?).unwrap_or(DEFAULT_LIMIT);
    let order = match params.get("order") {
        None | Some("relevance") => SortOrder::Relevance,
        Some("newest") => SortOrder::Newest,
        Some(_) => return Err(invalid("order", "must be relevance or newest")),
    };
    let channel = params.parsed::<ChannelId>("channel_id")?;
    let author = params.parsed::<UserId>("author_id")?;
    let (since_ms, until_ms) = (timestamp(&params, "since")?, timestamp(&params, "until")?);
    // A user searches as themselves; the backend as the app, or with a user's access (`user_id`).
    let on_behalf = if actor.is_server { params.parsed::<UserId>("user_id")? } else { None };
    let subject = match on_behalf {
        Some(user) => actor.on_behalf_of(user).unwrap_or_else(|| actor.clone()),
        None => actor.clone(),
    };
    let fingerprint = {
        let mut digest = Sha256::new();
        for part in [
            actor.app_id.as_str(),
            actor.user_id.as_str(),
            if subject.is_server { "" } else { subject.user_id.as_str() },
            text,
            channel.as_ref().map_or("", ChannelId::as_str),
            author.as_ref().map_or("", UserId::as_str),
            params.get("since").unwrap_or_default(),
            params.get("until").unwrap_or_default(),
            params.get("order").unwrap_or_default(),
        ] {
            digest.update(part.as_bytes());
            digest.update([0]);
        }
        URL_SAFE_NO_PAD.encode(&digest.finalize()[..12])
    };
    let cursor = params.get("cursor").map(|text| decode_cursor(text, order, &fingerprint)).transpose()?;
    let min_position = params
        .get("min_position")
        .map(|min| {
            min.parse::<SessionPosition>().map_err(|error| ApiError::bad_request("invalid_position", error.to_string()))
        })
        .transpose()?;

    let view = match &min_position {
        Some(min) => {
            // One bound for both waits, as for every read.
            let deadline = tokio::time::Instant::now() + state.max_wait;
            wait_for_projection(state, min).await?;
            wait_for_index(&state.search, min, deadline).await?
        }
        None => state.search.view().ok_or_else(unavailable)?,
    };
    let scope = match &channel {
        Some(channel) => {
            // 404 for an unknown channel (or another app's), 403 for one the subject may not read.
            reads::reader(&state.pool, &subject, channel).await?;
            Scope::Channels(vec![channel.as_str().to_owned()])
        }
        None if subject.is_server => Scope::App,
        None => Scope::Channels(member_channels(state, &subject).await?),
    };
    let request = SearchRequest {
        app: actor.app_id.as_str().to_owned(),
        query: parsed,
        scope,
        author: author.map(|author| author.as_str().to_owned()),
        since_ms,
        until_ms,
        order,
        limit,
        cursor,
    };
    let searched = {
        let view = Arc::clone(&view);
        tokio::task::spawn_blocking(move || engine::search(&view.snapshot(), view.fields(), &request))
            .await
            .map_err(|error| ApiError::Internal(format!("search task: {error}")))?
    };
    let page = match searched {
        Ok(page) => page,
        Err(SearchError::NothingToSearch) => {
            return Err(ApiError::InvalidQuery { message: SearchError::NothingToSearch.to_string(), position: 0 });
        }
        Err(error) => {
            tracing::warn!(error = %error, "search failed");
            return Err(ApiError::unavailable(
                "search_unavailable",
                "the search index failed to answer; retry shortly",
            ));
        }
    };
    let ids: Vec<uuid::Uuid> = page.hits.iter().map(|hit| hit.message.message_id).collect();
    let mut shown = reads::messages_by_id(&state.pool, &subject.app_id, &subject.user_id, &ids).await?;
    let results = page
        .hits
        .into_iter()
        .filter_map(|hit| {
            let at = shown.iter().position(|message| *message.message_id.as_uuid() == hit.message.message_id)?;
            let message = shown.swap_remove(at);
            // Deleted in the read model, the index not there yet: not a hit.
            if message.deleted_at.is_some() {
                return None;
            }
            let highlight = Highlight {
                fragment: hit.highlight.fragment,
                ranges: hit.highlight.ranges.into_iter().map(|(start, end)| [start, end]).collect(),
                html: hit.highlight.html,
            };
            Some(SearchResult { message, score: hit.score, highlight })
        })
        .collect();
    let next_cursor = page
        .next
        .filter(|next| !matches!(next, Cursor::Skip(skip) if *skip >= MAX_RELEVANCE_DEPTH))
        .map(|next| encode_cursor(next, &fingerprint));
    Ok(SearchResults { results, next_cursor })
}

/// The channels `subject` is an active member of.
async fn member_channels(state: &AppState, subject: &Actor) -> Result<Vec<String>, ApiError> {
    sqlx::query_scalar!(
        "SELECT channel_id FROM members WHERE app_id = $1 AND user_id = $2 AND left_at IS NULL",
        subject.app_id.as_str(),
        subject.user_id.as_str(),
    )
    .fetch_all(&state.pool)
    .await
    .map_err(|error| ApiError::database(&error))
}

fn unavailable() -> ApiError {
    ApiError::unavailable("search_unavailable", "search is not available on this node yet")
}

/// Waits (until `deadline`) until this node has the index open and its loaded commit holds every position of
/// `min`.
async fn wait_for_index(
    index: &SearchIndex,
    min: &SessionPosition,
    deadline: tokio::time::Instant,
) -> Result<Arc<IndexView>, ApiError> {
    loop {
        let view = index.view();
        if let Some(view) = &view {
            let snapshot = view.snapshot();
            if min.positions().all(|position| snapshot.payload.contains(position.partition, position.offset)) {
                return Ok(Arc::clone(view));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match view {
                None => unavailable(),
                Some(_) => ApiError::unavailable(
                    "position_not_reached",
                    "the search index has not reached min_position yet; retry shortly",
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_request() {
        let token = encode_cursor(Cursor::Before(42), "abc");
        assert_eq!(decode_cursor(&token, SortOrder::Newest, "abc").ok(), Some(Cursor::Before(42)));
        assert!(decode_cursor(&token, SortOrder::Newest, "other").is_err());
        assert!(decode_cursor(&token, SortOrder::Relevance, "abc").is_err());
        let deep = encode_cursor(Cursor::Skip(MAX_RELEVANCE_DEPTH), "abc");
        assert!(decode_cursor(&deep, SortOrder::Relevance, "abc").is_err());
        assert!(decode_cursor("c1.garbage", SortOrder::Newest, "abc").is_err());
    }
}
