//! Presence: whether a user has a socket open on any node, told to the members of their channels.
//!
//! Every node publishes on the ephemeral topic when a user's first socket on it opens
//! (`presence.online`, with the user's channels) and when their last one closes (`presence.offline`), and
//! every `realtime.presence_interval_ms` the users it holds (`presence.alive`). Every node tails those and
//! keeps, per user, the nodes that hold them: the first node makes them online, the last one leaving (or
//! falling silent for three intervals — a crashed node) makes them offline. A node that starts knows
//! everyone online within one interval.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chatsdk_schemas::ids::{AppId, ChannelId, UserId};
use serde::{Deserialize, Serialize};

/// Most channels a presence change names (the members of a user's first channels hear of it).
pub const MAX_CHANNELS: usize = 1_000;
/// Users per `presence.alive` record.
pub const ALIVE_CHUNK: usize = 1_000;

/// `presence.online` / `presence.offline` on the ephemeral topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `presence.online` or `presence.offline`.
    #[serde(rename = "type")]
    pub kind: String,
    pub node: String,
    pub app_id: AppId,
    pub user_id: UserId,
    pub channels: Vec<ChannelId>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// `presence.alive`: the users a node holds sockets of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alive {
    #[serde(rename = "type")]
    pub kind: String,
    pub node: String,
    pub users: Vec<(AppId, UserId)>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What receivers get, inside an `ephemeral` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    /// Always `presence.changed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub app_id: AppId,
    pub user_id: UserId,
    pub online: bool,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Changed {
    pub fn new(app_id: AppId, user_id: UserId, online: bool) -> Self {
        Self { kind: "presence.changed".to_owned(), app_id, user_id, online, at: chrono::Utc::now() }
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// Node → when it last said it holds the user.
    nodes: HashMap<String, Instant>,
    /// The user's channels as last announced (whom to tell).
    channels: Vec<ChannelId>,
}

/// A user who went on- or offline: whom to tell.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub app: AppId,
    pub user: UserId,
    pub online: bool,
    pub channels: Vec<ChannelId>,
}

#[derive(Debug, Default)]
struct State {
    /// Cluster view, from the ephemeral topic.
    users: HashMap<(AppId, UserId), Seen>,
    /// Sockets this node holds per user.
    local: HashMap<(AppId, UserId), usize>,
}

#[derive(Debug, Default)]
pub struct Presence {
    state: Mutex<State>,
}

impl Presence {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A socket of the user opened on this node; on their first here, `announce` runs under the lock, so
    /// this node's online and offline records of a user are enqueued in the order they happened.
    pub fn connected(&self, app: &AppId, user: &UserId, announce: impl FnOnce()) {
        let mut state = self.state();
        let count = state.local.entry((app.clone(), user.clone())).or_default();
        *count += 1;
        if *count == 1 {
            announce();
        }
    }

    /// A socket of the user closed on this node; on their last here, `announce` runs under the lock.
    pub fn disconnected(&self, app: &AppId, user: &UserId, announce: impl FnOnce()) {
        let mut state = self.state();
        let key = (app.clone(), user.clone());
        let Some(count) = state.local.get_mut(&key) else { return };
        *count = count.saturating_sub(1);
        if *count == 0 {
            state.local.remove(&key);
            announce();
        }
    }

    /// The users this node holds sockets of.
    pub fn local_users(&self) -> Vec<(AppId, UserId)> {
        self.state().local.keys().cloned().collect()
    }

    pub fn is_online(&self, app: &AppId, user: &UserId) -> bool {
        self.state().users.get(&(app.clone(), user.clone())).is_some_and(|seen| !seen.nodes.is_empty())
    }

    /// Applies a `presence.online`/`presence.offline` record.
    pub fn apply(&self, change: Change) -> Option<Transition> {
        let mut state = self.state();
        let key = (change.app_id.clone(), change.user_id.clone());
        let online = change.kind == "presence.online";
        let seen = state.users.entry(key.clone()).or_default();
        let was_online = !seen.nodes.is_empty();
        seen.channels = change.channels;
        if online {
            seen.nodes.insert(change.node, Instant::now());
        } else {
            seen.nodes.remove(&change.node);
        }
        let now_online = !seen.nodes.is_empty();
        let transition = (was_online != now_online || !online && !now_online).then(|| Transition {
            app: key.0.clone(),
            user: key.1.clone(),
            online: now_online,
            channels: seen.channels.clone(),
        });
        if !now_online {
            state.users.remove(&key);
        }
        transition
    }

    /// Applies a `presence.alive` record: nothing to tell (a user it names without a known online change
    /// was online before this node started).
    pub fn alive(&self, alive: Alive) {
        let mut state = self.state();
        let now = Instant::now();
        for key in alive.users {
            state.users.entry(key).or_default().nodes.insert(alive.node.clone(), now);
        }
    }

    /// Forgets nodes silent for longer than `ttl`; users left without a node went offline.
    pub fn expire(&self, ttl: Duration) -> Vec<Transition> {
        let mut state = self.state();
        let mut gone = Vec::new();
        state.users.retain(|(app, user), seen| {
            seen.nodes.retain(|_, last| last.elapsed() < ttl);
            if seen.nodes.is_empty() {
                gone.push(Transition {
                    app: app.clone(),
                    user: user.clone(),
                    online: false,
                    channels: seen.channels.clone(),
                });
                false
            } else {
                true
            }
        });
        gone
    }
}

/// Channels of a transition, deduplicated (a user may be announced with repeats).
pub fn unique(channels: &[ChannelId]) -> Vec<ChannelId> {
    let mut seen = HashSet::new();
    channels.iter().filter(|channel| seen.insert((*channel).clone())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<T: std::str::FromStr>(text: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        text.parse().unwrap()
    }

    fn change(kind: &str, node: &str) -> Change {
        Change {
            kind: kind.to_owned(),
            node: node.to_owned(),
            app_id: id("acme"),
            user_id: id("alice"),
            channels: vec![id("general")],
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_user_is_online_while_any_node_holds_them() {
        let presence = Presence::default();
        let online = presence.apply(change("presence.online", "a")).unwrap();
        assert!(online.online);
        assert!(presence.apply(change("presence.online", "b")).is_none(), "already online");
        assert!(presence.apply(change("presence.offline", "a")).is_none(), "still on b");
        assert!(presence.is_online(&id("acme"), &id("alice")));
        let offline = presence.apply(change("presence.offline", "b")).unwrap();
        assert_eq!((offline.online, offline.channels), (false, vec![id("general")]));
        assert!(!presence.is_online(&id("acme"), &id("alice")));
    }

    #[test]
    fn a_silent_node_s_users_go_offline_and_alive_records_teach_a_new_node() {
        let presence = Presence::default();
        presence.apply(change("presence.online", "a"));
        assert!(presence.expire(Duration::from_secs(60)).is_empty());
        let gone = presence.expire(Duration::ZERO);
        assert_eq!(gone.len(), 1);
        assert!(!gone[0].online);
        let alive = Alive {
            kind: "presence.alive".to_owned(),
            node: "c".to_owned(),
            users: vec![(id("acme"), id("bob"))],
            at: chrono::Utc::now(),
        };
        presence.alive(alive);
        assert!(presence.is_online(&id("acme"), &id("bob")));
    }

    #[test]
    fn local_sockets_are_counted_per_user_and_only_edges_are_announced() {
        let presence = Presence::default();
        let announced = std::cell::Cell::new(0);
        let (app, user) = (id::<AppId>("acme"), id::<UserId>("alice"));
        presence.connected(&app, &user, || announced.set(announced.get() + 1));
        presence.connected(&app, &user, || announced.set(announced.get() + 1));
        assert_eq!(announced.get(), 1);
        presence.disconnected(&app, &user, || announced.set(announced.get() + 10));
        assert_eq!(announced.get(), 1, "one socket left");
        presence.disconnected(&app, &user, || announced.set(announced.get() + 10));
        assert_eq!(announced.get(), 11);
        assert!(presence.local_users().is_empty());
    }
}
