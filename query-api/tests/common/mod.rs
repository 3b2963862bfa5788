//! The command-api + projector harness of command-api's tests, plus query-api nodes on the same topic,
//! database and projector, and a WebSocket client.

#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../command-api/tests/common/mod.rs"]
mod commands;

use std::time::Duration;

use chatsdk_client::api::{CreateChannel, NewMember, SendMessage};
use chatsdk_client::views::ServerFrame;
use chatsdk_client::{Client, Credentials};
use chatsdk_platform::config::Secret;
use chatsdk_schemas::events::ChannelType;
use chatsdk_schemas::ids::{ChannelId, MessageId};
use chatsdk_testkit::service::RunningService;
use chatsdk_testkit::service::get_json;
use chatsdk_testkit::{create_topic, wait_for};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[allow(unused_imports)] // Each test binary uses its own part of the harness.
pub use commands::{Harness as Commands, assert_valid};

/// Parses an id (or anything) from text.
pub fn id<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    text.parse().unwrap()
}

/// A group channel created by `owner` with `members`.
pub async fn group(owner: &Client, members: &[&str]) -> ChannelId {
    let members = members.iter().map(|user| NewMember { user_id: id(user), role: None }).collect();
    owner.create_channel(&CreateChannel { members, ..CreateChannel::new(ChannelType::Group) }).await.unwrap().channel_id
}

pub async fn send(client: &Client, channel: &ChannelId, text: &str) -> MessageId {
    client.send_message(channel, &SendMessage::text(text)).await.unwrap().message_id.unwrap()
}

/// `reader` will see everything `writer` wrote so far.
pub fn follow(reader: &Client, writer: &Client) {
    for position in writer.session_position().positions() {
        reader.observe(position);
    }
}

pub struct Harness {
    pub commands: Commands,
    pub ephemeral_topic: String,
    pub nodes: Vec<RunningService>,
}

impl Harness {
    pub async fn start(nodes: usize) -> Self {
        Self::start_with(nodes, |_| {}).await
    }

    pub async fn start_with(nodes: usize, adjust: impl Fn(&mut query_api::Config)) -> Self {
        Self::start_adjusted(nodes, |_| {}, adjust).await
    }

    /// With the command API's config adjusted by `commands` and each query node's by `adjust`.
    pub async fn start_adjusted(
        nodes: usize,
        commands: impl FnOnce(&mut command_api::Config),
        adjust: impl Fn(&mut query_api::Config),
    ) -> Self {
        let commands = Commands::start_with(commands).await;
        let ephemeral_topic = create_topic(&commands.stack, "ephemeral", 1).await;
        let mut harness = Self { commands, ephemeral_topic, nodes: Vec::new() };
        for _ in 0..nodes {
            let mut config = harness.node_config();
            adjust(&mut config);
            let node = RunningService::start::<query_api::Application>(config).await;
            // Ready means its tails caught up: sockets are accepted from then on.
            let url = node.url("/readyz");
            wait_for("a query node ready", Duration::from_secs(60), || async {
                (get_json(&url).await.0 == reqwest::StatusCode::OK).then_some(())
            })
            .await;
            harness.nodes.push(node);
        }
        harness
    }

    pub fn node_config(&self) -> query_api::Config {
        let mut config = query_api::Config::load(None).unwrap();
        config.http.bind = "127.0.0.1:0".parse().unwrap();
        config.postgres.url = Secret::new(self.commands.database.url.clone());
        config.events.topic = self.commands.topic.clone();
        config.events.ephemeral_topic = self.ephemeral_topic.clone();
        config.reads.projector_consumer = self.commands.group.clone();
        config
    }

    /// A user whose commands go to the command API and reads to query node `node`.
    pub fn user(&self, user: &str, node: usize) -> Client {
        self.commands.user(user).with_query_url(self.nodes[node].url(""))
    }

    pub fn server(&self, node: usize) -> Client {
        self.commands.server().with_query_url(self.nodes[node].url(""))
    }

    pub fn credentials(&self, user: &str) -> Credentials {
        Credentials::User { api_key: self.commands.app.api_key.clone(), token: self.commands.token(user) }
    }

    /// A raw GET on node `node` with `user`'s credentials (or none): status and JSON body.
    pub async fn get(&self, node: usize, path: &str, headers: &[(&str, String)]) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new().get(self.nodes[node].url(path));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Headers of a user of this app.
    pub fn user_headers(&self, user: &str) -> Vec<(&'static str, String)> {
        vec![
            ("x-api-key", self.commands.app.api_key.clone()),
            ("authorization", format!("Bearer {}", self.commands.token(user))),
        ]
    }

    /// Opens `/v1/ws` on node `node` as `user`, resuming after `token`.
    pub async fn connect(&self, node: usize, user: &str, token: Option<&str>) -> Socket {
        let mut url = format!(
            "ws://{}/v1/ws?api_key={}&auth={}",
            self.nodes[node].address,
            self.commands.app.api_key,
            self.commands.token(user)
        );
        if let Some(token) = token {
            url.push_str(&format!("&token={token}"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Socket { stream }
    }

    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await.unwrap();
        }
        self.commands.stop().await;
    }
}

pub struct Socket {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    /// The next server frame (pings are answered by the library); panics after `within`.
    pub async fn next(&mut self, within: Duration) -> ServerFrame {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame in time")
                .expect("the socket open")
                .unwrap();
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Close(frame) => panic!("closed by the server: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The next frame, or `None` when none arrives within `quiet` (for "nothing more is delivered").
    pub async fn maybe_next(&mut self, quiet: Duration) -> Option<ServerFrame> {
        loop {
            let message = tokio::time::timeout(quiet, self.stream.next()).await.ok()??.ok()?;
            if let Message::Text(text) = message {
                return Some(serde_json::from_str(text.as_str()).unwrap());
            }
        }
    }

    /// Skips heartbeats and ephemeral frames until an event; returns it with its token.
    pub async fn next_event(&mut self, within: Duration) -> (chatsdk_client::Position, serde_json::Value, String) {
        loop {
            match self.next(within).await {
                ServerFrame::Event { position, event, token } => return (position, event, token),
                ServerFrame::Resync { reason, .. } => panic!("unexpected resync: {reason}"),
                _ => {}
            }
        }
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.stream.send(Message::Text(value.to_string().into())).await.unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
