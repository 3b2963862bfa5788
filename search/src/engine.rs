//! Reading the index: a snapshot that follows the writer's commits, and one search over it.
//!
//! Every function here blocks (segment IO, scoring); async callers use `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, EmptyQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, Order, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::analyzer::{Analyzer, app_term};
use crate::payload::Payload;
use crate::query::{Atom, ParsedQuery};
use crate::schema::{self, Fields, MessageDoc, order_of_millis, scoped};

/// Most index terms one prefix expands to (the first ones in term order).
pub const MAX_PREFIX_EXPANSIONS: usize = 64;
/// Longest highlighted fragment, in characters.
pub const SNIPPET_CHARS: usize = 200;

/// The index as of one commit, with that commit's payload.
#[derive(Clone)]
pub struct Snapshot {
    pub searcher: Searcher,
    pub payload: Payload,
    pub opstamp: u64,
    /// What identifies the commit: its opstamp, payload and segments (a rebuilt index swapped in may reuse an
    /// opstamp, never its segment ids).
    commit: String,
}

fn commit_identity(metas: &tantivy::IndexMeta) -> String {
    let mut segments: Vec<String> = metas.segments.iter().map(|segment| segment.id().uuid_string()).collect();
    segments.sort();
    format!("{}|{}|{}", metas.opstamp, metas.payload.as_deref().unwrap_or_default(), segments.join(","))
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Snapshot")
            .field("opstamp", &self.opstamp)
            .field("offsets", &self.payload.offsets)
            .finish()
    }
}

/// A read-only view of an index directory another process writes, refreshed on demand.
pub struct IndexView {
    directory: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    current: RwLock<Arc<Snapshot>>,
}

impl std::fmt::Debug for IndexView {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("IndexView").field("directory", &self.directory).finish()
    }
}

impl IndexView {
    /// Opens the index in `directory`; fails while no projector has committed to it yet.
    pub fn open(directory: &Path) -> anyhow::Result<Self> {
        let index = schema::open_existing(directory)?;
        let fields = Fields::of(&index.schema())?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let metas = index.load_metas()?;
        let payload = Payload::of_index(&index)?
            .ok_or_else(|| anyhow::anyhow!("the index in {} has no commit yet", directory.display()))?;
        let snapshot =
            Snapshot { searcher: reader.searcher(), payload, opstamp: metas.opstamp, commit: commit_identity(&metas) };
        Ok(Self { directory: directory.to_owned(), index, reader, fields, current: RwLock::new(Arc::new(snapshot)) })
    }

    /// Follows the writer: when the index has a newer commit, loads it. Reads the commit's payload before its
    /// segments, so the snapshot's offsets never claim more than its searcher holds. Returns whether it moved.
    pub fn refresh(&self) -> anyhow::Result<bool> {
        let metas = self.index.load_metas()?;
        let commit = commit_identity(&metas);
        if commit == self.snapshot().commit {
            return Ok(false);
        }
        let payload = Payload::of_index(&self.index)?
            .ok_or_else(|| anyhow::anyhow!("the index in {} lost its payload", self.directory.display()))?;
        self.reader.reload()?;
        let snapshot = Snapshot { searcher: self.reader.searcher(), payload, opstamp: metas.opstamp, commit };
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(snapshot);
        }
        Ok(true)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Messages that can be found (tombstones left out), as of the current snapshot.
    pub fn live_documents(&self) -> anyhow::Result<u64> {
        let live = TermQuery::new(Term::from_field_u64(self.fields.deleted, 0), IndexRecordOption::Basic);
        Ok(self.snapshot().searcher.search(&live, &tantivy::collector::Count)? as u64)
    }
}

/// Which channels a search may look in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every channel of the app (the app's backend).
    App,
    /// These channels only (the caller's).
    Channels(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Relevance,
    Newest,
}

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Relevance order: hits already returned.
    Skip(usize),
    /// Newest first: the order key of the last hit returned.
    Before(u64),
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub app: String,
    pub query: ParsedQuery,
    pub scope: Scope,
    pub author: Option<String>,
    /// Created at or after, in milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// Created before, in milliseconds since the epoch.
    pub until_ms: Option<i64>,
    pub order: SortOrder,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// A matched fragment of the text, with the matched words as character ranges in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Highlight {
    pub fragment: String,
    pub ranges: Vec<(usize, usize)>,
    /// The fragment as HTML, matches in `<b>`, the rest escaped.
    pub html: String,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub message: MessageDoc,
    /// BM25, in relevance order.
    pub score: Option<f32>,
    pub highlight: Highlight,
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    pub hits: Vec<Hit>,
    pub next: Option<Cursor>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the query has no words that can be searched for")]
    NothingToSearch,
    #[error(transparent)]
    Index(#[from] tantivy::TantivyError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// One page of hits.
pub fn search(snapshot: &Snapshot, fields: &Fields, request: &SearchRequest) -> Result<SearchPage, SearchError> {
    let analyzer = snapshot.payload.analyzer_for(&request.app);
    let text_field = fields.analyzed(analyzer);
    let mut highlighted = BTreeSet::new();
    let text = TextField { field: text_field, analyzer, app: &request.app };
    let Some(text_query) = text_query(&snapshot.searcher, &text, &request.query, &mut highlighted)? else {
        return Err(SearchError::NothingToSearch);
    };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Must, text_query),
        (Occur::Must, term_query(Term::from_field_text(fields.live_app, &request.app))),
    ];
    match &request.scope {
        Scope::App => {}
        Scope::Channels(channels) if channels.is_empty() => return Ok(SearchPage { hits: Vec::new(), next: None }),
        Scope::Channels(channels) => {
            let terms =
                channels.iter().map(|channel| Term::from_field_text(fields.channel, &scoped(&request.app, channel)));
            clauses.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
        }
    }
    if let Some(author) = &request.author {
        clauses.push((Occur::Must, term_query(Term::from_field_text(fields.author, &scoped(&request.app, author)))));
    }
    let lower = request.since_ms.map(order_of_millis);
    let mut upper = request.until_ms.map(order_of_millis);
    if let Some(Cursor::Before(before)) = request.cursor {
        upper = Some(upper.map_or(before, |until| until.min(before)));
    }
    if let (Some(low), Some(high)) = (lower, upper)
        && low >= high
    {
        return Ok(SearchPage { hits: Vec::new(), next: None });
    }
    if lower.is_some() || upper.is_some() {
        let term = |value: u64| Term::from_field_u64(fields.order, value);
        let range = RangeQuery::new(
            lower.map_or(Bound::Unbounded, |low| Bound::Included(term(low))),
            upper.map_or(Bound::Unbounded, |high| Bound::Excluded(term(high))),
        );
        clauses.push((Occur::Must, Box::new(range)));
    }
    let query = BooleanQuery::new(clauses);
    let fetch = request.limit + 1;
    let (mut addresses, next): (Vec<(Option<f32>, u64, DocAddress)>, _) = match request.order {
        SortOrder::Relevance => {
            let skip = match request.cursor {
                Some(Cursor::Skip(skip)) => skip,
                _ => 0,
            };
            let found =
                snapshot.searcher.search(&query, &TopDocs::with_limit(fetch).and_offset(skip).order_by_score())?;
            let addresses = found.into_iter().map(|(score, address)| (Some(score), 0, address)).collect();
            (addresses, Cursor::Skip(skip + request.limit))
        }
        SortOrder::Newest => {
            let found = snapshot
                .searcher
                .search(&query, &TopDocs::with_limit(fetch).order_by_fast_field::<u64>("order", Order::Desc))?;
            let addresses: Vec<_> =
                found.into_iter().map(|(order, address)| (None, order.unwrap_or(0), address)).collect();
            let last = addresses.get(request.limit.saturating_sub(1)).map_or(0, |(_, order, _)| *order);
            (addresses, Cursor::Before(last))
        }
    };
    let has_more = addresses.len() > request.limit;
    addresses.truncate(request.limit);
    let snippets = snippet_generator(&snapshot.searcher, &text, &highlighted)?;
    let mut hits = Vec::with_capacity(addresses.len());
    for (score, _, address) in addresses {
        let document: TantivyDocument = snapshot.searcher.doc(address)?;
        let message = MessageDoc::from_document(fields, &document)?;
        let highlight = highlight(&snippets, &message.text);
        hits.push(Hit { message, score, highlight });
    }
    Ok(SearchPage { hits, next: has_more.then_some(next) })
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// The field an app's text is in, its analyzer, and the app its terms are scoped by.
struct TextField<'a> {
    field: Field,
    analyzer: Analyzer,
    app: &'a str,
}

impl TextField<'_> {
    fn term(&self, word: &str) -> Term {
        Term::from_field_text(self.field, &app_term(self.app, word))
    }
}

/// The text part: clauses combined with AND, alternatives with OR, exclusions with NOT. `None` when no clause
/// to search for has a searchable word.
fn text_query(
    searcher: &Searcher,
    text: &TextField<'_>,
    parsed: &ParsedQuery,
    highlighted: &mut BTreeSet<String>,
) -> Result<Option<Box<dyn Query>>, SearchError> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for clause in &parsed.clauses {
        let mut alternatives = Vec::new();
        for atom in &clause.any_of {
            let mut terms_of_atom = BTreeSet::new();
            if let Some(query) = atom_query(searcher, text, atom, &mut terms_of_atom)? {
                alternatives.push(query);
                if !clause.excluded {
                    highlighted.append(&mut terms_of_atom);
                }
            }
        }
        let occur = if clause.excluded { Occur::MustNot } else { Occur::Must };
        match alternatives.len() {
            0 => {}
            1 => clauses.extend(alternatives.into_iter().map(|query| (occur, query))),
            _ => clauses.push((occur, Box::new(BooleanQuery::union(alternatives)))),
        }
    }
    if !clauses.iter().any(|(occur, _)| *occur == Occur::Must) {
        return Ok(None);
    }
    Ok(Some(Box::new(BooleanQuery::new(clauses))))
}

fn atom_query(
    searcher: &Searcher,
    text: &TextField<'_>,
    atom: &Atom,
    highlighted: &mut BTreeSet<String>,
) -> Result<Option<Box<dyn Query>>, SearchError> {
    let words = text.analyzer.terms(&atom.text);
    let Some(last) = words.last() else { return Ok(None) };
    if !atom.prefix {
        highlighted.extend(words.iter().cloned());
        return Ok(Some(match words.as_slice() {
            [single] => Box::new(TermQuery::new(text.term(single), IndexRecordOption::WithFreqs)),
            _ => Box::new(PhraseQuery::new(words.iter().map(|word| text.term(word)).collect())),
        }));
    }
    let expansions = expand_prefix(searcher, text, last)?;
    highlighted.extend(words[..words.len() - 1].iter().cloned());
    highlighted.extend(expansions.iter().cloned());
    if words.len() == 1 {
        if expansions.is_empty() {
            return Ok(Some(Box::new(EmptyQuery)));
        }
        let alternatives: Vec<Box<dyn Query>> = expansions
            .iter()
            .map(|word| Box::new(TermQuery::new(text.term(word), IndexRecordOption::WithFreqs)) as Box<dyn Query>)
            .collect();
        return Ok(Some(Box::new(BooleanQuery::union(alternatives))));
    }
    let mut phrase = PhrasePrefixQuery::new(words.iter().map(|word| text.term(word)).collect());
    phrase.set_max_expansions(MAX_PREFIX_EXPANSIONS as u32);
    Ok(Some(Box::new(phrase)))
}

/// The first [`MAX_PREFIX_EXPANSIONS`] distinct words of the app starting with `prefix`, over all segments.
fn expand_prefix(searcher: &Searcher, text: &TextField<'_>, prefix: &str) -> Result<Vec<String>, SearchError> {
    let scoped_prefix = app_term(text.app, prefix);
    let scope = app_term(text.app, "");
    let mut found = BTreeSet::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(text.field)?;
        let mut stream = inverted.terms().range().ge(scoped_prefix.as_bytes()).into_stream()?;
        let mut taken = 0;
        while stream.advance() && taken < MAX_PREFIX_EXPANSIONS {
            let Some(word) = std::str::from_utf8(stream.key()).ok().and_then(|term| term.strip_prefix(&scope)) else {
                break;
            };
            if !word.starts_with(prefix) {
                break;
            }
            found.insert(word.to_owned());
            taken += 1;
        }
    }
    Ok(found.into_iter().take(MAX_PREFIX_EXPANSIONS).collect())
}

fn snippet_generator(
    searcher: &Searcher,
    text: &TextField<'_>,
    words: &BTreeSet<String>,
) -> Result<SnippetGenerator, SearchError> {
    let mut weights = BTreeMap::new();
    for word in words {
        let frequency = searcher.doc_freq(&text.term(word))?;
        if frequency > 0 {
            // Rarer words make better fragments.
            weights.insert(word.clone(), 1.0 / (1.0 + frequency as f32));
        }
    }
    // The stored text is analyzed without app scoping, so the weights are keyed by plain words.
    Ok(SnippetGenerator::new(weights, text.analyzer.text_analyzer(), text.field, SNIPPET_CHARS))
}

fn highlight(generator: &SnippetGenerator, text: &str) -> Highlight {
    let snippet = generator.snippet(text);
    if snippet.is_empty() {
        // A match the snippet cannot show (e.g. a long text matched by words far apart): its start, plain.
        let fragment: String = text.chars().take(SNIPPET_CHARS).collect();
        let html = escape_html(&fragment);
        return Highlight { fragment, ranges: Vec::new(), html };
    }
    let fragment = snippet.fragment().to_owned();
    let characters_before = |byte: usize| fragment.get(..byte).map_or(0, |before| before.chars().count());
    // Overlapping matches (CJK bigrams `東京` `京都` in `東京都`) become one range.
    let ranges = tantivy::snippet::collapse_overlapped_ranges(snippet.highlighted())
        .iter()
        .map(|range| (characters_before(range.start), characters_before(range.end)))
        .collect();
    Highlight { html: snippet.to_html(), fragment, ranges }
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
}
