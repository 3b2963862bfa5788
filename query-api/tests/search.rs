//! `GET /v1/search` against the real stack: a search-only projector writes the index, query nodes read it.
//! Who finds what, filters, highlights, paging, edits and deletes, and the refusals.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chatsdk_client::Client;
use chatsdk_client::api::{CreateChannel, EditMessage, NewMember, SendMessage};
use chatsdk_client::views::SearchResults;
use chatsdk_schemas::events::ChannelType;
use chatsdk_schemas::ids::{ChannelId, MessageId};
use chatsdk_testkit::service::{RunningService, get_json};
use chatsdk_testkit::{ScratchDir, wait_for};
use common::{Harness, group, id, send};

struct Searching {
    harness: Harness,
    projector: RunningService,
    _index: ScratchDir,
}

impl Searching {
    /// The harness with `nodes` query nodes reading the index a search-only projector writes.
    async fn start(nodes: usize) -> Self {
        let index = ScratchDir::new("chatsdk-search-api");
        let harness = Harness::start_with(nodes, |config| {
            config.search.index_dir = Some(index.path.clone());
            config.search.refresh_interval_ms = 20;
        })
        .await;
        let mut config = projector::Config::load(None).unwrap();
        config.http.bind = "127.0.0.1:0".parse().unwrap();
        config.consumer.enabled = false;
        config.consumer.topic = harness.commands.topic.clone();
        config.search.enabled = true;
        config.search.index_dir = index.path.clone();
        config.search.indexer.group_id = format!("{}-search", harness.commands.group);
        config.search.indexer.commit_interval_ms = 20;
        let projector = RunningService::start::<projector::Application>(config).await;
        for node in &harness.nodes {
            let url = node.url("/readyz");
            wait_for("a query node with the index open", Duration::from_secs(60), || async {
                get_json(&url).await.1["reports"]["search"].get("committed").map(|_| ())
            })
            .await;
        }
        Self { harness, projector, _index: index }
    }

    async fn stop(self) {
        self.projector.stop().await.unwrap();
        self.harness.stop().await;
    }
}

/// `client`'s search, after the index (and the read model) reached everything `client` did or followed.
async fn search(client: &Client, q: &str, query: &[(&str, &str)]) -> SearchResults {
    client.search(q, query).await.unwrap_or_else(|error| panic!("search {q:?}: {error}"))
}

fn texts(results: &SearchResults) -> BTreeSet<String> {
    results.results.iter().map(|result| result.message.text.clone()).collect()
}

fn set(texts: &[&str]) -> BTreeSet<String> {
    texts.iter().map(|text| (*text).to_owned()).collect()
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn members_find_their_channels_only_with_highlights_and_filters() {
    let searching = Searching::start(1).await;
    let harness = &searching.harness;
    let (ann, bob, cat) = (harness.user("ann", 0), harness.user("bob", 0), harness.user("cat", 0));
    let shared = group(&ann, &["bob"]).await;
    let private = group(&ann, &["cat"]).await;
    let public = ann
        .create_channel(&CreateChannel {
            members: vec![NewMember { user_id: id("bob"), role: None }],
            ..CreateChannel::new(ChannelType::Public)
        })
        .await
        .unwrap()
        .channel_id;
    send(&ann, &shared, "The rocket launch is at noon").await;
    send(&bob, &shared, "launch party after").await;
    send(&ann, &private, "secret launch codes").await;
    send(&ann, &public, "public launch notes").await;
    // Each reader's session covers every send it expects to find (bob's message is after ann's in its partition).
    common::follow(&ann, &bob);
    common::follow(&bob, &ann);
    common::follow(&cat, &ann);

    assert_eq!(
        texts(&search(&ann, "launch", &[]).await),
        set(&["The rocket launch is at noon", "launch party after", "secret launch codes", "public launch notes"])
    );
    assert_eq!(
        texts(&search(&bob, "launch", &[]).await),
        set(&["The rocket launch is at noon", "launch party after", "public launch notes"]),
        "not the channel bob is not in"
    );
    assert_eq!(
        texts(&search(&cat, "launch", &[]).await),
        set(&["secret launch codes"]),
        "public channels only by name"
    );
    // A public channel can be named by anyone of the app; a private one only by its members.
    assert_eq!(texts(&search(&cat, "launch", &[("channel_id", public.as_str())]).await), set(&["public launch notes"]));
    let path = format!("/v1/search?q=launch&channel_id={private}");
    let (status, body) = harness.get(0, &path, &harness.user_headers("bob")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_a_member")));
    let (status, body) = harness.get(0, "/v1/search?q=launch&channel_id=nowhere", &harness.user_headers("bob")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("channel_not_found")));

    // Filters: author, time, channel.
    assert_eq!(texts(&search(&ann, "launch", &[("author_id", "bob")]).await), set(&["launch party after"]));
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert!(search(&ann, "launch", &[("since", &future)]).await.results.is_empty());
    assert_eq!(search(&ann, "launch", &[("until", &future)]).await.results.len(), 4);
    assert_eq!(
        texts(&search(&ann, "launch", &[("channel_id", shared.as_str())]).await),
        set(&["The rocket launch is at noon", "launch party after"])
    );

    // Highlights mark the matched words (in characters), phrases and prefixes match what they say.
    let found = search(&bob, "\"rocket launch\"", &[]).await;
    let highlight = &found.results[0].highlight;
    assert_eq!(highlight.html, "The <b>rocket</b> <b>launch</b> is at noon");
    assert_eq!(highlight.ranges, vec![[4, 10], [11, 17]]);
    assert_eq!(texts(&search(&bob, "roc*", &[]).await), set(&["The rocket launch is at noon"]));
    assert_eq!(texts(&search(&bob, "launch -party -rocket", &[]).await), set(&["public launch notes"]));

    // The backend searches the whole app, or as one user.
    let server = harness.server(0);
    common::follow(&server, &ann);
    common::follow(&server, &bob);
    assert_eq!(search(&server, "launch", &[]).await.results.len(), 4);
    assert_eq!(texts(&search(&server, "launch", &[("user_id", "cat")]).await), set(&["secret launch codes"]));
    // On behalf of a user, a named channel needs that user's access too.
    let refused = server.search("launch", &[("user_id", "bob"), ("channel_id", private.as_str())]).await;
    assert!(
        refused.is_err_and(|error| error.to_string().contains("not_a_member")),
        "bob may not read the private channel"
    );

    let (status, document) = harness.get(0, "/v1/openapi.json", &[]).await;
    assert_eq!(status, 200);
    common::assert_valid(&document, "SearchResults", &serde_json::to_value(&found).unwrap());
    searching.stop().await;
}

#[tokio::test]
async fn edits_replace_and_deletes_remove_what_search_finds() {
    let searching = Searching::start(1).await;
    let harness = &searching.harness;
    let ann = harness.user("ann", 0);
    let channel = group(&ann, &["bob"]).await;
    let edited = send(&ann, &channel, "meeting moved to tuesday").await;
    let soft = send(&ann, &channel, "meeting notes draft").await;
    let hard = send(&ann, &channel, "meeting password hunter2").await;
    assert_eq!(search(&ann, "meeting", &[]).await.results.len(), 3);
    let wednesday = EditMessage { text: "meeting moved to wednesday".to_owned(), mentions: Vec::new() };
    ann.edit_message(&channel, &edited, &wednesday).await.unwrap();
    ann.delete_message(&channel, &soft, false).await.unwrap();
    ann.delete_message(&channel, &hard, true).await.unwrap();
    assert_eq!(texts(&search(&ann, "meeting", &[]).await), set(&["meeting moved to wednesday"]));
    assert!(search(&ann, "tuesday", &[]).await.results.is_empty(), "the old text is gone");
    assert!(search(&ann, "hunter2", &[]).await.results.is_empty());
    // A retried send of a deleted message (same client_msg_id) does not bring it back.
    let keyed = SendMessage { client_msg_id: Some("k-1".to_owned()), ..SendMessage::text("meeting retried") };
    let first = ann.send_message(&channel, &keyed).await.unwrap().message_id.unwrap();
    assert_eq!(texts(&search(&ann, "retried", &[]).await), set(&["meeting retried"]));
    ann.delete_message(&channel, &first, false).await.unwrap();
    let again = ann.send_message(&channel, &keyed).await.unwrap().message_id.unwrap();
    assert_eq!(again, first);
    assert!(search(&ann, "retried", &[]).await.results.is_empty());
    searching.stop().await;
}

#[tokio::test]
async fn paging_returns_every_hit_once_in_both_orders() {
    let searching = Searching::start(1).await;
    let harness = &searching.harness;
    let ann = harness.user("ann", 0);
    let channel: ChannelId = group(&ann, &[]).await;
    let mut sent = BTreeSet::new();
    for index in 0..23 {
        let message: MessageId = send(&ann, &channel, &format!("standup {index} notes standup")).await;
        sent.insert(message);
    }
    for order in ["relevance", "newest"] {
        let mut seen = Vec::new();
        let mut times = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("order", order), ("limit", "10")];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.as_str()));
            }
            let page = search(&ann, "standup", &query).await;
            seen.extend(page.results.iter().map(|result| result.message.message_id));
            times.extend(page.results.iter().map(|result| result.message.created_at));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{order}: each hit once");
        assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), sent, "{order}");
        if order == "newest" {
            assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "newest first across pages: {times:?}");
        }
    }
    // A cursor is bound to its query.
    let first = search(&ann, "standup", &[("limit", "5")]).await.next_cursor.unwrap();
    let path = format!("/v1/search?q=notes&limit=5&cursor={first}");
    let (status, body) = harness.get(0, &path, &harness.user_headers("ann")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_cursor")));
    searching.stop().await;
}

#[tokio::test]
async fn bad_queries_are_400_with_the_position_and_a_node_without_index_is_503() {
    let searching = Searching::start(1).await;
    let harness = &searching.harness;
    let headers = harness.user_headers("ann");
    let refusal = |status: u16, body: &serde_json::Value| (status, body["error"]["code"].as_str().map(str::to_owned));
    let (status, body) = harness.get(0, &format!("/v1/search?q={}", encode("hello \"world")), &headers).await;
    assert_eq!(refusal(status, &body), (400, Some("invalid_query".to_owned())));
    assert_eq!(body["error"]["position"], 6, "{body}");
    let (status, body) = harness.get(0, &format!("/v1/search?q={}", encode("a*b")), &headers).await;
    assert_eq!((status, body["error"]["position"].as_u64()), (400, Some(1)));
    let (status, body) = harness.get(0, &format!("/v1/search?q={}", encode("?! ...")), &headers).await;
    assert_eq!(refusal(status, &body), (400, Some("invalid_query".to_owned())));
    let long = "word ".repeat(120);
    let (status, body) = harness.get(0, &format!("/v1/search?q={}", encode(&long)), &headers).await;
    assert_eq!(refusal(status, &body), (400, Some("invalid_query".to_owned())), "too long");
    for path in ["/v1/search", "/v1/search?q=a&limit=1000", "/v1/search?q=a&limit=0", "/v1/search?q=a&order=best"] {
        let (status, body) = harness.get(0, path, &headers).await;
        assert_eq!(refusal(status, &body), (400, Some("invalid_parameter".to_owned())), "{path}");
    }
    let (status, body) = harness.get(0, "/v1/search?q=a&since=yesterday", &headers).await;
    assert_eq!(refusal(status, &body), (400, Some("invalid_parameter".to_owned())));
    let (status, body) = harness.get(0, "/v1/search?q=a&cursor=c1.bm9wZQ", &headers).await;
    assert_eq!(refusal(status, &body), (400, Some("invalid_cursor".to_owned())));
    let (status, _) = harness.get(0, "/v1/search?q=a", &[]).await;
    assert_eq!(status, 401);

    // A node configured without an index answers 503, and stays ready for everything else.
    let bare = RunningService::start::<query_api::Application>(harness.node_config()).await;
    let ready = wait_for("the bare node ready", Duration::from_secs(60), || async {
        let (status, body) = get_json(&bare.url("/readyz")).await;
        (status == reqwest::StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(ready["reports"]["search"], "not configured", "{ready}");
    let response = reqwest::Client::new()
        .get(bare.url("/v1/search?q=launch"))
        .header("x-api-key", harness.commands.app.api_key.clone())
        .header("authorization", format!("Bearer {}", harness.commands.token("ann")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "search_unavailable");
    bare.stop().await.unwrap();
    searching.stop().await;
}

#[tokio::test]
async fn nodes_with_embedded_replicas_each_index_the_whole_log_and_answer_alike() {
    let parent = ScratchDir::new("chatsdk-search-replicas");
    let harness = Harness::start_with(2, |config| {
        let replica = uuid::Uuid::new_v4().simple().to_string();
        config.search.index_dir = Some(parent.path.join(&replica));
        config.search.embedded = true;
        config.search.indexer.group_id = format!("test-search-replica-{replica}");
        config.search.indexer.commit_interval_ms = 20;
        config.search.refresh_interval_ms = 20;
    })
    .await;
    let ann = harness.user("ann", 0);
    let channel = group(&ann, &["bob"]).await;
    for index in 0..12 {
        send(&ann, &channel, &format!("replica check {index}")).await;
    }
    let edited = send(&ann, &channel, "replica before edit").await;
    let wording = EditMessage { text: "replica after edit".to_owned(), mentions: Vec::new() };
    ann.edit_message(&channel, &edited, &wording).await.unwrap();
    let mut answers = Vec::new();
    for node in 0..2 {
        let bob = harness.user("bob", node);
        common::follow(&bob, &ann);
        let found = search(&bob, "replica", &[("limit", "50"), ("order", "newest")]).await;
        answers.push(found.results.iter().map(|result| result.message.text.clone()).collect::<Vec<_>>());
    }
    assert_eq!(answers[0].len(), 13);
    assert!(answers[0].contains(&"replica after edit".to_owned()));
    assert_eq!(answers[0], answers[1], "both replicas answer alike");
    // Each node reports its own replica.
    for node in &harness.nodes {
        let (_, body) = get_json(&node.url("/readyz")).await;
        assert_eq!(body["reports"]["search"]["mode"], "embedded", "{body}");
        assert_eq!(body["checks"]["search"]["ok"], true, "{body}");
    }
    harness.stop().await;
}
