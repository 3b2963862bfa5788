//! The command API end to end on the real stack: every command becomes one event, the projector builds the
//! read model the next command is authorized against, retries are idempotent, and bad input or bad
//! credentials append nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chatsdk_client::api::{
    ArchiveChannel, CreateChannel, EditMessage, MarkRead, NewMember, SendMessage, UpdateChannel,
};
use chatsdk_client::{Client, ClientError, Credentials};
use chatsdk_schemas::events::{ChannelType, Event, Role};
use chatsdk_schemas::ids::{ChannelId, UserId};
use common::{Harness, assert_valid, component};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn id<T: std::str::FromStr>(value: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    value.parse().unwrap()
}

fn group(channel: &str, members: &[&str]) -> CreateChannel {
    CreateChannel {
        channel_id: Some(id(channel)),
        members: members.iter().map(|user| NewMember { user_id: id(user), role: None }).collect(),
        ..CreateChannel::new(ChannelType::Group)
    }
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (StatusCode, String) {
    let error = result.expect_err("the call should have failed");
    (error.status().unwrap(), error.code().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn every_command_appends_one_event_and_the_read_model_follows() {
    let harness = Harness::start().await;
    let alice = harness.user("alice");
    let bob = harness.user("bob");
    let channel: ChannelId = id("general");

    let created = alice.create_channel(&group("general", &["bob"])).await.unwrap();
    assert_eq!(created.channel_id, channel);
    // Bob's session has not seen the creation: his first call must still find the channel. Give him the
    // position, as a client would pass it on (e.g. from a push).
    bob.observe(created.position);
    let sent = bob.send_message(&channel, &SendMessage::text("hello @alice")).await.unwrap();
    let message = sent.message_id.unwrap();
    alice.observe(sent.position);
    alice.add_reaction(&channel, &message, "👍").await.unwrap();
    alice.pin_message(&channel, &message).await.unwrap();
    bob.edit_message(&channel, &message, &EditMessage { text: "hello alice".into(), mentions: vec![id("alice")] })
        .await
        .unwrap();
    let reply = alice
        .send_message(&channel, &SendMessage { parent_id: Some(message), ..SendMessage::text("a thread reply") })
        .await
        .unwrap();
    alice.add_member(&channel, &id("carol"), Some(Role::Moderator)).await.unwrap();
    alice
        .update_channel(&channel, &UpdateChannel { topic: Some("everything".into()), ..Default::default() })
        .await
        .unwrap();
    alice.remove_reaction(&channel, &message, "👍").await.unwrap();
    alice.unpin_message(&channel, &message).await.unwrap();
    alice.observe(reply.position);
    bob.observe(reply.position);
    bob.mark_read(&channel, &MarkRead::default()).await.unwrap();
    alice.change_role(&channel, &id("carol"), Role::Admin).await.unwrap();
    alice.delete_message(&channel, &reply.message_id.unwrap(), false).await.unwrap();
    alice.remove_member(&channel, &id("carol")).await.unwrap();
    let last = bob.leave_channel(&channel).await.unwrap();
    harness.server().archive_channel(&channel, &ArchiveChannel { reason: Some("done".into()) }).await.unwrap();

    let log = harness.log().await;
    let types: Vec<&str> = log.iter().map(|(_, _, envelope)| envelope.event_type().as_str()).collect();
    assert_eq!(
        types,
        [
            "channel.created",
            "message.sent",
            "reaction.added",
            "message.pinned",
            "message.edited",
            "message.sent",
            "member.added",
            "channel.updated",
            "reaction.removed",
            "message.unpinned",
            "read.marked",
            "member.role_changed",
            "message.deleted",
            "member.removed",
            "member.removed",
            "channel.archived",
        ]
    );
    let partitions: BTreeSet<i32> = log.iter().map(|(partition, _, _)| *partition).collect();
    assert_eq!(partitions.len(), 1, "one channel, one partition");
    assert!(log.iter().all(|(_, _, envelope)| envelope.app_id == harness.app.app_id && envelope.channel_id == channel));
    assert_eq!(log[0].2.actor_id, id::<UserId>("alice"));
    assert_eq!(log.last().unwrap().2.actor_id.as_str(), "_server");
    assert_eq!(log[14].1, last.position.offset);

    // The projector applied all of it (nothing went to the dead-letter topic).
    harness.wait_projected(log.len() as i64).await;
    let pool = &harness.database.pool;
    let (text, deleted): (String, bool) =
        sqlx::query_as("SELECT text, deleted_at IS NOT NULL FROM messages WHERE app_id = $1 AND message_id = $2")
            .bind(harness.app.app_id.as_str())
            .bind(message.as_uuid())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((text.as_str(), deleted), ("hello alice", false));
    let active: Vec<(String, String)> =
        sqlx::query_as("SELECT user_id, role FROM members WHERE app_id = $1 AND left_at IS NULL ORDER BY user_id")
            .bind(harness.app.app_id.as_str())
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(active, [("alice".to_owned(), "owner".to_owned())]);
    let (topic, archived): (Option<String>, bool) =
        sqlx::query_as("SELECT topic, archived_at IS NOT NULL FROM channels WHERE app_id = $1")
            .bind(harness.app.app_id.as_str())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((topic.as_deref(), archived), (Some("everything"), true));

    // The command metrics counted what was appended.
    let metrics = reqwest::get(harness.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|line| line.starts_with("chatsdk_command_events_appended_total{type=\"message.sent\"}")),
        "{metrics}"
    );
    assert!(metrics.contains("chatsdk_command_produce_duration_seconds_bucket"));
    harness.stop().await;
}

#[tokio::test]
async fn a_session_reads_its_own_writes_without_waiting_by_hand() {
    let harness = Harness::start().await;
    let alice = harness.user("alice");
    for round in 0..5 {
        let channel: ChannelId = id(&format!("room-{round}"));
        alice.create_channel(&group(channel.as_str(), &[])).await.unwrap();
        // Right after the create, before the projector necessarily applied it: min_position makes it wait.
        let sent = alice.send_message(&channel, &SendMessage::text("first")).await.unwrap();
        alice.add_reaction(&channel, &sent.message_id.unwrap(), "ok").await.unwrap();
    }
    // A command whose read-model answer is negative waits for its min_position; one that is never reached
    // gives a bounded 503, not a hang (a positive answer needs no wait).
    let lagging = Client::new(
        harness.url(""),
        Credentials::User { api_key: harness.app.api_key.clone(), token: harness.token("alice") },
    )
    .unwrap();
    lagging.observe(chatsdk_client::Position { partition: 0, offset: 1_000_000 });
    let started = std::time::Instant::now();
    let (status, code) = code(lagging.send_message(&id("room-not-yet"), &SendMessage::text("x")).await);
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "projection_behind"));
    assert!(started.elapsed() < Duration::from_secs(8), "bounded wait, took {:?}", started.elapsed());
    lagging.send_message(&id("room-0"), &SendMessage::text("authorized without waiting")).await.unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn a_retried_send_returns_the_same_message_and_appends_nothing() {
    let harness = Harness::start().await;
    let alice = harness.user("alice");
    let channel: ChannelId = id("retries");
    alice.create_channel(&group("retries", &["bob"])).await.unwrap();
    let request = SendMessage { client_msg_id: Some("msg-1".into()), ..SendMessage::text("once") };
    let first = alice.send_message(&channel, &request).await.unwrap();
    let again = alice.send_message(&channel, &request).await.unwrap();
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.position, first.position);
    assert!(again.duplicate && !first.duplicate);

    // Another node (a second command API) knows nothing of the first attempt: the read model answers.
    harness.wait_projected(2).await;
    let other_node = harness_second_node(&harness).await;
    let from_other = Client::new(
        other_node.url(""),
        Credentials::User { api_key: harness.app.api_key.clone(), token: harness.token("alice") },
    )
    .unwrap()
    .send_message(&channel, &request)
    .await
    .unwrap();
    assert_eq!(from_other.message_id, first.message_id);
    assert!(from_other.duplicate);
    // Another user's identical key is another message.
    let bob = harness.user("bob");
    bob.observe(first.position);
    let bobs = bob.send_message(&channel, &request).await.unwrap();
    assert_ne!(bobs.message_id, first.message_id);

    let sends = harness.log().await.into_iter().filter(|(_, _, e)| matches!(e.event, Event::MessageSent(_))).count();
    assert_eq!(sends, 2);
    other_node.stop().await.unwrap();
    harness.stop().await;
}

async fn harness_second_node(harness: &Harness) -> chatsdk_testkit::service::RunningService {
    let config = common::api_config(&harness.topic, &harness.group, &harness.database);
    chatsdk_testkit::service::RunningService::start::<command_api::Application>(config).await
}

#[tokio::test]
async fn concurrent_sends_with_half_retried_make_one_ordered_log_without_duplicates() {
    let harness = Harness::start_with(|config| config.limits.user_channel_burst = 1_000).await;
    let channel: ChannelId = id("busy");
    let created = harness.user("owner").create_channel(&group("busy", &[])).await.unwrap();
    let senders: Vec<Client> = (0..10)
        .map(|n| {
            let client = harness.server(); // separate HTTP clients: separate connections
            client.observe(created.position);
            let _ = n;
            client
        })
        .collect();
    let mut tasks = Vec::new();
    for n in 0..100 {
        let client = senders[n % senders.len()].clone();
        let channel = channel.clone();
        let request = SendMessage { client_msg_id: Some(format!("k{n}")), ..SendMessage::text(format!("message {n}")) };
        let attempts = if n % 2 == 0 { 2 } else { 1 };
        for _ in 0..attempts {
            let (client, channel, request) = (client.clone(), channel.clone(), request.clone());
            tasks.push(tokio::spawn(async move { (n, client.send_message(&channel, &request).await.unwrap()) }));
        }
    }
    let mut ids = std::collections::HashMap::new();
    for task in tasks {
        let (n, accepted) = task.await.unwrap();
        let previous = ids.insert(n, accepted.message_id.unwrap());
        assert!(previous.is_none_or(|previous| previous == accepted.message_id.unwrap()), "a retry got another id");
    }
    let log = harness.log().await;
    let sent: Vec<_> = log
        .iter()
        .filter_map(|(partition, offset, envelope)| match &envelope.event {
            Event::MessageSent(sent) => Some((*partition, *offset, sent.message_id)),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 100, "one event per message, retries appended nothing");
    assert_eq!(sent.iter().map(|(partition, _, _)| partition).collect::<HashSet<_>>().len(), 1);
    assert_eq!(sent.iter().map(|(_, _, id)| id).collect::<HashSet<_>>().len(), 100);
    assert_eq!(ids.values().collect::<HashSet<_>>(), sent.iter().map(|(_, _, id)| id).collect::<HashSet<_>>());

    // The read model holds the 100 in log order.
    harness.wait_projected(log.len() as i64).await;
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT message_id FROM messages WHERE app_id = $1 AND channel_id = 'busy' ORDER BY kafka_offset",
    )
    .bind(harness.app.app_id.as_str())
    .fetch_all(&harness.database.pool)
    .await
    .unwrap();
    assert_eq!(stored, sent.iter().map(|(_, _, id)| *id.as_uuid()).collect::<Vec<_>>());
    harness.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_appends_nothing() {
    let harness = Harness::start().await;
    let alice = harness.user("alice");
    let created = alice.create_channel(&group("strict", &[])).await.unwrap();
    harness.wait_projected(1).await;
    let http = reqwest::Client::new();
    let token = harness.token("alice");
    let post = |path: &str, body: Vec<u8>| {
        http.post(harness.url(path))
            .header("x-api-key", &harness.app.api_key)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let long_text = "é".repeat(10_001);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("/v1/channels/strict/messages", b"{\"text\": \"unterminated".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("/v1/channels/strict/messages", b"{\"text\": \"hi\", \"colour\": 1}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/v1/channels/strict/messages", b"{\"text\": 42}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/v1/channels/strict/messages", json!({"text": long_text}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "text_too_long"),
        ("/v1/channels/strict/messages", json!({"text": "x".repeat(70_000)}).to_string().into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        ("/v1/channels/strict/messages", json!({"text": "  "}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "empty_message"),
        ("/v1/channels/strict/messages", json!({"text": "hi", "mentions": ["bad id!"]}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/v1/channels/strict/messages", json!({"text": "hi", "client_msg_id": "has space"}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_client_msg_id"),
        ("/v1/channels/strict/messages", json!({"text": "hi", "parent_id": "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61"}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_parent"),
        ("/v1/channels/strict/messages", json!({"text": "hi", "attachments": (0..11).map(|n| json!({"upload_id": uuid::Uuid::new_v4(), "object_key": format!("{}/strict/{n}/f", harness.app.app_id), "name": "f", "content_type": "image/png", "size": 1})).collect::<Vec<_>>()}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "too_many_attachments"),
        ("/v1/channels/strict/messages", json!({"text": "hi", "attachments": [{"upload_id": uuid::Uuid::new_v4(), "object_key": "otherapp/strict/x/f", "name": "f", "content_type": "image/png", "size": 1}]}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_attachment"),
        ("/v1/channels/bad:id/messages", json!({"text": "hi"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "invalid_id"),
        ("/v1/channels/strict/messages?min_position=garbage", json!({"text": "hi"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "invalid_position"),
        ("/v1/channels", json!({"type": "secret"}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/v1/channels", json!({"type": "group", "channel_id": "x".repeat(129)}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/v1/channels", json!({"type": "group", "channel_id": "strict"}).to_string().into_bytes(), StatusCode::CONFLICT, "channel_exists"),
        ("/v1/channels", json!({"type": "dm", "members": [{"user_id": "alice"}]}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "duplicate_member"),
        ("/v1/channels", json!({"type": "dm", "members": []}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "dm_needs_two_members"),
        ("/v1/channels", json!({"type": "group", "members": [{"user_id": "_server"}]}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "reserved_id"),
        ("/v1/channels/strict/messages/0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61/reactions", json!({"emoji": "two words"}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_emoji"),
        ("/v1/channels/strict/messages/not-a-uuid/reactions", json!({"emoji": "ok"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "invalid_id"),
        ("/v1/channels/strict/read", json!({"up_to_offset": 99_999_999}).to_string().into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "position_ahead"),
    ];
    for (path, body, status, expected_code) in cases {
        let response = post(path, body).await.unwrap();
        assert_eq!(response.status(), status, "{path} → {expected_code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], expected_code, "{path}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
    }
    let log = harness.log().await;
    assert_eq!(log.len(), 1, "only the channel's creation was appended");
    assert_eq!(log[0].1, created.position.offset);
    harness.stop().await;
}

#[tokio::test]
async fn credentials_roles_and_tenancy_are_enforced() {
    let harness = Harness::start().await;
    let alice = harness.user("alice");
    let channel: ChannelId = id("private");
    let created = alice.create_channel(&group("private", &["bob"])).await.unwrap();
    harness.wait_projected(created.position.offset + 1).await;
    let sends = |client: &Client| {
        let client = client.clone();
        let channel = channel.clone();
        async move { client.send_message(&channel, &SendMessage::text("hi")).await }
    };
    let with_token = |token: String| {
        Client::new(harness.url(""), Credentials::User { api_key: harness.app.api_key.clone(), token }).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let expired = chatsdk_client::token::mint(
        &harness.app.api_secret,
        &chatsdk_client::token::Claims::new(&id("alice"), now - 3600, 60),
    );
    let forged =
        chatsdk_client::token::mint("not-the-secret", &chatsdk_client::token::Claims::new(&id("alice"), now, 60));
    let read_only = chatsdk_client::token::mint(
        &harness.app.api_secret,
        &chatsdk_client::token::Claims::new(&id("alice"), now, 60).with_scope("chat:read"),
    );
    let unknown_key = Client::new(
        harness.url(""),
        Credentials::User { api_key: "key_unknown".into(), token: harness.token("alice") },
    )
    .unwrap();
    let wrong_secret = Client::new(
        harness.url(""),
        Credentials::Server { api_key: harness.app.api_key.clone(), api_secret: "guess".into() },
    )
    .unwrap();
    for (client, what) in [
        (with_token(expired), "expired"),
        (with_token(forged), "forged"),
        (with_token("not.a.jwt".into()), "garbage"),
        (unknown_key, "unknown key"),
        (wrong_secret, "wrong server secret"),
    ] {
        assert_eq!(code(sends(&client).await), (StatusCode::UNAUTHORIZED, "unauthenticated".to_owned()), "{what}");
    }
    let anonymous = reqwest::Client::new()
        .post(harness.url("/v1/channels/private/messages"))
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(sends(&with_token(read_only)).await), (StatusCode::FORBIDDEN, "missing_scope".to_owned()));

    // Roles: a stranger, a member acting above their role, an unknown channel.
    assert_eq!(code(sends(&harness.user("mallory")).await), (StatusCode::FORBIDDEN, "not_a_member".to_owned()));
    let bob = harness.user("bob");
    assert_eq!(
        code(bob.add_member(&channel, &id("eve"), None).await),
        (StatusCode::FORBIDDEN, "insufficient_role".to_owned())
    );
    assert_eq!(
        code(bob.remove_member(&channel, &id("alice")).await),
        (StatusCode::FORBIDDEN, "insufficient_role".to_owned())
    );
    assert_eq!(
        code(bob.update_channel(&channel, &UpdateChannel { name: Some("mine".into()), ..Default::default() }).await),
        (StatusCode::FORBIDDEN, "insufficient_role".to_owned())
    );
    let sent = alice.send_message(&channel, &SendMessage::text("alice's")).await.unwrap();
    bob.observe(sent.position);
    let message = sent.message_id.unwrap();
    assert_eq!(
        code(bob.edit_message(&channel, &message, &EditMessage { text: "bob's now".into(), mentions: vec![] }).await),
        (StatusCode::FORBIDDEN, "not_the_author".to_owned())
    );
    assert_eq!(
        code(bob.delete_message(&channel, &message, false).await),
        (StatusCode::FORBIDDEN, "insufficient_role".to_owned())
    );
    assert_eq!(
        code(alice.send_message(&id("nowhere"), &SendMessage::text("hi")).await),
        (StatusCode::NOT_FOUND, "channel_not_found".to_owned())
    );

    // Another app with a channel of the same name: its users cannot see or touch this app's channel, and
    // this app's users cannot touch theirs.
    let other_app = command_api::apps::create_app(&harness.database.pool, &id("otherapp")).await.unwrap();
    let other_alice = Client::new(
        harness.url(""),
        Credentials::User {
            api_key: other_app.api_key.clone(),
            token: chatsdk_client::token::mint(
                &other_app.api_secret,
                &chatsdk_client::token::Claims::new(&id("alice"), now, 600),
            ),
        },
    )
    .unwrap();
    assert_eq!(code(sends(&other_alice).await), (StatusCode::NOT_FOUND, "channel_not_found".to_owned()));
    // Alice's token of app A presented with app B's key fails its signature.
    let mixed = Client::new(
        harness.url(""),
        Credentials::User { api_key: other_app.api_key.clone(), token: harness.token("alice") },
    )
    .unwrap();
    assert_eq!(code(sends(&mixed).await).0, StatusCode::UNAUTHORIZED);

    // A moderator may delete others' messages; only admins purge.
    alice.change_role(&channel, &id("bob"), Role::Moderator).await.unwrap();
    let promoted = harness.log().await.last().unwrap().1;
    bob.observe(chatsdk_client::Position { partition: sent.position.partition, offset: promoted });
    assert_eq!(
        code(bob.delete_message(&channel, &message, true).await),
        (StatusCode::FORBIDDEN, "insufficient_role".to_owned())
    );
    bob.delete_message(&channel, &message, false).await.unwrap();
    let log = harness.log().await;
    assert!(log.iter().all(|(_, _, envelope)| envelope.app_id == harness.app.app_id));
    assert_eq!(log.len(), 4, "create, send, role change, delete: nothing else got through");
    harness.stop().await;
}

#[tokio::test]
async fn a_dm_between_two_users_is_always_the_same_channel() {
    let harness = Harness::start().await;
    let dm = |other: &str| CreateChannel {
        members: vec![NewMember { user_id: id(other), role: None }],
        ..CreateChannel::new(ChannelType::Dm)
    };
    let alice = harness.user("alice");
    let first = alice.create_channel(&dm("bob")).await.unwrap();
    let bob = harness.user("bob");
    bob.observe(first.position);
    let second = bob.create_channel(&dm("alice")).await.unwrap();
    assert_eq!(second.channel_id, first.channel_id);
    assert!(second.duplicate && !first.duplicate);
    bob.send_message(&first.channel_id, &SendMessage::text("hi")).await.unwrap();
    assert_eq!(
        code(alice.add_member(&first.channel_id, &id("carol"), None).await),
        (StatusCode::FORBIDDEN, "dm_members_fixed".to_owned())
    );
    let created = harness.log().await.iter().filter(|(_, _, e)| matches!(e.event, Event::ChannelCreated(_))).count();
    assert_eq!(created, 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_user_gets_429_with_retry_after() {
    let harness = Harness::start_with(|config| {
        config.limits.user_channel_burst = 3;
        config.limits.user_channel_rate = 0.5;
    })
    .await;
    let alice = harness.user("alice");
    let channel: ChannelId = id("limited");
    alice.create_channel(&group("limited", &[])).await.unwrap();
    let mut refused = None;
    for _ in 0..5 {
        if let Err(error) = alice.send_message(&channel, &SendMessage::text("spam")).await {
            refused = Some(error);
            break;
        }
    }
    let Some(ClientError::Api { status, code: refusal, retry_after, .. }) = refused else {
        panic!("never limited: {refused:?}")
    };
    assert_eq!((status, refusal.as_str()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(retry_after.is_some_and(|wait| wait >= Duration::from_secs(1)), "{retry_after:?}");
    // Another user in the same channel has a bucket of their own... once they are a member.
    assert_eq!(code(harness.user("bob").send_message(&channel, &SendMessage::text("hi")).await).1, "not_a_member");
    harness.stop().await;
}

#[tokio::test]
async fn apps_are_created_through_the_admin_endpoint_only_with_the_admin_token() {
    let harness = Harness::start().await;
    let credentials = chatsdk_client::create_app(&harness.url(""), common::ADMIN_TOKEN, &id("newapp")).await.unwrap();
    assert_eq!(credentials.app_id.as_str(), "newapp");
    assert!(credentials.api_secret.len() >= 64 && credentials.api_key != credentials.api_secret);
    let again = chatsdk_client::create_app(&harness.url(""), common::ADMIN_TOKEN, &id("newapp")).await;
    assert_eq!(code(again), (StatusCode::CONFLICT, "app_exists".to_owned()));
    let wrong = chatsdk_client::create_app(&harness.url(""), "guess", &id("another")).await;
    assert_eq!(code(wrong).0, StatusCode::UNAUTHORIZED);
    // The new app works at once: its backend creates a channel.
    let backend = Client::new(
        harness.url(""),
        Credentials::Server { api_key: credentials.api_key, api_secret: credentials.api_secret },
    )
    .unwrap();
    let created = backend.create_channel(&group("lobby", &["alice"])).await.unwrap();
    assert_eq!(created.channel_id.as_str(), "lobby");
    harness.stop().await;
}

#[tokio::test]
async fn kafka_unreachable_gives_a_fast_503_and_the_service_recovers_by_itself() {
    let stack = chatsdk_testkit::Stack::from_env();
    // The broker's fault listener advertises the proxy's address: every connection goes through the proxy.
    let proxy = chatsdk_testkit::fault::FaultProxy::start_on(stack.kafka_fault.proxy, stack.kafka_fault.listener).await;
    let brokers = stack.kafka_fault.proxy.to_string();
    let harness = Harness::start_with(|config| config.kafka.brokers = brokers).await;
    let alice = harness.user("alice");
    let channel: ChannelId = id("outage");
    alice.create_channel(&group("outage", &[])).await.unwrap();
    alice.send_message(&channel, &SendMessage::text("before")).await.unwrap();

    proxy.cut();
    let during = SendMessage { client_msg_id: Some("during".into()), ..SendMessage::text("during the outage") };
    let started = std::time::Instant::now();
    let outcome = alice.send_message(&channel, &during).await;
    let took = started.elapsed();
    let (status, error_code) = code(outcome);
    assert_eq!((status, error_code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "kafka_unavailable"));
    // The configured bound is 1.5 s (librdkafka's message timeout) + 0.25 s; the slack is for a busy machine.
    assert!(took < Duration::from_secs(4), "503 took {took:?}");
    eprintln!("kafka down: 503 after {took:?}");

    proxy.restore();
    let after = SendMessage { client_msg_id: Some("after".into()), ..SendMessage::text("after the outage") };
    let accepted =
        chatsdk_testkit::wait_for("a send accepted once the broker is back", Duration::from_secs(60), || {
            let (alice, channel, after) = (alice.clone(), channel.clone(), after.clone());
            async move { alice.send_message(&channel, &after).await.ok() }
        })
        .await;
    assert!(accepted.message_id.is_some());
    let texts: Vec<String> = harness
        .log()
        .await
        .into_iter()
        .filter_map(|(_, _, envelope)| match envelope.event {
            Event::MessageSent(sent) => Some(sent.text),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["before", "after the outage"], "the refused send left nothing behind");
    harness.stop().await;
}

#[tokio::test]
async fn the_admin_cli_creates_an_app_and_mints_a_working_token() {
    let harness = Harness::start().await;
    let binary = env!("CARGO_BIN_EXE_command-api");
    let run = |arguments: &[&str]| {
        let output = std::process::Command::new(binary)
            .args(arguments)
            .env("CHATSDK_POSTGRES__URL", &harness.database.url)
            .output()
            .unwrap();
        assert!(output.status.success(), "{arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let created: Value = serde_json::from_str(&run(&["admin", "create-app", "cliapp"])).unwrap();
    assert_eq!(created["app_id"], "cliapp");
    let token = run(&["admin", "token", "--app", "cliapp", "--user", "dora", "--ttl-secs", "600"]);
    let dora = Client::new(
        harness.url(""),
        Credentials::User { api_key: created["api_key"].as_str().unwrap().to_owned(), token: token.trim().to_owned() },
    )
    .unwrap();
    let accepted = dora.create_channel(&group("cli-made", &[])).await.unwrap();
    assert_eq!(accepted.channel_id.as_str(), "cli-made");
    let log = harness.log().await;
    assert_eq!(log.last().unwrap().2.actor_id.as_str(), "dora");
    harness.stop().await;
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes_and_the_client_types() {
    let harness = Harness::start().await;
    let document = harness.server().openapi().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");

    // Every documented operation is a real route: an anonymous call is refused by authentication (or served),
    // never the unknown-route 404 or a 405.
    let http = reqwest::Client::new();
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            // The document covers both APIs; the query API's test checks its own operations.
            assert!(operation["x-service"].is_string(), "{method} {path} names no x-service");
            if operation["x-service"] != "command-api" {
                continue;
            }
            operations.insert(format!("{} {path}", method.to_uppercase()));
            let concrete = path
                .replace("{channel_id}", "c1")
                .replace("{message_id}", "0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61")
                .replace("{user_id}", "u1")
                .replace("{emoji}", "ok");
            let response = http
                .request(method.to_uppercase().parse().unwrap(), harness.url(&concrete))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && body["error"]["code"] != "not_found",
                "{method} {path} is documented but not served ({status} {body})"
            );
        }
    }
    // …and every operation the client calls is documented.
    for operation in [
        "POST /v1/admin/apps",
        "POST /v1/channels",
        "PATCH /v1/channels/{channel_id}",
        "POST /v1/channels/{channel_id}/archive",
        "POST /v1/channels/{channel_id}/leave",
        "POST /v1/channels/{channel_id}/read",
        "POST /v1/channels/{channel_id}/members",
        "PATCH /v1/channels/{channel_id}/members/{user_id}",
        "DELETE /v1/channels/{channel_id}/members/{user_id}",
        "POST /v1/channels/{channel_id}/messages",
        "PATCH /v1/channels/{channel_id}/messages/{message_id}",
        "DELETE /v1/channels/{channel_id}/messages/{message_id}",
        "POST /v1/channels/{channel_id}/messages/{message_id}/reactions",
        "DELETE /v1/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
        "POST /v1/channels/{channel_id}/messages/{message_id}/pin",
        "DELETE /v1/channels/{channel_id}/messages/{message_id}/pin",
        "POST /v1/uploads",
        "POST /v1/uploads/{upload_id}/complete",
        "DELETE /v1/uploads/{upload_id}",
        "GET /v1/openapi.json",
    ] {
        assert!(operations.remove(operation), "{operation} is not documented");
    }
    assert!(operations.is_empty(), "documented but unknown to the client: {operations:?}");

    // The client's request bodies, with every optional field set, are valid per the document…
    let attachment = json!({
        "upload_id": uuid::Uuid::new_v4(), "object_key": "acme/c1/u/photo.png", "name": "photo.png",
        "content_type": "image/png", "size": 1234
    });
    let attachment: chatsdk_schemas::events::Attachment = serde_json::from_value(attachment).unwrap();
    let bodies: Vec<(&str, Value)> = vec![
        ("CreateApp", serde_json::to_value(chatsdk_client::api::CreateApp { app_id: id("acme") }).unwrap()),
        (
            "CreateChannel",
            serde_json::to_value(CreateChannel {
                channel_id: Some(id("c1")),
                name: Some("General".into()),
                topic: Some("Anything".into()),
                custom: Some(serde_json::Map::from_iter([("colour".to_owned(), json!("blue"))])),
                members: vec![NewMember { user_id: id("bob"), role: Some(Role::Moderator) }],
                ..CreateChannel::new(ChannelType::Public)
            })
            .unwrap(),
        ),
        (
            "UpdateChannel",
            serde_json::to_value(UpdateChannel { name: Some("n".into()), ..Default::default() }).unwrap(),
        ),
        ("ArchiveChannel", serde_json::to_value(ArchiveChannel { reason: Some("spam".into()) }).unwrap()),
        (
            "AddMember",
            serde_json::to_value(chatsdk_client::api::AddMember { user_id: id("u"), role: Some(Role::Admin) }).unwrap(),
        ),
        ("ChangeRole", serde_json::to_value(chatsdk_client::api::ChangeRole { role: Role::Member }).unwrap()),
        (
            "SendMessage",
            serde_json::to_value(SendMessage {
                text: "hello".into(),
                mentions: vec![id("bob")],
                attachments: vec![attachment],
                parent_id: Some(id("0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61")),
                client_msg_id: Some("k-1".into()),
                custom: Some(serde_json::Map::new()),
            })
            .unwrap(),
        ),
        ("EditMessage", serde_json::to_value(EditMessage { text: "t".into(), mentions: vec![id("bob")] }).unwrap()),
        (
            "CreateUpload",
            serde_json::to_value(chatsdk_client::api::CreateUpload {
                channel_id: id("c1"),
                name: "photo.png".into(),
                size: 1234,
                content_type: "image/png".into(),
            })
            .unwrap(),
        ),
        (
            "CompleteUpload",
            serde_json::to_value(chatsdk_client::api::CompleteUpload {
                channel_id: id("c1"),
                parts: vec![chatsdk_client::api::CompletedPart { part_number: 1, etag: "\"e\"".into() }],
                text: "t".into(),
                parent_id: Some(id("0190f3a2-7c1e-7d3b-9a55-1b2c3d4e5f61")),
                client_msg_id: Some("k-1".into()),
            })
            .unwrap(),
        ),
        ("AddReaction", serde_json::to_value(chatsdk_client::api::AddReaction { emoji: "👍".into() }).unwrap()),
        ("MarkRead", serde_json::to_value(MarkRead { up_to_offset: Some(7) }).unwrap()),
    ];
    for (name, body) in &bodies {
        assert_valid(&document, name, body);
        // …and a field the server would refuse (unknown) is refused by the document too.
        let mut with_unknown = body.clone();
        with_unknown["unknown_field"] = json!(1);
        assert!(!component(&document, name).is_valid(&with_unknown), "{name} accepts an unknown field");
    }

    // Live responses match their schemas: an accepted command, an error, new app credentials.
    let alice = harness.user("alice");
    let created = alice.create_channel(&group("documented", &[])).await.unwrap();
    assert_valid(&document, "Accepted", &serde_json::to_value(&created).unwrap());
    let raw: Value = http
        .post(harness.url(&format!("/v1/channels/documented/messages?min_position={}", created.position_token)))
        .header("x-api-key", &harness.app.api_key)
        .bearer_auth(harness.token("alice"))
        .json(&json!({ "text": "documented", "client_msg_id": "doc-1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid(&document, "Accepted", &raw);
    let refused: Value = http
        .post(harness.url("/v1/channels/documented/messages"))
        .header("x-api-key", &harness.app.api_key)
        .bearer_auth(harness.token("alice"))
        .json(&json!({ "txt": "typo" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid(&document, "Error", &refused);
    let credentials =
        chatsdk_client::create_app(&harness.url(""), common::ADMIN_TOKEN, &id("documented")).await.unwrap();
    assert_valid(&document, "AppCredentials", &serde_json::to_value(&credentials).unwrap());
    harness.stop().await;
}

#[tokio::test]
async fn roles_dms_and_public_channels_follow_the_rules() {
    let harness = Harness::start().await;
    let alice = harness.user("alice");
    let channel: ChannelId = id("ranks");
    alice.create_channel(&group("ranks", &["bob"])).await.unwrap();
    let added = alice.add_member(&channel, &id("carol"), Some(Role::Admin)).await.unwrap();
    let carol = harness.user("carol");
    carol.observe(added.position);
    // An admin grants up to moderator, never owner, and cannot touch the owner.
    assert_eq!(code(carol.add_member(&channel, &id("dave"), Some(Role::Owner)).await).1, "insufficient_role");
    assert_eq!(code(carol.change_role(&channel, &id("alice"), Role::Member).await).1, "insufficient_role");
    assert_eq!(code(carol.change_role(&channel, &id("bob"), Role::Admin).await).1, "insufficient_role");
    carol.change_role(&channel, &id("bob"), Role::Moderator).await.unwrap();
    assert_eq!(code(carol.change_role(&channel, &id("carol"), Role::Member).await).1, "cannot_change_own_role");
    // Admins purge; a second purge is refused.
    let sent = alice.send_message(&channel, &SendMessage::text("to be purged")).await.unwrap();
    carol.observe(sent.position);
    carol.delete_message(&channel, &sent.message_id.unwrap(), true).await.unwrap();
    assert_eq!(code(carol.delete_message(&channel, &sent.message_id.unwrap(), true).await).1, "message_deleted");
    // The backend cannot react or mark read: those are a user's acts.
    let other = alice.send_message(&channel, &SendMessage::text("react to me")).await.unwrap();
    let server = harness.server();
    server.observe(other.position);
    assert_eq!(code(server.add_reaction(&channel, &other.message_id.unwrap(), "ok").await).1, "user_required");
    // Leaving a channel one is not in.
    let stranger = harness.user("stranger");
    stranger.observe(other.position);
    assert_eq!(code(stranger.leave_channel(&channel).await).1, "not_a_member");

    // Public channels: anyone joins as a member, not as more.
    let lobby: ChannelId = id("lobby");
    let opened = alice
        .create_channel(&CreateChannel { channel_id: Some(lobby.clone()), ..CreateChannel::new(ChannelType::Public) })
        .await
        .unwrap();
    let eve = harness.user("eve");
    eve.observe(opened.position);
    assert_eq!(code(eve.add_member(&lobby, &id("eve"), Some(Role::Admin)).await).1, "insufficient_role");
    eve.add_member(&lobby, &id("eve"), None).await.unwrap();
    eve.send_message(&lobby, &SendMessage::text("hello lobby")).await.unwrap();
    assert_eq!(code(eve.add_member(&channel, &id("eve"), None).await).1, "not_a_member", "a group is not public");

    // DM ids cannot be squatted, and a DM's members stay.
    let dm = alice
        .create_channel(&CreateChannel {
            members: vec![NewMember { user_id: id("bob"), role: None }],
            ..CreateChannel::new(ChannelType::Dm)
        })
        .await
        .unwrap();
    let squat = CreateChannel { channel_id: Some(dm.channel_id.clone()), ..CreateChannel::new(ChannelType::Group) };
    assert_eq!(code(harness.user("mallory").create_channel(&squat).await).1, "reserved_id");
    assert_eq!(code(alice.leave_channel(&dm.channel_id).await).1, "dm_members_fixed");
    assert_eq!(code(server.remove_member(&dm.channel_id, &id("bob")).await).1, "dm_members_fixed");
    harness.stop().await;
}
