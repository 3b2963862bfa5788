//! The WebSocket against the real stack: resuming on another node, membership changes on open sockets,
//! tokens older than a node's buffer, typing.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chatsdk_client::views::ServerFrame;
use chatsdk_schemas::ids::MessageId;
use common::{Harness, Socket, follow, group, id, send};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is watched, after a later event proved the node dispatched.
const QUIET: Duration = Duration::from_millis(500);

async fn connected(socket: &mut Socket) -> String {
    match socket.next(WAIT).await {
        ServerFrame::Connected { token, .. } => token,
        other => panic!("expected connected, got {other:?}"),
    }
}

/// Reads events until `count` `message.sent` arrived; returns their ids in order, the other events' types
/// and the last token.
async fn messages(socket: &mut Socket, count: usize) -> (Vec<MessageId>, Vec<String>, String) {
    let (mut ids, mut others, mut last) = (Vec::new(), Vec::new(), String::new());
    while ids.len() < count {
        let (_, event, token) = socket.next_event(WAIT).await;
        last = token;
        match event["type"].as_str().unwrap() {
            "message.sent" => ids.push(id(event["payload"]["message_id"].as_str().unwrap())),
            other => others.push(other.to_owned()),
        }
    }
    (ids, others, last)
}

#[tokio::test]
async fn a_client_resumes_on_another_node_with_exactly_the_missed_events() {
    let harness = Harness::start(2).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &["bob"]).await;
    harness.commands.wait_projected(1).await;

    let mut on_a = harness.connect(0, "bob", None).await;
    connected(&mut on_a).await;
    let mut first = Vec::new();
    for n in 0..5 {
        first.push(send(&alice, &channel, &format!("live {n}")).await);
    }
    let (received, _, token) = messages(&mut on_a, 5).await;
    assert_eq!(received, first);
    on_a.close().await;

    // Offline: more messages (the log has other channels' traffic too).
    let noise = group(&alice, &[]).await;
    let mut missed = Vec::new();
    for n in 0..5 {
        missed.push(send(&alice, &channel, &format!("missed {n}")).await);
        send(&alice, &noise, &format!("noise {n}")).await;
    }
    let mut on_b = harness.connect(1, "bob", Some(&token)).await;
    connected(&mut on_b).await;
    let (replayed, others, _) = messages(&mut on_b, 5).await;
    assert_eq!(replayed, missed, "exactly the missed messages, in order");
    assert!(others.is_empty(), "no other event of bob's channels happened: {others:?}");
    let later = send(&alice, &channel, "after the reconnect").await;
    let (live, _, _) = messages(&mut on_b, 1).await;
    assert_eq!(live, vec![later]);
    assert!(on_b.maybe_next(QUIET).await.is_none(), "nothing twice");
    harness.stop().await;
}

#[tokio::test]
async fn membership_changes_take_effect_on_open_sockets() {
    let harness = Harness::start(1).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &[]).await;
    harness.commands.wait_projected(1).await;
    let mut watcher = harness.connect(0, "alice", None).await;
    connected(&mut watcher).await;
    let mut carol = harness.connect(0, "carol", None).await;
    connected(&mut carol).await;

    let before = send(&alice, &channel, "before carol").await;
    alice.add_member(&channel, &id("carol"), None).await.unwrap();
    let during = send(&alice, &channel, "while carol is a member").await;
    alice.remove_member(&channel, &id("carol")).await.unwrap();
    let after = send(&alice, &channel, "after carol").await;
    // Alice's socket on the same node has the last message: the node dispatched everything.
    let (seen, _, _) = messages(&mut watcher, 3).await;
    assert_eq!(seen, vec![before, during, after]);

    let mut types = Vec::new();
    while let Some(frame) = carol.maybe_next(QUIET).await {
        if let ServerFrame::Event { event, .. } = frame {
            let text = event["payload"]["text"].as_str().map(str::to_owned);
            types.push((event["type"].as_str().unwrap().to_owned(), text));
        }
    }
    assert_eq!(
        types,
        vec![
            ("member.added".to_owned(), None),
            ("message.sent".to_owned(), Some("while carol is a member".to_owned())),
            ("member.removed".to_owned(), None),
        ]
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_token_older_than_the_buffer_gets_resync_and_sync_fills_the_gap() {
    let harness = Harness::start_with(1, |config| config.realtime.buffer_per_partition = 3).await;
    let alice = harness.user("alice", 0);
    let bob = harness.user("bob", 0);
    let channel = group(&alice, &["bob"]).await;
    follow(&bob, &alice);
    let old = bob.sync(None, None).await.unwrap().next_token;
    let mut watcher = harness.connect(0, "alice", None).await;
    connected(&mut watcher).await;
    let mut sent = Vec::new();
    for n in 0..8 {
        sent.push(send(&alice, &channel, &format!("m{n}")).await);
    }
    messages(&mut watcher, 8).await;
    // A read model behind the node's (tiny) buffer would refuse the connection for another reason.
    harness.commands.wait_projected(9).await;

    let mut late = harness.connect(0, "bob", Some(&old)).await;
    match late.next(WAIT).await {
        ServerFrame::Resync { reason, token } => {
            assert_eq!(reason, "token_too_old");
            follow(&bob, &alice);
            let page = bob.sync(Some(&token), None).await.unwrap();
            let synced: Vec<MessageId> = page
                .events
                .iter()
                .filter(|logged| logged.event["type"] == "message.sent")
                .map(|logged| id(logged.event["payload"]["message_id"].as_str().unwrap()))
                .collect();
            assert_eq!(synced, sent);
        }
        other => panic!("expected resync, got {other:?}"),
    }
    harness.stop().await;
}

#[tokio::test]
async fn typing_reaches_the_other_members_only() {
    let harness = Harness::start(1).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &["bob"]).await;
    harness.commands.wait_projected(1).await;
    let mut bob = harness.connect(0, "bob", None).await;
    connected(&mut bob).await;
    let mut carol = harness.connect(0, "carol", None).await;
    connected(&mut carol).await;
    let mut alice_socket = harness.connect(0, "alice", None).await;
    connected(&mut alice_socket).await;

    // Over HTTP, then over the socket.
    let status = reqwest::Client::new()
        .post(harness.nodes[0].url(&format!("/v1/channels/{channel}/typing")))
        .header("x-api-key", &harness.commands.app.api_key)
        .bearer_auth(harness.commands.token("alice"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let typing = ephemeral(&mut bob, "typing.start").await;
    assert_eq!((typing["type"].as_str(), typing["user_id"].as_str()), (Some("typing.start"), Some("alice")));
    assert_eq!(typing["channel_id"], Value::String(channel.to_string()));

    bob.send_json(json!({"type": "typing_stop", "channel_id": channel})).await;
    let stop = ephemeral(&mut alice_socket, "typing.stop").await;
    assert_eq!((stop["type"].as_str(), stop["user_id"].as_str()), (Some("typing.stop"), Some("bob")));
    carol.send_json(json!({"type": "typing_start", "channel_id": channel})).await;
    match carol.next(WAIT).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, "not_a_member"),
        other => panic!("expected an error frame, got {other:?}"),
    }
    carol.send_json(json!({"type": "ping"})).await;
    loop {
        match carol.next(WAIT).await {
            ServerFrame::Pong => break,
            ServerFrame::Ephemeral { event } => {
                assert_ne!(event["type"], "typing.start", "carol saw typing of a channel she is not in");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    harness.stop().await;
}

/// The next ephemeral event of type `kind` (others, e.g. presence while waiting for typing, are skipped).
async fn ephemeral(socket: &mut Socket, kind: &str) -> Value {
    loop {
        if let ServerFrame::Ephemeral { event } = socket.next(WAIT).await
            && event["type"] == kind
        {
            return event;
        }
    }
}

/// A raw client that completes the handshake and then never answers: the server pings it, and closes it
/// once it has heard nothing for the idle timeout.
#[tokio::test]
async fn a_silent_client_is_pinged_then_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let harness = Harness::start_with(1, |config| {
        config.realtime.ping_interval_ms = 100;
        config.realtime.idle_timeout_ms = 400;
    })
    .await;
    let node = harness.nodes[0].address;
    let mut stream = tokio::net::TcpStream::connect(node).await.unwrap();
    let request = format!(
        "GET /v1/ws?api_key={}&auth={} HTTP/1.1\r\nHost: {node}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        harness.commands.app.api_key,
        harness.commands.token("bob")
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut opcodes = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buffer = [0u8; 4096];
    // Frames after the response headers: byte 0 holds the opcode, byte 1 the (unmasked) length.
    let mut parsed = None;
    while !opcodes.contains(&0x8) {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await.expect("closed in time").unwrap();
        assert!(read > 0, "the server closed the TCP connection without a close frame; opcodes {opcodes:?}");
        received.extend_from_slice(&buffer[..read]);
        if parsed.is_none() {
            let text = String::from_utf8_lossy(&received).into_owned();
            let Some(end) = text.find("\r\n\r\n") else { continue };
            assert!(text.starts_with("HTTP/1.1 101"), "{text}");
            parsed = Some(end + 4);
        }
        let mut at = parsed.unwrap();
        while received.len() >= at + 2 {
            let length = usize::from(received[at + 1] & 0x7f);
            let (header, length) = match length {
                126 if received.len() >= at + 4 => {
                    (4, usize::from(u16::from_be_bytes([received[at + 2], received[at + 3]])))
                }
                126 => break,
                127 => panic!("no frame here is that large"),
                length => (2, length),
            };
            if received.len() < at + header + length {
                break;
            }
            opcodes.push(received[at] & 0x0f);
            at += header + length;
        }
        parsed = Some(at);
    }
    assert_eq!(opcodes.first(), Some(&0x1), "the connected frame first: {opcodes:?}");
    assert!(opcodes.contains(&0x9), "pinged before being closed: {opcodes:?}");
    harness.stop().await;
}

#[tokio::test]
async fn presence_reaches_the_members_of_a_users_channels_across_nodes() {
    let harness = Harness::start(2).await;
    let alice = harness.user("alice", 0);
    let channel = group(&alice, &["bob"]).await;
    harness.commands.wait_projected(1).await;
    let mut bob = harness.connect(0, "bob", None).await;
    connected(&mut bob).await;
    let mut carol = harness.connect(0, "carol", None).await;
    connected(&mut carol).await;

    let mut on_b = harness.connect(1, "alice", None).await;
    connected(&mut on_b).await;
    let online = ephemeral(&mut bob, "presence.changed").await;
    assert_eq!((online["type"].as_str(), online["user_id"].as_str()), (Some("presence.changed"), Some("alice")));
    assert_eq!(online["online"], Value::Bool(true));
    let reader = harness.user("bob", 0);
    let members = reader.members(&channel, &[]).await.unwrap();
    let alice_listed = members.members.iter().find(|member| member.user_id.as_str() == "alice").unwrap();
    assert!(alice_listed.online, "node A knows alice is on node B");

    on_b.close().await;
    let offline = ephemeral(&mut bob, "presence.changed").await;
    assert_eq!((offline["user_id"].as_str(), offline["online"].as_bool()), (Some("alice"), Some(false)));
    let members = reader.members(&channel, &[]).await.unwrap();
    assert!(!members.members.iter().any(|member| member.user_id.as_str() == "alice" && member.online));
    // Carol shares no channel with alice: nothing reached her (a ping answered proves the socket is live).
    carol.send_json(json!({"type": "ping"})).await;
    assert_eq!(carol.next(WAIT).await, ServerFrame::Pong);
    harness.stop().await;
}
