//! The simulated population — users, their channels (DMs, groups, a few large public channels) — and how a
//! user reaches the services: each user has a home node of each API and moves to the next live one when
//! its node stops answering (what a load balancer's health check does for a real client).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chatsdk_client::api::{CreateChannel, NewMember};
use chatsdk_client::position::Position;
use chatsdk_client::token::{Claims, mint};
use chatsdk_client::{Client, ClientError, Credentials};
use chatsdk_schemas::events::ChannelType;
use chatsdk_schemas::ids::{ChannelId, UserId};

use crate::measure::closed_loop;

/// One service's nodes, with what clients have learned about which are down.
#[derive(Debug)]
pub struct Nodes {
    pub urls: Vec<String>,
    alive: Vec<AtomicBool>,
}

impl Nodes {
    pub fn new(urls: Vec<String>) -> Self {
        let alive = urls.iter().map(|_| AtomicBool::new(true)).collect();
        Self { urls, alive }
    }

    /// The first live node at or after `home`.
    pub fn pick(&self, home: usize) -> usize {
        let count = self.urls.len();
        (0..count)
            .map(|step| (home + step) % count)
            .find(|node| self.alive[*node].load(Ordering::Relaxed))
            .unwrap_or(home % count)
    }

    pub fn mark_down(&self, node: usize) {
        self.alive[node].store(false, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dm,
    Group,
    Public,
}

#[derive(Debug)]
pub struct Channel {
    pub id: ChannelId,
    pub kind: Kind,
}

/// Users, channels and the way to the services.
#[derive(Debug)]
pub struct World {
    pub http: reqwest::Client,
    pub apis: Nodes,
    pub queries: Nodes,
    pub api_key: String,
    pub secret: String,
    pub users: Vec<UserId>,
    tokens: Vec<String>,
    pub channels: Vec<Channel>,
    /// Per user: indexes into `channels`.
    pub memberships: Vec<Vec<usize>>,
    /// Users `[0, connected)` have a session (sessions start and stop in index order).
    pub connected: AtomicUsize,
    active_per_mille: u64,
}

/// How the population is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub users: usize,
    pub active_share: f64,
    pub group_size: usize,
    pub public_channels: usize,
    pub public_members: usize,
}

impl World {
    pub fn new(
        http: reqwest::Client,
        apis: Vec<String>,
        queries: Vec<String>,
        api_key: String,
        secret: String,
        shape: Shape,
    ) -> anyhow::Result<Self> {
        let users: Vec<UserId> = (0..shape.users).map(|index| format!("u{index}").parse()).collect::<Result<_, _>>()?;
        let now = chrono::Utc::now().timestamp();
        let tokens = users.iter().map(|user| mint(&secret, &Claims::new(user, now, 24 * 3600))).collect();
        Ok(Self {
            http,
            apis: Nodes::new(apis),
            queries: Nodes::new(queries),
            api_key,
            secret,
            users,
            tokens,
            channels: Vec::new(),
            memberships: vec![Vec::new(); shape.users],
            connected: AtomicUsize::new(0),
            active_per_mille: (shape.active_share * 1000.0).round() as u64,
        })
    }

    /// Whether user `index` sends (a fixed, evenly spread share of the users).
    pub fn is_active(&self, index: usize) -> bool {
        (index as u64).wrapping_mul(7919) % 1000 < self.active_per_mille
    }

    /// User `index`'s client of command node `node`, reading from query node `query`; with `after`, its calls
    /// wait until the read model has that position (a client that saw the event on its socket observes it).
    pub fn client(&self, index: usize, node: usize, query: usize, after: Option<Position>) -> Client {
        let credentials = Credentials::User { api_key: self.api_key.clone(), token: self.tokens[index].clone() };
        let client = Client::with_http(self.http.clone(), &self.apis.urls[node], credentials)
            .with_query_url(&self.queries.urls[query]);
        match after {
            Some(position) => {
                client.observe(position);
                client
            }
            None => client.without_session_consistency(),
        }
    }

    pub fn server(&self, node: usize) -> Client {
        let credentials = Credentials::Server { api_key: self.api_key.clone(), api_secret: self.secret.clone() };
        Client::with_http(self.http.clone(), &self.apis.urls[node], credentials)
            .with_query_url(&self.queries.urls[self.queries.pick(0)])
            .without_session_consistency()
    }

    /// The socket URL of user `index` on query node `node`, resuming after `token` if given.
    pub fn socket_url(&self, index: usize, node: usize, token: Option<&str>) -> String {
        let base = self.queries.urls[node].replace("http://", "ws://");
        let resume = token.map(|token| format!("&token={token}")).unwrap_or_default();
        format!("{base}/v1/ws?api_key={}&auth={}{resume}", self.api_key, self.tokens[index])
    }

    /// Runs a command as user `index` on its home command node, moving on to the next live node on a
    /// transport failure (the request is retried as is: sends carry a `client_msg_id`, so a retry is
    /// idempotent). Answers the error code (or `transport`) of the last attempt.
    pub async fn command<T, F, Fut>(&self, index: usize, op: F) -> Result<T, String>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.command_after(index, None, op).await
    }

    /// [`World::command`] about a message the user has seen at `after`.
    pub async fn command_after<T, F, Fut>(&self, index: usize, after: Option<Position>, op: F) -> Result<T, String>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.attempt(&self.apis, index, |node| op(self.client(index, node, self.queries.pick(index), after))).await
    }

    /// Runs a read as user `index` on its home query node, moving on like [`World::command`].
    pub async fn read<T, F, Fut>(&self, index: usize, op: F) -> Result<T, String>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.attempt(&self.queries, index, |query| op(self.client(index, self.apis.pick(index), query, None))).await
    }

    async fn attempt<T, F, Fut>(&self, nodes: &Nodes, home: usize, op: F) -> Result<T, String>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut last = String::new();
        for attempt in 0..4 {
            let node = nodes.pick(home);
            match op(node).await {
                Ok(value) => return Ok(value),
                Err(ClientError::Transport(error)) => {
                    // Only a refused connection says the node is gone (a timeout may be a busy node).
                    if refused(&error) {
                        nodes.mark_down(node);
                    } else {
                        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    }
                    last = "transport".to_owned();
                }
                Err(error) if error.is_retriable() && attempt < 3 => {
                    last = error.code().unwrap_or("retriable").to_owned();
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(error) => return Err(error.code().map_or_else(|| error.to_string(), str::to_owned)),
            }
        }
        Err(last)
    }

    /// Creates the channels: every user in one group of `group_size` and one DM with a neighbour (all but the
    /// last of an odd count), and `public_channels` public channels of up to `public_members` members each.
    pub async fn populate(&mut self, shape: Shape) -> anyhow::Result<()> {
        let users = self.users.len();
        let mut plans: Vec<(Kind, Vec<usize>)> = Vec::new();
        for group in (0..users).collect::<Vec<_>>().chunks(shape.group_size.max(2)) {
            plans.push((Kind::Group, group.to_vec()));
        }
        for first in (0..users.saturating_sub(1)).step_by(2) {
            plans.push((Kind::Dm, vec![first, first + 1]));
        }
        for public in 0..shape.public_channels {
            let members: Vec<usize> =
                (public..users).step_by(shape.public_channels).take(shape.public_members).collect();
            plans.push((Kind::Public, members));
        }
        let plans = Arc::new(plans);
        let created: Arc<std::sync::Mutex<Vec<Option<ChannelId>>>> =
            Arc::new(std::sync::Mutex::new(vec![None; plans.len()]));
        let next = Arc::new(AtomicUsize::new(0));
        let world = Arc::new(WorldRef::of(self));
        let create = {
            let (plans, created, next, world) =
                (Arc::clone(&plans), Arc::clone(&created), Arc::clone(&next), Arc::clone(&world));
            move |_: u64| {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let (plans, created, world) = (Arc::clone(&plans), Arc::clone(&created), Arc::clone(&world));
                async move {
                    let Some((kind, members)) = plans.get(index) else { return Ok(()) };
                    let id = world.create_retrying(index, *kind, members).await?;
                    created.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[index] = Some(id);
                    Ok(())
                }
            }
        };
        while next.load(Ordering::Relaxed) < plans.len() {
            let run = closed_loop("channels", 32, Duration::from_secs(1), create.clone()).await;
            anyhow::ensure!(run.errors.is_empty(), "creating channels failed: {:?}", run.errors);
        }
        let created = std::mem::take(&mut *created.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for ((kind, members), id) in plans.iter().zip(created) {
            let id = id.ok_or_else(|| anyhow::anyhow!("a channel was not created"))?;
            let index = self.channels.len();
            for member in members {
                self.memberships[*member].push(index);
            }
            self.channels.push(Channel { id, kind: *kind });
        }
        Ok(())
    }
}

/// Whether a request failed because nothing listens at the node's address.
fn refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = current.source();
    }
    false
}

/// What channel creation needs of the world, shareable with the creating tasks.
#[derive(Debug)]
struct WorldRef {
    http: reqwest::Client,
    api: String,
    api_key: String,
    secret: String,
    users: Vec<UserId>,
    tokens: Vec<String>,
}

impl WorldRef {
    fn of(world: &World) -> Self {
        Self {
            http: world.http.clone(),
            api: world.apis.urls[0].clone(),
            api_key: world.api_key.clone(),
            secret: world.secret.clone(),
            users: world.users.clone(),
            tokens: world.tokens.clone(),
        }
    }

    /// [`WorldRef::create`], retried on a `503`/`429` as a client does (a busy machine's pool can refuse).
    async fn create_retrying(&self, index: usize, kind: Kind, members: &[usize]) -> Result<ChannelId, String> {
        let mut attempt = 0;
        loop {
            match self.create(index, kind, members).await {
                Err((true, _)) if attempt < 8 => {
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
                    attempt += 1;
                }
                result => return result.map_err(|(_, error)| error),
            }
        }
    }

    /// Creates one channel; an error says whether it is worth retrying.
    async fn create(&self, index: usize, kind: Kind, members: &[usize]) -> Result<ChannelId, (bool, String)> {
        let member = |user: usize| NewMember { user_id: self.users[user].clone(), role: None };
        let result = match kind {
            // A DM is what one user opens with another.
            Kind::Dm => {
                let credentials =
                    Credentials::User { api_key: self.api_key.clone(), token: self.tokens[members[0]].clone() };
                let client = Client::with_http(self.http.clone(), &self.api, credentials).without_session_consistency();
                let request =
                    CreateChannel { members: vec![member(members[1])], ..CreateChannel::new(ChannelType::Dm) };
                client.create_channel(&request).await
            }
            Kind::Group | Kind::Public => {
                let credentials =
                    Credentials::Server { api_key: self.api_key.clone(), api_secret: self.secret.clone() };
                let client = Client::with_http(self.http.clone(), &self.api, credentials).without_session_consistency();
                let (prefix, channel_type) =
                    if kind == Kind::Group { ("g", ChannelType::Group) } else { ("pub", ChannelType::Public) };
                let request = CreateChannel {
                    channel_id: Some(format!("{prefix}-{index}").parse().map_err(|error| (false, format!("{error}")))?),
                    members: members.iter().map(|user| member(*user)).collect(),
                    ..CreateChannel::new(channel_type)
                };
                client.create_channel(&request).await
            }
        };
        result.map(|accepted| accepted.channel_id).map_err(|error| (error.is_retriable(), error.to_string()))
    }
}
