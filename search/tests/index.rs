//! The writer and the engine together, in process: what events do to the index, and what searches find.

use std::collections::BTreeMap;

use chatsdk_schemas::Envelope;
use chatsdk_schemas::events::{Event, MessageDeleted, MessageEdited, MessageSent};
use chatsdk_schemas::ids::MessageId;
use chatsdk_search::engine::{Cursor, Scope, SearchRequest, SortOrder};
use chatsdk_search::{Analyzer, IndexView, SearchWriter, WriterSettings, query};
use chatsdk_testkit::ScratchDir;
use uuid::Uuid;

fn settings(analyzers: &[(&str, Analyzer)]) -> WriterSettings {
    WriterSettings {
        topic: "events".to_owned(),
        memory_bytes: 15_000_000,
        threads: 1,
        default_analyzer: Analyzer::Default,
        analyzers: analyzers.iter().map(|(app, analyzer)| ((*app).to_owned(), *analyzer)).collect(),
    }
}

fn envelope(app: &str, channel: &str, actor: &str, event: Event) -> Envelope {
    let (Ok(app), Ok(channel), Ok(actor)) = (app.parse(), channel.parse(), actor.parse()) else {
        panic!("invalid ids {app} {channel} {actor}");
    };
    Envelope::new(app, channel, actor, event)
}

fn sent(id: Uuid, text: &str, parent: Option<Uuid>) -> Event {
    Event::MessageSent(MessageSent {
        message_id: MessageId::from_uuid(id),
        client_msg_id: None,
        text: text.to_owned(),
        mentions: Vec::new(),
        attachments: Vec::new(),
        parent_id: parent.map(MessageId::from_uuid),
        custom: None,
    })
}

fn edited(id: Uuid, text: &str) -> Event {
    Event::MessageEdited(MessageEdited {
        message_id: MessageId::from_uuid(id),
        text: text.to_owned(),
        mentions: Vec::new(),
    })
}

fn deleted(id: Uuid, hard: bool) -> Event {
    Event::MessageDeleted(MessageDeleted { message_id: MessageId::from_uuid(id), hard })
}

/// Applies the envelopes in order on partition 0 after what the writer holds, and commits.
fn write(writer: &mut SearchWriter, envelopes: &[Envelope]) {
    let first = writer.committed().offsets.get(&0).copied().unwrap_or(0);
    for (offset, envelope) in (first..).zip(envelopes) {
        writer.apply(0, offset, Some(envelope)).unwrap_or_else(|error| panic!("apply: {error:#}"));
    }
    writer.commit().unwrap_or_else(|error| panic!("commit: {error:#}"));
}

fn request(app: &str, text: &str, scope: Scope) -> SearchRequest {
    SearchRequest {
        app: app.to_owned(),
        query: query::parse(text).unwrap_or_else(|error| panic!("{text}: {error}")),
        scope,
        author: None,
        since_ms: None,
        until_ms: None,
        order: SortOrder::Relevance,
        limit: 20,
        cursor: None,
    }
}

fn found(view: &IndexView, request: &SearchRequest) -> Vec<Uuid> {
    let page = chatsdk_search::engine::search(&view.snapshot(), view.fields(), request)
        .unwrap_or_else(|error| panic!("search: {error}"));
    page.hits.iter().map(|hit| hit.message.message_id).collect()
}

fn channels(names: &[&str]) -> Scope {
    Scope::Channels(names.iter().map(|name| (*name).to_owned()).collect())
}

#[test]
fn edits_replace_deletes_remove_and_retries_change_nothing() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    let (kept, changed, removed, purged) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    write(
        &mut writer,
        &[
            envelope("app", "general", "ann", sent(kept, "the quarterly report is ready", None)),
            envelope("app", "general", "bob", sent(changed, "draft report v1", None)),
            envelope("app", "general", "bob", sent(removed, "secret report leak", None)),
            envelope("app", "general", "bob", sent(purged, "another report", None)),
        ],
    );
    // Within one commit window and across it: an edit, a soft and a hard delete, a retried send of a deleted
    // message (must not resurrect it) and an edit of a deleted message (must not leak its text back).
    write(
        &mut writer,
        &[
            envelope("app", "general", "bob", edited(changed, "final report v2")),
            envelope("app", "general", "bob", deleted(removed, false)),
            envelope("app", "general", "bob", sent(removed, "secret report leak", None)),
            envelope("app", "general", "bob", edited(removed, "secret report leak again")),
            envelope("app", "general", "bob", deleted(purged, true)),
            envelope("app", "general", "ann", sent(kept, "a retry with other text", None)),
        ],
    );
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    let everything = channels(&["general"]);
    let mut reports = found(&view, &request("app", "report", everything.clone()));
    reports.sort();
    let mut expected = vec![kept, changed];
    expected.sort();
    assert_eq!(reports, expected, "each live message once, deleted ones never");
    assert_eq!(found(&view, &request("app", "draft", everything.clone())), Vec::<Uuid>::new());
    assert_eq!(found(&view, &request("app", "final", everything.clone())), vec![changed]);
    assert_eq!(found(&view, &request("app", "secret", everything.clone())), Vec::<Uuid>::new());
    assert_eq!(found(&view, &request("app", "retry", everything)), Vec::<Uuid>::new(), "the first send wins");
    assert_eq!(view.live_documents().ok(), Some(2));
}

#[test]
fn replies_need_a_root_message_of_the_same_channel() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    let (root, reply, stray, nested) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    write(
        &mut writer,
        &[
            envelope("app", "a", "ann", sent(root, "thread root", None)),
            envelope("app", "a", "bob", sent(reply, "thread reply", Some(root))),
            envelope("app", "b", "bob", sent(stray, "thread elsewhere", Some(root))),
            envelope("app", "a", "bob", sent(nested, "thread nested", Some(reply))),
        ],
    );
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    let mut hits = found(&view, &request("app", "thread", channels(&["a", "b"])));
    hits.sort();
    let mut expected = vec![root, reply];
    expected.sort();
    assert_eq!(hits, expected);
    let page =
        chatsdk_search::engine::search(&view.snapshot(), view.fields(), &request("app", "reply", channels(&["a"])))
            .ok()
            .and_then(|page| page.hits.first().map(|hit| hit.message.parent));
    assert_eq!(page, Some(Some(root)));
}

#[test]
fn scope_app_author_and_time_filters_restrict_hits() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let mut early = envelope("app", "a", "ann", sent(ids[0], "budget one", None));
    early.occurred_at = chrono::DateTime::from_timestamp_millis(1_000_000).unwrap_or_default();
    write(
        &mut writer,
        &[
            early,
            envelope("app", "a", "bob", sent(ids[1], "budget two", None)),
            envelope("app", "b", "ann", sent(ids[2], "budget three", None)),
            envelope("other", "a", "ann", sent(ids[3], "budget four", None)),
        ],
    );
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    let sorted = |mut ids: Vec<Uuid>| {
        ids.sort();
        ids
    };
    assert_eq!(sorted(found(&view, &request("app", "budget", channels(&["a"])))), sorted(vec![ids[0], ids[1]]));
    assert_eq!(sorted(found(&view, &request("app", "budget", Scope::App))), sorted(ids[..3].to_vec()));
    assert_eq!(found(&view, &request("app", "budget", channels(&[]))), Vec::<Uuid>::new());
    assert_eq!(found(&view, &request("other", "budget", Scope::App)), vec![ids[3]]);
    let mut by_ann = request("app", "budget", Scope::App);
    by_ann.author = Some("ann".to_owned());
    assert_eq!(sorted(found(&view, &by_ann)), sorted(vec![ids[0], ids[2]]));
    let mut recent = request("app", "budget", Scope::App);
    recent.since_ms = Some(2_000_000);
    assert_eq!(sorted(found(&view, &recent)), sorted(vec![ids[1], ids[2]]));
    let mut old = request("app", "budget", Scope::App);
    old.until_ms = Some(2_000_000);
    assert_eq!(found(&view, &old), vec![ids[0]]);
}

#[test]
fn phrases_prefixes_exclusions_and_highlights() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    write(
        &mut writer,
        &[
            envelope("app", "a", "ann", sent(ids[0], "deploy on friday <b>night</b>", None)),
            envelope("app", "a", "ann", sent(ids[1], "friday we deploy", None)),
            envelope("app", "a", "ann", sent(ids[2], "deployment finished", None)),
            envelope("app", "a", "ann", sent(ids[3], "Déjà vu at the café", None)),
        ],
    );
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    let scope = channels(&["a"]);
    assert_eq!(found(&view, &request("app", "\"deploy on friday\"", scope.clone())), vec![ids[0]]);
    let mut prefixed = found(&view, &request("app", "deplo*", scope.clone()));
    prefixed.sort();
    let mut deploys = ids[..3].to_vec();
    deploys.sort();
    assert_eq!(prefixed, deploys);
    assert_eq!(found(&view, &request("app", "\"we depl\"*", scope.clone())), vec![ids[1]]);
    assert_eq!(found(&view, &request("app", "deploy -night", scope.clone())), vec![ids[1]]);
    assert_eq!(found(&view, &request("app", "finished OR cafe", scope.clone())).len(), 2);
    let page = chatsdk_search::engine::search(&view.snapshot(), view.fields(), &request("app", "cafe deja", scope))
        .unwrap_or_else(|error| panic!("{error}"));
    let highlight = page.hits.first().map(|hit| hit.highlight.clone());
    let highlight = highlight.unwrap_or_else(|| panic!("no hit for accents folded"));
    let marked: Vec<String> = highlight
        .ranges
        .iter()
        .map(|(start, end)| highlight.fragment.chars().skip(*start).take(end - start).collect())
        .collect();
    assert_eq!(marked, ["Déjà", "café"], "ranges count characters, not bytes");
    assert_eq!(highlight.html, "<b>Déjà</b> vu at the <b>café</b>");
}

#[test]
fn newest_first_pages_with_a_cursor_without_gaps_or_repeats() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    let start = chrono::Utc::now();
    let mut envelopes = Vec::new();
    let mut expected = Vec::new();
    for index in 0..25_i64 {
        let id = Uuid::new_v4();
        let mut sent_now = envelope("app", "a", "ann", sent(id, &format!("standup note {index}"), None));
        // Pairs share a millisecond: the order key still separates them.
        sent_now.occurred_at = start + chrono::Duration::milliseconds(index / 2);
        envelopes.push(sent_now);
        expected.push(id);
    }
    write(&mut writer, &envelopes);
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    let mut request = request("app", "standup", channels(&["a"]));
    request.order = SortOrder::Newest;
    request.limit = 4;
    let mut seen = Vec::new();
    loop {
        let page = chatsdk_search::engine::search(&view.snapshot(), view.fields(), &request)
            .unwrap_or_else(|error| panic!("{error}"));
        seen.extend(page.hits.iter().map(|hit| hit.message.clone()));
        match page.next {
            Some(cursor @ Cursor::Before(_)) => request.cursor = Some(cursor),
            Some(other) => panic!("unexpected cursor {other:?}"),
            None => break,
        }
    }
    let mut ids: Vec<Uuid> = seen.iter().map(|message| message.message_id).collect();
    assert!(seen.windows(2).all(|pair| pair[0].created >= pair[1].created), "newest first");
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected, "every hit exactly once across pages");
}

#[test]
fn reopening_resumes_from_the_commit_and_drops_what_was_not_committed() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let first = Uuid::new_v4();
    {
        let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
        write(&mut writer, &[envelope("app", "a", "ann", sent(first, "committed words", None))]);
        // Applied, never committed: a crash here must lose both the document and its offset.
        let lost = envelope("app", "a", "ann", sent(Uuid::new_v4(), "uncommitted words", None));
        writer.apply(0, 1, Some(&lost)).unwrap_or_else(|error| panic!("{error:#}"));
        assert!(SearchWriter::open(&scratch.path, settings(&[])).is_err(), "a second writer is refused");
    }
    let writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    assert_eq!(writer.committed().offsets, BTreeMap::from([(0, 1)]));
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    assert_eq!(found(&view, &request("app", "words", Scope::App)), vec![first]);
}

#[test]
fn an_app_keeps_the_analyzer_its_documents_were_indexed_with() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    {
        let mut writer = SearchWriter::open(&scratch.path, settings(&[("tokyo", Analyzer::Cjk)]))
            .unwrap_or_else(|error| panic!("{error:#}"));
        write(
            &mut writer,
            &[
                envelope("tokyo", "a", "ann", sent(Uuid::new_v4(), "東京都に行きます", None)),
                envelope("plain", "a", "ann", sent(Uuid::new_v4(), "東京都に行きます", None)),
            ],
        );
    }
    // The configuration changes afterwards: the recorded choices stay until a rebuild.
    let mut writer =
        SearchWriter::open(&scratch.path, settings(&[("plain", Analyzer::Cjk), ("tokyo", Analyzer::English)]))
            .unwrap_or_else(|error| panic!("{error:#}"));
    write(&mut writer, &[envelope("tokyo", "a", "ann", sent(Uuid::new_v4(), "京都", None))]);
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    assert_eq!(view.snapshot().payload.analyzer_for("tokyo"), Analyzer::Cjk);
    assert_eq!(view.snapshot().payload.analyzer_for("plain"), Analyzer::Default);
    assert_eq!(found(&view, &request("tokyo", "京都", Scope::App)).len(), 2, "bigrams inside a longer run match");
    assert_eq!(found(&view, &request("plain", "京都", Scope::App)).len(), 0, "default keeps the run as one word");
}

#[test]
fn a_query_of_unindexable_words_only_is_refused() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    write(&mut writer, &[envelope("app", "a", "ann", sent(Uuid::new_v4(), "words", None))]);
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    // Only a word too long to be indexed: it parses, but there is nothing to look up.
    let long_word = "x".repeat(100);
    let outcome =
        chatsdk_search::engine::search(&view.snapshot(), view.fields(), &request("app", &long_word, Scope::App));
    assert!(matches!(outcome, Err(chatsdk_search::SearchError::NothingToSearch)));
}

#[test]
fn overlapping_cjk_matches_are_one_highlight_range() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[("tokyo", Analyzer::Cjk)]))
        .unwrap_or_else(|error| panic!("{error:#}"));
    write(&mut writer, &[envelope("tokyo", "a", "ann", sent(Uuid::new_v4(), "明日東京都に行く", None))]);
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    let page = chatsdk_search::engine::search(&view.snapshot(), view.fields(), &request("tokyo", "東京都", Scope::App))
        .unwrap_or_else(|error| panic!("{error}"));
    let highlight = page.hits.first().map(|hit| hit.highlight.clone()).unwrap_or_else(|| panic!("no hit"));
    assert_eq!(highlight.ranges, vec![(2, 5)], "東京 and 京都 overlap: one range over 東京都");
    assert_eq!(highlight.html, "明日<b>東京都</b>に行く");
}

#[test]
fn prefixes_expand_within_the_app_only() {
    let scratch = ScratchDir::new("chatsdk-search-test");
    let mut writer = SearchWriter::open(&scratch.path, settings(&[])).unwrap_or_else(|error| panic!("{error:#}"));
    // Another app has more words sorting before "deploy" than a prefix expands to.
    let mut envelopes: Vec<Envelope> = (0..100)
        .map(|index| envelope("other", "a", "ann", sent(Uuid::new_v4(), &format!("dep{index:03}"), None)))
        .collect();
    let mine = Uuid::new_v4();
    envelopes.push(envelope("mine", "a", "ann", sent(mine, "deploy done", None)));
    write(&mut writer, &envelopes);
    let view = IndexView::open(&scratch.path).unwrap_or_else(|error| panic!("{error:#}"));
    assert_eq!(found(&view, &request("mine", "dep*", Scope::App)), vec![mine]);
    assert_eq!(found(&view, &request("other", "dep*", Scope::App)).len(), 20, "a full page of the other app's");
    assert_eq!(found(&view, &request("other", "deploy", Scope::App)), Vec::<Uuid>::new());
}
