//! `loadtest search-bench`: the search index against PostgreSQL full-text search on the same corpus and machine.
//!
//! 1. A corpus of generated messages with a realistic word distribution: a 50,000-word vocabulary (the most
//!    common English words first, then pronounceable made-up words) drawn by Zipf's law (s = 1), messages of
//!    about nine words (exponential length), channels of Zipf-skewed activity, a year of timestamps.
//! 2. Produced to a fresh topic as `message.sent` events (registry-encoded, as the command API writes them).
//! 3. Indexed by the search consumer, exactly as the projector runs it (decode, fold, commit with offsets), from
//!    offset 0 to the end: documents per second.
//! 4. Queries on the index (the engine the query API uses, with highlights and stored fields): common term,
//!    rare term, phrase, prefix, filtered (a user's 50 channels and the last 90 days), and common term newest
//!    first.
//! 5. The same corpus `COPY`ed into PostgreSQL with a `tsvector` column (`simple` configuration, like our
//!    default analyzer: no stemming) and a GIN index — what Synapse and Zulip use — and the same queries in SQL
//!    (`ts_rank` order or newest first, `ts_headline` for the returned rows).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chatsdk_schemas::events::{Event, MessageSent};
use chatsdk_schemas::ids::MessageId;
use chatsdk_schemas::{Envelope, EventEncoder, RegistrySettings};
use chatsdk_search::consumer::{IndexerSettings, SearchProjector};
use chatsdk_search::engine::{self, Scope, SearchRequest, SortOrder};
use chatsdk_search::{IndexView, query};
use chrono::{DateTime, Utc};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::measure::{Random, Recorder, RunStats, markdown};
use crate::stack::Stack;

#[derive(Debug, Clone)]
pub struct Options {
    pub messages: usize,
    pub channels: usize,
    pub users: usize,
    pub queries: usize,
    pub pg_queries: usize,
    pub partitions: i32,
    pub member_channels: usize,
    pub skip_postgres: bool,
    pub json: Option<PathBuf>,
}

const APP: &str = "bench";
const VOCABULARY: usize = 50_000;
const DAY_MS: i64 = 86_400_000;

/// The most common English words, in frequency order: the head of the vocabulary.
const COMMON: &[&str] = &[
    "the", "be", "to", "of", "and", "a", "in", "that", "have", "i", "it", "for", "not", "on", "with", "he", "as",
    "you", "do", "at", "this", "but", "his", "by", "from", "they", "we", "say", "her", "she", "or", "an", "will", "my",
    "one", "all", "would", "there", "their", "what", "so", "up", "out", "if", "about", "who", "get", "which", "go",
    "me", "when", "make", "can", "like", "time", "no", "just", "him", "know", "take", "people", "into", "year", "your",
    "good", "some", "could", "them", "see", "other", "than", "then", "now", "look", "only", "come", "its", "over",
    "think", "also", "back", "after", "use", "two", "how", "our", "work", "first", "well", "way", "even", "new",
    "want", "because", "any", "these", "give", "day", "most", "us", "deploy", "meeting", "release", "bug", "review",
    "lunch", "tomorrow", "today", "thanks", "please", "fixed", "merged", "build", "test", "server",
];

/// Zipf's law over `n` ranks: rank r (0-based) has weight 1 / (r + 1)^s.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect::<Vec<_>>();
        Self { cumulative: cumulative.iter().map(|value| value / total).collect() }
    }

    fn sample(&self, random: &mut Random) -> usize {
        let target = random.unit();
        self.cumulative.partition_point(|value| *value < target).min(self.cumulative.len() - 1)
    }
}

/// The vocabulary: common English words, then made-up words of two to four syllables, all distinct.
fn vocabulary(random: &mut Random) -> Vec<String> {
    const ONSETS: &[&str] =
        &["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr", "pl"];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou"];
    let mut seen: BTreeSet<String> = COMMON.iter().map(|word| (*word).to_owned()).collect();
    let mut words: Vec<String> = COMMON.iter().map(|word| (*word).to_owned()).collect();
    while words.len() < VOCABULARY {
        let syllables = 2 + random.below(3);
        let word: String = (0..syllables)
            .map(|_| format!("{}{}", ONSETS[random.below(ONSETS.len())], VOWELS[random.below(VOWELS.len())]))
            .collect();
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

struct Message {
    id: uuid::Uuid,
    channel: usize,
    author: usize,
    text: String,
    created: DateTime<Utc>,
}

fn corpus(options: &Options) -> (Vec<String>, Vec<Message>) {
    let mut random = Random(0x5EA2_C4B3_7C4A_11E5);
    let words = vocabulary(&mut random);
    let word_ranks = Zipf::new(words.len(), 1.0);
    let channel_ranks = Zipf::new(options.channels, 0.8);
    let start = Utc::now() - chrono::Duration::days(365);
    let step_ms = 365 * DAY_MS / options.messages.max(1) as i64;
    let messages = (0..options.messages)
        .map(|index| {
            let length = (1.0 - 9.0 * (1.0 - random.unit()).ln()).min(40.0) as usize;
            let mut text = String::with_capacity(length * 7);
            for position in 0..length {
                if position > 0 {
                    text.push(' ');
                }
                let word = &words[word_ranks.sample(&mut random)];
                if position == 0 {
                    let mut letters = word.chars();
                    if let Some(first) = letters.next() {
                        text.extend(first.to_uppercase());
                        text.push_str(letters.as_str());
                    }
                } else {
                    text.push_str(word);
                }
            }
            text.push(if random.below(5) == 0 { '?' } else { '.' });
            Message {
                id: uuid::Uuid::from_u64_pair(random.next(), random.next()),
                channel: channel_ranks.sample(&mut random),
                author: random.below(options.users),
                text,
                created: start + chrono::Duration::milliseconds(index as i64 * step_ms),
            }
        })
        .collect();
    (words, messages)
}

fn channel_name(index: usize) -> String {
    format!("c{index}")
}

fn user_name(index: usize) -> String {
    format!("u{index}")
}

/// Produces every message as a `message.sent` event; returns messages per second.
async fn produce(stack: &Stack, topic: &str, messages: &[Message]) -> anyhow::Result<f64> {
    let encoder = EventEncoder::new(RegistrySettings::new(&stack.registry.url, stack.registry.timeout()), topic)?;
    let producer = stack.kafka.producer("search-bench")?;
    let started = Instant::now();
    for chunk in messages.chunks(5_000) {
        let mut encoded = Vec::with_capacity(chunk.len());
        for message in chunk {
            let mut envelope = Envelope::new(
                APP.parse()?,
                channel_name(message.channel).parse()?,
                user_name(message.author).parse()?,
                Event::MessageSent(MessageSent {
                    message_id: MessageId::from_uuid(message.id),
                    client_msg_id: None,
                    text: message.text.clone(),
                    mentions: Vec::new(),
                    attachments: Vec::new(),
                    parent_id: None,
                    custom: None,
                }),
            );
            envelope.occurred_at = message.created;
            encoded.push((envelope.key(), encoder.encode(&envelope).await?));
        }
        let sends = encoded.iter().map(|(key, bytes)| {
            producer.send(FutureRecord::to(topic).key(key).payload(bytes), Timeout::After(Duration::from_secs(30)))
        });
        for delivery in futures::future::join_all(sends).await {
            delivery.map_err(|(error, _)| anyhow::anyhow!("producing: {error}"))?;
        }
    }
    Ok(messages.len() as f64 / started.elapsed().as_secs_f64())
}

/// One kind of query, with the text (and filters) of each run.
struct QueryKind {
    label: &'static str,
    texts: Vec<String>,
    filtered: bool,
    newest: bool,
}

fn query_kinds(options: &Options, words: &[String], messages: &[Message]) -> Vec<QueryKind> {
    let mut random = Random(0xC0FF_EE00_D15E_A5E5);
    let runs = options.queries.max(options.pg_queries);
    let common = |random: &mut Random| words[random.below(50)].clone();
    let rare = |random: &mut Random| words[5_000 + random.below(35_000)].clone();
    let phrase = |random: &mut Random| loop {
        let message = &messages[random.below(messages.len())];
        let lowered = message.text.to_lowercase();
        let tokens: Vec<&str> = lowered.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).collect();
        if tokens.len() >= 2 {
            let at = random.below(tokens.len() - 1);
            return format!("\"{} {}\"", tokens[at], tokens[at + 1]);
        }
    };
    let prefix = |random: &mut Random| {
        let word = &words[200 + random.below(5_000)];
        format!("{}*", word.chars().take(4).collect::<String>())
    };
    let texts = |make: &dyn Fn(&mut Random) -> String, random: &mut Random| (0..runs).map(|_| make(random)).collect();
    vec![
        QueryKind {
            label: "common term (top-50 word)",
            texts: texts(&common, &mut random),
            filtered: false,
            newest: false,
        },
        QueryKind {
            label: "common term, newest first",
            texts: texts(&common, &mut random),
            filtered: false,
            newest: true,
        },
        QueryKind {
            label: "rare term (rank 5k–40k)",
            texts: texts(&rare, &mut random),
            filtered: false,
            newest: false,
        },
        QueryKind {
            label: "phrase (two adjacent words)",
            texts: texts(&phrase, &mut random),
            filtered: false,
            newest: false,
        },
        QueryKind {
            label: "prefix (4 letters + *)",
            texts: texts(&prefix, &mut random),
            filtered: false,
            newest: false,
        },
        QueryKind {
            label: "filtered: common term, 50 channels, 90 days",
            texts: texts(&common, &mut random),
            filtered: true,
            newest: false,
        },
    ]
}

/// The channels of the "user" of a filtered query, and the time bound.
fn filter_of(options: &Options, run: usize) -> (Vec<String>, DateTime<Utc>) {
    let mut random = Random(run as u64 + 17);
    let channels = (0..options.member_channels).map(|_| channel_name(random.below(options.channels))).collect();
    (channels, Utc::now() - chrono::Duration::days(90))
}

#[derive(Debug, Serialize)]
struct Report {
    messages: usize,
    produce_per_second: f64,
    index_seconds: f64,
    index_documents_per_second: f64,
    index_bytes: u64,
    tantivy: Vec<RunStats>,
    postgres_copy_seconds: Option<f64>,
    postgres_gin_seconds: Option<f64>,
    postgres_table_bytes: Option<i64>,
    postgres_gin_bytes: Option<i64>,
    postgres: Vec<RunStats>,
}

fn directory_bytes(directory: &std::path::Path) -> u64 {
    std::fs::read_dir(directory)
        .map(|entries| {
            entries.filter_map(Result::ok).filter_map(|entry| entry.metadata().ok()).map(|meta| meta.len()).sum()
        })
        .unwrap_or(0)
}

pub async fn run(options: Options) -> anyhow::Result<String> {
    let stack = Stack::from_env()?;
    eprintln!("generating {} messages", options.messages);
    let (words, messages) = corpus(&options);
    let kinds = query_kinds(&options, &words, &messages);
    let topic = format!("search-bench-{}", uuid::Uuid::new_v4().simple());
    stack.create_topic(&topic, options.partitions).await?;
    let index_dir = std::env::temp_dir().join(format!("chatsdk-search-bench-{}", uuid::Uuid::new_v4().simple()));
    let outcome = measure(&stack, &options, &topic, &index_dir, &messages, &kinds).await;
    let _best_effort = stack.delete_topic(&topic).await;
    let _also_best_effort = std::fs::remove_dir_all(&index_dir);
    if let Ok(lock) = chatsdk_search::schema::lock_path(&index_dir) {
        let _lock_file_too = std::fs::remove_file(lock);
    }
    let report = outcome?;
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(render(&report))
}

async fn measure(
    stack: &Stack,
    options: &Options,
    topic: &str,
    index_dir: &std::path::Path,
    messages: &[Message],
    kinds: &[QueryKind],
) -> anyhow::Result<Report> {
    eprintln!("producing to {topic}");
    let produce_per_second = produce(stack, topic, messages).await?;
    eprintln!("indexing ({produce_per_second:.0} msg/s produced)");
    let decoder =
        chatsdk_schemas::EventDecoder::new(&RegistrySettings::new(&stack.registry.url, stack.registry.timeout()))?;
    let settings = IndexerSettings {
        group_id: format!("search-bench-{}", uuid::Uuid::new_v4().simple()),
        ..IndexerSettings::default()
    };
    let ends = chatsdk_search::consumer::log_ends(&stack.kafka, topic).await?;
    let started = Instant::now();
    SearchProjector::new(settings, index_dir, topic, &stack.kafka, decoder)
        .run(std::future::pending(), Some(ends))
        .await?;
    let index_seconds = started.elapsed().as_secs_f64();
    let index_bytes = directory_bytes(index_dir);
    eprintln!("indexed in {index_seconds:.1} s; querying the index");
    let view = std::sync::Arc::new(IndexView::open(index_dir)?);
    let tantivy = {
        let (view, options) = (std::sync::Arc::clone(&view), options.clone());
        let kinds: Vec<(String, Vec<String>, bool, bool)> =
            kinds.iter().map(|kind| (kind.label.to_owned(), kind.texts.clone(), kind.filtered, kind.newest)).collect();
        tokio::task::spawn_blocking(move || tantivy_queries(&view, &options, &kinds)).await??
    };
    let mut report = Report {
        messages: messages.len(),
        produce_per_second,
        index_seconds,
        index_documents_per_second: messages.len() as f64 / index_seconds,
        index_bytes,
        tantivy,
        postgres_copy_seconds: None,
        postgres_gin_seconds: None,
        postgres_table_bytes: None,
        postgres_gin_bytes: None,
        postgres: Vec::new(),
    };
    if !options.skip_postgres {
        postgres(stack, options, messages, kinds, &mut report).await?;
    }
    Ok(report)
}

fn tantivy_queries(
    view: &IndexView,
    options: &Options,
    kinds: &[(String, Vec<String>, bool, bool)],
) -> anyhow::Result<Vec<RunStats>> {
    let mut runs = Vec::new();
    for (label, texts, filtered, newest) in kinds {
        let mut recorder = Recorder::new();
        let started = Instant::now();
        // The first tenth warms the caches and is not recorded.
        let warmup = options.queries / 10;
        for (run, text) in texts.iter().take(options.queries + warmup).enumerate() {
            let (scope, since_ms) = if *filtered {
                let (channels, since) = filter_of(options, run);
                (Scope::Channels(channels), Some(since.timestamp_millis()))
            } else {
                (Scope::App, None)
            };
            let request = SearchRequest {
                app: APP.to_owned(),
                query: query::parse(text).map_err(|error| anyhow::anyhow!("{text}: {error}"))?,
                scope,
                author: None,
                since_ms,
                until_ms: None,
                order: if *newest { SortOrder::Newest } else { SortOrder::Relevance },
                limit: 20,
                cursor: None,
            };
            let begun = Instant::now();
            let outcome = engine::search(&view.snapshot(), view.fields(), &request)
                .map(|_page| ())
                .map_err(|error| error.to_string());
            if run >= warmup {
                recorder.record(begun.elapsed(), outcome);
            }
        }
        runs.push(recorder.finish(label, "tantivy, 1 thread, limit 20 + highlights", started.elapsed()));
    }
    Ok(runs)
}

async fn postgres(
    stack: &Stack,
    options: &Options,
    messages: &[Message],
    kinds: &[QueryKind],
    report: &mut Report,
) -> anyhow::Result<()> {
    let name = format!("search_bench_{}", uuid::Uuid::new_v4().simple());
    let url = stack.create_database(&name).await?;
    let outcome = async {
        let mut connection = PgConnection::connect(&url).await?;
        sqlx::query(
            "CREATE TABLE messages (message_id uuid PRIMARY KEY, channel_id text NOT NULL, author_id text NOT NULL, \
             text text NOT NULL, created_at timestamptz NOT NULL, \
             tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED)",
        )
        .execute(&mut connection)
        .await?;
        eprintln!("COPY into PostgreSQL");
        let started = Instant::now();
        let mut copy = connection
            .copy_in_raw("COPY messages (message_id, channel_id, author_id, text, created_at) FROM STDIN")
            .await?;
        for chunk in messages.chunks(10_000) {
            let mut rows = String::with_capacity(chunk.len() * 96);
            for message in chunk {
                // The generated text has letters, spaces, '.' and '?' only: nothing to escape for COPY.
                rows.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    message.id,
                    channel_name(message.channel),
                    user_name(message.author),
                    message.text,
                    message.created.to_rfc3339()
                ));
            }
            copy.send(rows.into_bytes()).await?;
        }
        copy.finish().await?;
        report.postgres_copy_seconds = Some(started.elapsed().as_secs_f64());
        eprintln!("building the GIN index");
        let started = Instant::now();
        sqlx::query("CREATE INDEX messages_tsv ON messages USING gin (tsv)").execute(&mut connection).await?;
        report.postgres_gin_seconds = Some(started.elapsed().as_secs_f64());
        sqlx::query("CREATE INDEX messages_channel_time ON messages (channel_id, created_at)")
            .execute(&mut connection)
            .await?;
        sqlx::query("CREATE INDEX messages_time ON messages (created_at)").execute(&mut connection).await?;
        sqlx::query("VACUUM ANALYZE messages").execute(&mut connection).await?;
        report.postgres_table_bytes =
            Some(sqlx::query_scalar("SELECT pg_table_size('messages')").fetch_one(&mut connection).await?);
        report.postgres_gin_bytes =
            Some(sqlx::query_scalar("SELECT pg_relation_size('messages_tsv')").fetch_one(&mut connection).await?);
        eprintln!("querying PostgreSQL");
        for kind in kinds {
            report.postgres.push(postgres_queries(&mut connection, options, kind).await?);
        }
        anyhow::Ok(())
    }
    .await;
    let _best_effort = stack.drop_database(&name).await;
    outcome
}

async fn postgres_queries(
    connection: &mut PgConnection,
    options: &Options,
    kind: &QueryKind,
) -> anyhow::Result<RunStats> {
    let phrase = kind.texts.first().is_some_and(|text| text.starts_with('"'));
    let prefix = kind.texts.first().is_some_and(|text| text.ends_with('*'));
    let to_query = if phrase {
        "phraseto_tsquery('simple', $1)"
    } else if prefix {
        "to_tsquery('simple', $1)"
    } else {
        "plainto_tsquery('simple', $1)"
    };
    let order = if kind.newest { "created_at DESC" } else { "ts_rank(tsv, q) DESC" };
    let filter = if kind.filtered { "AND channel_id = ANY($2) AND created_at >= $3" } else { "" };
    let sql = format!(
        "SELECT message_id, ts_headline('simple', text, q, 'StartSel=<b>, StopSel=</b>, MaxWords=35, MinWords=15') \
         FROM (SELECT message_id, text, q FROM messages, {to_query} q WHERE tsv @@ q {filter} ORDER BY {order} LIMIT 20) top"
    );
    let mut recorder = Recorder::new();
    let warmup = options.pg_queries / 10;
    let started = Instant::now();
    for (run, text) in kind.texts.iter().take(options.pg_queries + warmup).enumerate() {
        let argument =
            if prefix { format!("{}:*", text.trim_end_matches('*')) } else { text.trim_matches('"').to_owned() };
        let (channels, since) = filter_of(options, run);
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(argument);
        if kind.filtered {
            statement = statement.bind(channels).bind(since);
        }
        let begun = Instant::now();
        let outcome = statement.fetch_all(&mut *connection).await.map(|_rows| ()).map_err(|error| error.to_string());
        if run >= warmup {
            recorder.record(begun.elapsed(), outcome);
        }
    }
    Ok(recorder.finish(kind.label, "PostgreSQL GIN tsvector, limit 20 + ts_headline", started.elapsed()))
}

fn render(report: &Report) -> String {
    let mut text = format!(
        "search-bench: {} messages\n\nproduced {:.0} msg/s; indexed in {:.1} s = {:.0} docs/s (decode + fold + commit, \
         1 writer thread); index {:.0} MB\n",
        report.messages,
        report.produce_per_second,
        report.index_seconds,
        report.index_documents_per_second,
        report.index_bytes as f64 / 1e6
    );
    if let (Some(copy), Some(gin), Some(table), Some(gin_bytes)) = (
        report.postgres_copy_seconds,
        report.postgres_gin_seconds,
        report.postgres_table_bytes,
        report.postgres_gin_bytes,
    ) {
        text.push_str(&format!(
            "PostgreSQL: COPY with tsvector {copy:.1} s, GIN build {gin:.1} s ({:.0} rows/s together); table {:.0} MB, GIN {:.0} MB\n",
            report.messages as f64 / (copy + gin),
            table as f64 / 1e6,
            gin_bytes as f64 / 1e6
        ));
    }
    text.push('\n');
    let mut runs = report.tantivy.clone();
    runs.extend(report.postgres.iter().cloned());
    text.push_str(&markdown(&runs));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_in_proportion() {
        let zipf = Zipf::new(1_000, 1.0);
        let mut random = Random(7);
        let mut counts = [0_usize; 3];
        for _ in 0..100_000 {
            let rank = zipf.sample(&mut random);
            if rank < 3 {
                counts[rank] += 1;
            }
        }
        // Weights 1, 1/2, 1/3: rank 0 about twice rank 1 and three times rank 2.
        let ratio = |a: usize, b: usize| counts[a] as f64 / counts[b] as f64;
        assert!((1.8..2.2).contains(&ratio(0, 1)), "{counts:?}");
        assert!((2.7..3.3).contains(&ratio(0, 2)), "{counts:?}");
    }

    #[test]
    fn the_vocabulary_is_distinct_and_starts_with_common_words() {
        let words = vocabulary(&mut Random(1));
        assert_eq!(words.len(), VOCABULARY);
        assert_eq!(words.iter().collect::<BTreeSet<_>>().len(), VOCABULARY);
        assert_eq!(words[0], "the");
    }
}
