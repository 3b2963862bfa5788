//! Reads, read-your-writes, sync and authorization against the real stack (Kafka, registry, PostgreSQL),
//! with the real command API and projector writing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chatsdk_client::api::{CreateChannel, EditMessage, MarkRead, SendMessage};
use chatsdk_client::token::{Claims, mint};
use chatsdk_client::views::ServerFrame;
use chatsdk_client::{Client, ClientError};
use chatsdk_schemas::events::{ChannelType, Role};
use chatsdk_schemas::ids::{ChannelId, MessageId, UserId};
use common::{Harness, follow, group, id, send};
use serde_json::Value;
use std::time::Duration;

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status.as_u16(), code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn history_threads_messages_and_channel_lists_follow_the_commands() {
    let harness = Harness::start(1).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &["bob"]).await;
    let mut sent = Vec::new();
    for n in 0..7 {
        sent.push(send(&alice, &channel, &format!("message {n}")).await);
    }
    let reply = alice
        .send_message(&channel, &SendMessage { parent_id: Some(sent[1]), ..SendMessage::text("a reply") })
        .await
        .unwrap()
        .message_id
        .unwrap();
    alice.edit_message(&channel, &sent[2], &EditMessage { text: "edited".into(), mentions: vec![] }).await.unwrap();
    alice.delete_message(&channel, &sent[3], false).await.unwrap();
    alice.delete_message(&channel, &sent[4], true).await.unwrap();
    alice.add_reaction(&channel, &sent[0], "👍").await.unwrap();
    alice.pin_message(&channel, &sent[5]).await.unwrap();

    // Newest first, paged by position; the purged message is gone, the soft-deleted one is a blank.
    let first = alice.history(&channel, &[("limit", "4")]).await.unwrap();
    assert!(first.has_more);
    let before = first.messages.last().unwrap().position.offset.to_string();
    let second = alice.history(&channel, &[("limit", "4"), ("before", before.as_str())]).await.unwrap();
    assert!(!second.has_more);
    let ids: Vec<MessageId> = first.messages.iter().chain(&second.messages).map(|message| message.message_id).collect();
    let expected: Vec<MessageId> = [6, 5, 3, 2, 1, 0].iter().map(|n| sent[*n]).collect();
    assert_eq!(ids, expected, "top-level messages, newest first, without the purged one");
    let by_id: BTreeMap<MessageId, _> =
        first.messages.iter().chain(&second.messages).map(|m| (m.message_id, m)).collect();
    assert_eq!(by_id[&sent[2]].text, "edited");
    assert!(by_id[&sent[2]].edited_at.is_some());
    assert_eq!((by_id[&sent[3]].text.as_str(), by_id[&sent[3]].deleted_at.is_some()), ("", true));
    assert_eq!(by_id[&sent[1]].reply_count, 1);
    assert!(by_id[&sent[5]].pinned && !by_id[&sent[6]].pinned);
    assert_eq!(by_id[&sent[0]].reactions.len(), 1);
    assert_eq!(by_id[&sent[0]].own_reactions, vec!["👍".to_owned()]);

    // Oldest first from an offset.
    let after = by_id[&sent[1]].position.offset.to_string();
    let forward = alice.history(&channel, &[("after", after.as_str())]).await.unwrap();
    let forward: Vec<MessageId> = forward.messages.iter().map(|message| message.message_id).collect();
    assert_eq!(forward, vec![sent[2], sent[3], sent[5], sent[6]]);

    let thread = alice.replies(&channel, &sent[1], &[]).await.unwrap();
    assert_eq!(thread.messages.iter().map(|m| m.message_id).collect::<Vec<_>>(), vec![reply]);
    let detail = alice.message(&channel, &sent[0]).await.unwrap();
    assert_eq!(
        detail.reactions.iter().map(|r| (r.emoji.as_str(), r.user_id.as_str())).collect::<Vec<_>>(),
        [("👍", "alice")]
    );
    assert_eq!(code(alice.message(&channel, &sent[4]).await), (404, "message_not_found".into()), "purged");

    // Bob's list: unread counts top-level messages (7 sent, one purged still counted as sent).
    let bob = harness.user("bob", 0);
    follow(&bob, &alice);
    let other = group(&alice, &["bob"]).await;
    follow(&bob, &alice);
    let list = bob.channels(&[]).await.unwrap();
    let listed: Vec<&ChannelId> = list.channels.iter().map(|view| &view.channel_id).collect();
    assert_eq!(listed, vec![&other, &channel], "most recent activity first");
    let view = &list.channels[1];
    assert_eq!((view.role, view.unread_count), (Some(Role::Member), Some(7)));
    assert_eq!(view.last_message.as_ref().map(|m| m.message_id), Some(sent[6]));
    let read = bob.mark_read(&channel, &MarkRead::default()).await.unwrap();
    assert_eq!(read.channel_id, channel);
    assert_eq!(bob.channel(&channel).await.unwrap().unread_count, Some(0));
    let paged = bob.channels(&[("limit", "1")]).await.unwrap();
    let cursor = paged.next_cursor.clone().unwrap();
    let rest = bob.channels(&[("limit", "1"), ("cursor", cursor.as_str())]).await.unwrap();
    assert_eq!(
        (paged.channels[0].channel_id.clone(), rest.channels[0].channel_id.clone()),
        (other.clone(), channel.clone())
    );
    assert!(rest.next_cursor.is_none());
    let dms = bob.channels(&[("type", "dm")]).await.unwrap();
    assert!(dms.channels.is_empty());
    let members = bob.members(&channel, &[]).await.unwrap();
    let names: Vec<&str> = members.members.iter().map(|member| member.user_id.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    harness.stop().await;
}

#[tokio::test]
async fn a_read_with_the_sends_min_position_always_sees_the_message() {
    let harness = Harness::start(1).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &[]).await;
    // A fresh reader per send, given only that send's position: no other session state helps it.
    for n in 0..20 {
        let accepted = alice.send_message(&channel, &SendMessage::text(format!("n{n}"))).await.unwrap();
        let reader = harness.user("alice", 0);
        reader.observe(accepted.position);
        let page = reader.history(&channel, &[("limit", "1")]).await.unwrap();
        assert_eq!(page.messages[0].message_id, accepted.message_id.unwrap(), "send {n}");
    }
    harness.stop().await;
}

#[tokio::test]
async fn every_read_refuses_outsiders_other_apps_and_expired_tokens() {
    let harness = Harness::start(1).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &["bob"]).await;
    let message = send(&alice, &channel, "private").await;
    harness.commands.wait_projected(2).await;
    let paths = [
        format!("/v1/channels/{channel}"),
        format!("/v1/channels/{channel}/members"),
        format!("/v1/channels/{channel}/messages"),
        format!("/v1/channels/{channel}/messages/{message}"),
        format!("/v1/channels/{channel}/messages/{message}/replies"),
    ];
    let bob = harness.user_headers("bob");
    let eve = harness.user_headers("eve");
    let expired = vec![
        ("x-api-key", harness.commands.app.api_key.clone()),
        ("authorization", {
            let now = chrono::Utc::now().timestamp();
            let claims = Claims::new(&id::<UserId>("bob"), now - 3_600, 60);
            format!("Bearer {}", mint(&harness.commands.app.api_secret, &claims))
        }),
    ];
    // Another app, whose user is called bob too.
    let other_app = command_api::apps::create_app(&harness.commands.database.pool, &id("otherapp")).await.unwrap();
    let foreign = vec![
        ("x-api-key", other_app.api_key.clone()),
        ("authorization", {
            let claims = Claims::new(&id::<UserId>("bob"), chrono::Utc::now().timestamp(), 600);
            format!("Bearer {}", mint(&other_app.api_secret, &claims))
        }),
    ];
    for path in &paths {
        assert_eq!(harness.get(0, path, &bob).await.0, 200, "member: {path}");
        let (status, body) = harness.get(0, path, &eve).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_a_member")), "non-member: {path}");
        let (status, body) = harness.get(0, path, &foreign).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("channel_not_found")), "other app: {path}");
        let (status, body) = harness.get(0, path, &expired).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "expired: {path}");
        assert_eq!(harness.get(0, path, &[]).await.0, 401, "anonymous: {path}");
    }
    for path in ["/v1/channels", "/v1/sync"] {
        assert_eq!(harness.get(0, path, &expired).await.0, 401, "expired: {path}");
        let (_, body) = harness.get(0, path, &foreign).await;
        assert!(!body.to_string().contains(channel.as_str()), "another app's channel never appears: {path}");
    }
    let (_, listed) = harness.get(0, "/v1/channels", &eve).await;
    assert_eq!(listed["channels"], Value::Array(vec![]));
    // A public channel is readable by anyone of its app (not by another app).
    let lobby = alice
        .create_channel(&CreateChannel { channel_id: Some(id("lobby")), ..CreateChannel::new(ChannelType::Public) })
        .await
        .unwrap();
    alice.observe(lobby.position);
    send(&alice, &id("lobby"), "hello lobby").await;
    harness.commands.wait_projected(4).await;
    let (status, page) = harness.get(0, "/v1/channels/lobby/messages", &eve).await;
    assert_eq!((status, page["messages"][0]["text"].as_str()), (200, Some("hello lobby")));
    assert_eq!(harness.get(0, "/v1/channels/lobby/messages", &foreign).await.0, 404);

    // The socket: an expired token is refused before the upgrade; another app's bob connects (to his own
    // app) and receives nothing of this one, nor does eve, while this app's bob does.
    let node = harness.nodes[0].address;
    let token = expired[1].1.trim_start_matches("Bearer ");
    let url = format!("ws://{node}/v1/ws?api_key={}&auth={token}", expired[0].1);
    let error = tokio_tungstenite::connect_async(url).await.err().map(|error| error.to_string()).unwrap_or_default();
    assert!(error.contains("401"), "expired token on the socket: {error}");
    let token = foreign[1].1.trim_start_matches("Bearer ");
    let url = format!("ws://{node}/v1/ws?api_key={}&auth={token}", foreign[0].1);
    let mut outsiders = vec![common::Socket { stream: tokio_tungstenite::connect_async(url).await.unwrap().0 }];
    outsiders.push(harness.connect(0, "eve", None).await);
    let mut member = harness.connect(0, "bob", None).await;
    for socket in outsiders.iter_mut().chain([&mut member]) {
        assert!(matches!(socket.next(Duration::from_secs(20)).await, ServerFrame::Connected { .. }));
    }
    send(&alice, &channel, "only for members").await;
    let (_, event, _) = member.next_event(Duration::from_secs(20)).await;
    assert_eq!(event["payload"]["text"], "only for members");
    for socket in &mut outsiders {
        socket.send_json(serde_json::json!({"type": "ping"})).await;
        assert_eq!(socket.next(Duration::from_secs(20)).await, ServerFrame::Pong, "an outsider got a frame first");
    }
    // Parameters are checked.
    let history = format!("/v1/channels/{channel}/messages");
    for query in ["?limit=0", "?limit=201", "?before=x", "?order=sideways", "?min_position=garbage"] {
        let (status, body) = harness.get(0, &format!("{history}{query}"), &bob).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    harness.stop().await;
}

/// What a client builds from events: message id → (text, deleted, reactions).
#[derive(Debug, Default, PartialEq)]
struct Replica {
    messages: BTreeMap<String, (String, bool, BTreeMap<String, i32>)>,
    channels: BTreeSet<String>,
    pinned: BTreeSet<String>,
}

impl Replica {
    fn apply(&mut self, event: &Value) {
        let payload = &event["payload"];
        let message = payload["message_id"].as_str().unwrap_or_default().to_owned();
        match event["type"].as_str().unwrap() {
            "channel.created" | "member.added" => {
                self.channels.insert(event["channel_id"].as_str().unwrap().to_owned());
            }
            "message.sent" => {
                let text = payload["text"].as_str().unwrap().to_owned();
                self.messages.entry(message).or_insert((text, false, BTreeMap::new()));
            }
            "message.edited" => {
                self.messages.get_mut(&message).unwrap().0 = payload["text"].as_str().unwrap().to_owned()
            }
            "message.deleted" => {
                if payload["hard"].as_bool() == Some(true) {
                    self.messages.remove(&message);
                } else {
                    let entry = self.messages.get_mut(&message).unwrap();
                    *entry = (String::new(), true, BTreeMap::new());
                }
            }
            "reaction.added" => {
                *self
                    .messages
                    .get_mut(&message)
                    .unwrap()
                    .2
                    .entry(payload["emoji"].as_str().unwrap().into())
                    .or_default() += 1;
            }
            "reaction.removed" => {
                let reactions = &mut self.messages.get_mut(&message).unwrap().2;
                let emoji = payload["emoji"].as_str().unwrap();
                *reactions.get_mut(emoji).unwrap() -= 1;
                reactions.retain(|_, count| *count > 0);
            }
            "message.pinned" => {
                self.pinned.insert(message);
            }
            "message.unpinned" => {
                self.pinned.remove(&message);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn sync_after_a_mixed_stream_equals_the_history_endpoints() {
    let harness = Harness::start(1).await;
    let alice = harness.user("alice", 0);
    let bob = harness.user("bob", 0);
    let first = group(&alice, &["bob"]).await;
    let early = send(&alice, &first, "before bob went offline").await;
    follow(&bob, &alice);
    let start = bob.sync(None, None).await.unwrap();
    assert!(start.events.is_empty());
    assert_eq!(start.channels.as_ref().unwrap().channels.len(), 1);
    let mut replica = Replica::default();
    replica.channels.insert(first.to_string());
    replica.messages.insert(early.to_string(), ("before bob went offline".into(), false, BTreeMap::new()));

    // While bob is offline: messages, edits, deletes, reactions, pins, a new channel with him, a channel
    // without him, read markers.
    let mut sent = Vec::new();
    for n in 0..12 {
        sent.push(send(&alice, &first, &format!("offline {n}")).await);
    }
    alice
        .edit_message(&first, &early, &EditMessage { text: "edited while offline".into(), mentions: vec![] })
        .await
        .unwrap();
    alice.edit_message(&first, &sent[0], &EditMessage { text: "edited twice".into(), mentions: vec![] }).await.unwrap();
    alice.delete_message(&first, &sent[1], false).await.unwrap();
    alice.delete_message(&first, &sent[2], true).await.unwrap();
    alice.add_reaction(&first, &sent[3], "🎉").await.unwrap();
    alice.add_reaction(&first, &sent[3], "👀").await.unwrap();
    alice.remove_reaction(&first, &sent[3], "👀").await.unwrap();
    alice.pin_message(&first, &sent[4]).await.unwrap();
    let second = group(&alice, &["bob"]).await;
    let in_second = send(&alice, &second, "in the new channel").await;
    let private = group(&alice, &["carol"]).await;
    send(&alice, &private, "bob must not see this").await;
    alice.mark_read(&first, &MarkRead::default()).await.unwrap();

    // Paged sync until has_more is false.
    follow(&bob, &alice);
    let mut token = start.next_token.clone();
    let mut pages = 0;
    let mut seen = BTreeSet::new();
    loop {
        let page = bob.sync(Some(&token), Some(5)).await.unwrap();
        pages += 1;
        for logged in &page.events {
            assert!(seen.insert((logged.position.partition, logged.position.offset)), "an event twice");
            assert_ne!(logged.event["channel_id"], private.as_str(), "another channel's event");
            assert_ne!(logged.event["payload"]["text"], "offline 2", "a purged message's text stays purged");
            replica.apply(&logged.event);
        }
        token = page.next_token;
        if !page.has_more {
            break;
        }
    }
    assert!(pages > 3, "{pages} pages of at most 5");
    let again = bob.sync(Some(&token), None).await.unwrap();
    assert!(again.events.is_empty() && !again.has_more, "nothing after the final token");

    // The replica equals what the history endpoints show.
    let mut shown = Replica::default();
    for channel in [&first, &second] {
        shown.channels.insert(channel.to_string());
        let page = bob.history(channel, &[("limit", "200")]).await.unwrap();
        for message in page.messages {
            let reactions = message.reactions.iter().map(|r| (r.emoji.clone(), r.count)).collect();
            let entry = (message.text.clone(), message.deleted_at.is_some(), reactions);
            shown.messages.insert(message.message_id.to_string(), entry);
            if message.pinned {
                shown.pinned.insert(message.message_id.to_string());
            }
        }
    }
    assert_eq!(replica, shown);
    assert!(replica.messages.contains_key(&in_second.to_string()), "being added brought the new channel's events");

    // Garbage and foreign tokens are 400s.
    for garbage in ["nonsense", "s1.", "s1.AAAA", "p1.MDoxMA"] {
        assert_eq!(code(bob.sync(Some(garbage), None).await), (400, "invalid_token".into()), "{garbage}");
    }
    let other_app = command_api::apps::create_app(&harness.commands.database.pool, &id("syncother")).await.unwrap();
    let claims = Claims::new(&id::<UserId>("bob"), chrono::Utc::now().timestamp(), 600);
    let foreign_user = Client::new(
        harness.commands.api.url(""),
        chatsdk_client::Credentials::User { api_key: other_app.api_key, token: mint(&other_app.api_secret, &claims) },
    )
    .unwrap()
    .with_query_url(harness.nodes[0].url(""));
    assert_eq!(code(foreign_user.sync(Some(&token), None).await), (400, "invalid_token".into()));
    assert_eq!(code(harness.server(0).sync(None, None).await), (400, "user_required".into()));
    harness.stop().await;
}

#[tokio::test]
async fn the_openapi_document_matches_the_query_routes_and_live_responses() {
    let harness = Harness::start(1).await;
    let (status, document) = harness.get(0, "/v1/openapi.json", &[]).await;
    assert_eq!(status, 200);
    let http = reqwest::Client::new();
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation["x-service"] != "query-api" {
                continue;
            }
            operations.insert(format!("{} {path}", method.to_uppercase()));
            let concrete =
                path.replace("{channel_id}", "c1").replace("{message_id}", "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61");
            let response = http
                .request(method.to_uppercase().parse().unwrap(), harness.nodes[0].url(&concrete))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(
                status != reqwest::StatusCode::METHOD_NOT_ALLOWED && status != reqwest::StatusCode::NOT_FOUND,
                "{method} {path} is documented but not served ({status} {body})"
            );
        }
    }
    let known: BTreeSet<String> = [
        "GET /v1/channels",
        "GET /v1/channels/{channel_id}",
        "GET /v1/channels/{channel_id}/members",
        "GET /v1/channels/{channel_id}/messages",
        "GET /v1/channels/{channel_id}/messages/{message_id}",
        "GET /v1/channels/{channel_id}/messages/{message_id}/replies",
        "POST /v1/channels/{channel_id}/typing",
        "DELETE /v1/channels/{channel_id}/typing",
        "GET /v1/search",
        "GET /v1/files/{upload_id}",
        "GET /v1/sync",
        "GET /v1/ws",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(operations, known, "documented query operations");

    // Live responses, with optional parts present, match their schemas.
    let alice = harness.user("alice", 0);
    let bob = harness.user("bob", 0);
    let channel = group(&alice, &["bob"]).await;
    let root = send(&alice, &channel, "root").await;
    alice.send_message(&channel, &SendMessage { parent_id: Some(root), ..SendMessage::text("reply") }).await.unwrap();
    alice.add_reaction(&channel, &root, "👍").await.unwrap();
    alice.pin_message(&channel, &root).await.unwrap();
    alice.delete_message(&channel, &send(&alice, &channel, "gone").await, false).await.unwrap();
    follow(&bob, &alice);
    let fresh = bob.sync(None, None).await.unwrap();
    let bodies: Vec<(&str, Value)> = vec![
        ("ChannelPage", serde_json::to_value(bob.channels(&[("limit", "1")]).await.unwrap()).unwrap()),
        ("ChannelView", serde_json::to_value(bob.channel(&channel).await.unwrap()).unwrap()),
        ("MemberPage", serde_json::to_value(bob.members(&channel, &[("limit", "1")]).await.unwrap()).unwrap()),
        ("MessagePage", serde_json::to_value(bob.history(&channel, &[]).await.unwrap()).unwrap()),
        ("MessagePage", serde_json::to_value(bob.replies(&channel, &root, &[]).await.unwrap()).unwrap()),
        ("MessageDetail", serde_json::to_value(bob.message(&channel, &root).await.unwrap()).unwrap()),
        ("SyncPage", serde_json::to_value(&fresh).unwrap()),
    ];
    for (name, body) in &bodies {
        common::assert_valid(&document, name, body);
    }
    // Raw bodies too (the typed client would hide an undocumented field).
    let headers = harness.user_headers("bob");
    let (_, raw_history) = harness.get(0, &format!("/v1/channels/{channel}/messages"), &headers).await;
    common::assert_valid(&document, "MessagePage", &raw_history);
    let (_, raw_sync) = harness.get(0, "/v1/sync", &headers).await;
    common::assert_valid(&document, "SyncPage", &raw_sync);
    let (_, refused) = harness.get(0, "/v1/sync?token=garbage", &headers).await;
    common::assert_valid(&document, "Error", &refused);
    harness.stop().await;
}

#[tokio::test]
async fn a_position_the_projector_does_not_reach_in_time_is_a_503_with_retry_after() {
    let harness = Harness::start_with(1, |config| config.reads.min_position_wait_ms = 200).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &[]).await;
    let ahead = format!(
        "/v1/channels/{channel}/messages?min_position={}",
        chatsdk_client::Position { partition: 0, offset: 1_000_000 }.token()
    );
    let response = reqwest::Client::new()
        .get(harness.nodes[0].url(&ahead))
        .header("x-api-key", &harness.commands.app.api_key)
        .bearer_auth(harness.commands.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|value| value.to_str().ok()), Some("1"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "position_not_reached");
    harness.stop().await;
}
