//! A user's realtime session: one WebSocket at a time, resumed on another node with the last token when
//! its node goes away, recording every message event it receives.
//!
//! A *chain* is what the correctness check judges: from the token of its first `connected` frame to the
//! last token it was given (an event's or a heartbeat's), the server promises every event of the user's
//! channels exactly once and in order. A resume continues the chain; a `resync` ends it (the server said it
//! cannot continue) and the next connect starts a new one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::metrics::{CONNECT, Count, DELIVERY, Metrics};
use super::world::World;

/// Per partition, the next offset a token has not covered yet (what `s1.` sync tokens carry).
pub type Offsets = BTreeMap<i32, i64>;

/// Decodes a sync token's offsets. The token is opaque to applications; the load generator reads it to know
/// exactly which events the server promised (format: `s1.` + base64url of `fingerprint|p:next,…`).
pub fn token_offsets(token: &str) -> Option<Offsets> {
    let bytes = URL_SAFE_NO_PAD.decode(token.strip_prefix("s1.")?).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (_, body) = text.split_once('|')?;
    body.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (partition, next) = pair.split_once(':')?;
            Some((partition.parse().ok()?, next.parse().ok()?))
        })
        .collect()
}

/// One message event as a socket received it.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub partition: i32,
    pub offset: i64,
    pub message: u128,
}

/// What a chain of connections received, and the window it promised.
#[derive(Debug)]
pub struct Chain {
    pub user: usize,
    pub start: Offsets,
    pub end: Offsets,
    pub receipts: Vec<Receipt>,
    pub resumes: u32,
    /// Resumes on another node than the previous connection's (failover).
    pub moved: u32,
    /// Ended by a `resync` frame.
    pub resynced: bool,
    /// Did not reach the log's end while draining.
    pub stalled: bool,
}

/// Shared by every session of a run.
#[derive(Debug)]
pub struct Shared {
    pub world: Arc<World>,
    pub metrics: Arc<Metrics>,
    /// Scheduled start of send `seq` (µs since `epoch`; 0 = not a scheduled send).
    pub scheduled: Vec<AtomicU64>,
    pub epoch: Instant,
}

impl Shared {
    pub fn schedule(&self, seq: u64, at: Instant) {
        if let Some(slot) = self.scheduled.get(seq as usize) {
            slot.store(at.saturating_duration_since(self.epoch).as_micros() as u64 + 1, Ordering::Relaxed);
        }
    }

    fn scheduled_at(&self, seq: u64) -> Option<Instant> {
        let micros = self.scheduled.get(seq as usize)?.load(Ordering::Relaxed);
        (micros > 0).then(|| self.epoch + Duration::from_micros(micros - 1))
    }
}

/// `connect`'s error when the node answers a resume with `resync` instead of `connected`.
const RESYNC: &str = "resync";

/// Sent on a session's frame channel: close the socket and resume on a new one.
pub const RECONNECT: &str = "reconnect";

/// How a session is told to end.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    Run,
    /// Close now (the user leaves).
    Leave,
    /// Read on until the stream covers these log ends, then close.
    Drain(Offsets, Instant),
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    position: Option<chatsdk_client::position::Position>,
    #[serde(borrow)]
    event: Option<EventHead<'a>>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    message_id: Option<uuid::Uuid>,
    #[serde(borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

/// The `seq:N:uU:` prefix of a scenario message: (send sequence, sending user).
pub fn parse_marker(text: &str) -> Option<(u64, usize)> {
    let rest = text.strip_prefix("seq:")?;
    let (seq, rest) = rest.split_once(':')?;
    let (user, _) = rest.strip_prefix('u')?.split_once(':')?;
    Some((seq.parse().ok()?, user.parse().ok()?))
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects user `user` to query node `node` (resuming after `token`) and waits for `connected`.
async fn connect(shared: &Shared, user: usize, node: usize, token: Option<&str>) -> Result<(Socket, String), String> {
    let url = shared.world.socket_url(user, node, token);
    let began = Instant::now();
    let connecting = async {
        // Small buffers: 10,000 sockets with tungstenite's default 128 KiB read buffer would hold 1.3 GB.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let connecting = tokio_tungstenite::connect_async_with_config(&url, Some(config), true);
        let (mut socket, _) = connecting.await.map_err(|error| match error {
            tokio_tungstenite::tungstenite::Error::Io(error)
                if error.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                "refused".to_owned()
            }
            other => format!("connect: {other}"),
        })?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Frame<'_> = serde_json::from_str(text.as_str()).map_err(|error| error.to_string())?;
                    match (frame.kind, frame.token) {
                        ("connected", Some(token)) => return Ok((socket, token)),
                        // The resume token is older than the node's buffer: the server cannot continue.
                        ("resync", _) => return Err(RESYNC.to_owned()),
                        ("error", _) => return Err(format!("refused: {}", text.as_str())),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => return Err("closed before connected".to_owned()),
            }
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(15), connecting).await.unwrap_or(Err("timeout".to_owned()));
    match &result {
        Ok(_) => shared.metrics.latency(CONNECT, began.elapsed()),
        // The error's kind, without the parts that vary (ids, tokens).
        Err(error) => shared.metrics.error(CONNECT, error.chars().take(60).collect()),
    }
    result
}

fn covers(token: &Offsets, ends: &Offsets) -> bool {
    ends.iter().all(|(partition, end)| token.get(partition).copied().unwrap_or(0) >= *end)
}

/// Runs user `user`'s session until told to stop; returns its chains. `typing` carries frames to send
/// (JSON text, or [`RECONNECT`]); `up` is told when the first connection is live.
pub async fn run(
    shared: Arc<Shared>,
    user: usize,
    mut stop: watch::Receiver<Stop>,
    mut typing: mpsc::Receiver<String>,
    up: tokio::sync::oneshot::Sender<()>,
) -> Vec<Chain> {
    let mut up = Some(up);
    let world = Arc::clone(&shared.world);
    let mut chains = Vec::new();
    let mut chain: Option<Chain> = None;
    let mut token: Option<String> = None;
    let mut failures = 0_u32;
    let mut state = stop.borrow().clone();
    let mut last_node: Option<usize> = None;
    'connections: loop {
        // A drain or leave that arrived while reconnecting.
        if stop.has_changed().unwrap_or(false) {
            state = stop.borrow_and_update().clone();
        }
        if state == Stop::Leave {
            break;
        }
        let node = world.queries.pick(user);
        // A chain continues only with its token: a connect without one starts at the node's head.
        let resume = match (&chain, &token) {
            (Some(_), Some(token)) => Some(token.as_str()),
            (Some(_), None) => {
                chains.extend(chain.take());
                None
            }
            _ => None,
        };
        let (mut socket, first) = match connect(&shared, user, node, resume).await {
            Ok(connected) => connected,
            Err(error) => {
                if error == "refused" {
                    world.queries.mark_down(node);
                }
                if error == RESYNC
                    && let Some(mut ended) = chain.take()
                {
                    // Everything up to the last token arrived; the rest would come from sync.
                    ended.resynced = true;
                    chains.push(ended);
                    token = None;
                }
                // A client keeps trying (backing off to 1 s); draining, until the deadline — a chain that
                // cannot reach the log's end by then is stalled, which fails the run.
                failures += 1;
                match &state {
                    Stop::Leave => break,
                    Stop::Drain(_, deadline) if Instant::now() > *deadline => {
                        if let Some(current) = chain.as_mut() {
                            current.stalled = true;
                        }
                        break;
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis((50 * u64::from(failures)).min(1_000))).await;
                continue;
            }
        };
        failures = 0;
        let previous_node = last_node.replace(node);
        match chain.as_mut() {
            Some(chain) => {
                chain.resumes += 1;
                chain.moved += u32::from(previous_node != Some(node));
                shared.metrics.count(Count::Reconnects, 1);
            }
            None => {
                if let Some(up) = up.take() {
                    let _ = up.send(());
                }
                let start = token_offsets(&first).unwrap_or_default();
                token = Some(first);
                chain = Some(Chain {
                    user,
                    end: start.clone(),
                    start,
                    receipts: Vec::new(),
                    resumes: 0,
                    moved: 0,
                    resynced: false,
                    stalled: false,
                });
            }
        }
        let Some(current) = chain.as_mut() else { break };
        loop {
            let draining = match &state {
                Stop::Run => None,
                Stop::Leave => {
                    let _ = socket.close(None).await;
                    break 'connections;
                }
                Stop::Drain(ends, deadline) => Some((ends, *deadline)),
            };
            if let Some((ends, deadline)) = draining {
                if covers(&current.end, ends) {
                    let _ = socket.close(None).await;
                    break 'connections;
                }
                if Instant::now() > deadline {
                    current.stalled = true;
                    let _ = socket.close(None).await;
                    break 'connections;
                }
            }
            let wake = draining.map_or_else(|| Instant::now() + Duration::from_secs(3600), |(_, deadline)| deadline);
            tokio::select! {
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                        // The node went away: resume the chain elsewhere with the last token.
                        _ => continue 'connections,
                    };
                    let Ok(frame) = serde_json::from_str::<Frame<'_>>(text.as_str()) else { continue };
                    match frame.kind {
                        "event" => {
                            if let (Some(position), Some(event)) = (frame.position, frame.event)
                                && event.kind == "message.sent"
                                && let Some(payload) = event.payload
                                && let Some(message) = payload.message_id
                            {
                                current.receipts.push(Receipt {
                                    partition: position.partition,
                                    offset: position.offset,
                                    message: message.as_u128(),
                                });
                                shared.metrics.count(Count::Delivered, 1);
                                if let Some((seq, sender)) = payload.text.as_deref().and_then(parse_marker)
                                    && sender != user
                                    && let Some(at) = shared.scheduled_at(seq)
                                {
                                    shared.metrics.latency(DELIVERY, at.elapsed());
                                }
                            }
                            if let Some(offsets) = frame.token.as_deref().and_then(token_offsets) {
                                current.end = offsets;
                            }
                            token = frame.token;
                        }
                        "heartbeat" => {
                            if let Some(offsets) = frame.token.as_deref().and_then(token_offsets) {
                                current.end = offsets;
                            }
                            token = frame.token;
                        }
                        "resync" => {
                            if let Some(offsets) = frame.token.as_deref().and_then(token_offsets) {
                                current.end = offsets;
                            }
                            current.resynced = true;
                            chains.extend(chain.take());
                            token = None;
                            continue 'connections;
                        }
                        _ => {}
                    }
                }
                outgoing = typing.recv() => match outgoing {
                    // The client drops its connection (a phone between networks) and resumes with its token.
                    Some(frame) if frame == RECONNECT => {
                        let _ = socket.close(None).await;
                        continue 'connections;
                    }
                    Some(frame) => {
                        let sent = socket.send(Message::Text(frame.into())).await;
                        shared.metrics.count(Count::Typing, u64::from(sent.is_ok()));
                    }
                    // The user left (its frame channel is gone).
                    None => {
                        let _ = socket.close(None).await;
                        break 'connections;
                    }
                },
                changed = stop.changed() => {
                    if changed.is_err() {
                        break 'connections;
                    }
                    state = stop.borrow_and_update().clone();
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
    chains.extend(chain);
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_offsets_of_a_sync_token() {
        let token = format!("s1.{}", URL_SAFE_NO_PAD.encode("abcdef012345|0:17,3:2"));
        assert_eq!(token_offsets(&token), Some(Offsets::from([(0, 17), (3, 2)])));
        assert_eq!(token_offsets("p1.xyz"), None);
        assert_eq!(token_offsets(&format!("s1.{}", URL_SAFE_NO_PAD.encode("f|0:x"))), None);
    }

    #[test]
    fn reads_the_marker_of_a_scenario_message() {
        assert_eq!(parse_marker("seq:42:u7: hello there"), Some((42, 7)));
        assert_eq!(parse_marker("hello"), None);
        assert_eq!(parse_marker("seq:x:u7:"), None);
    }
}
