//! A typed client for the command API, for tests, the load generator and customers' Rust backends.
//!
//! **Session consistency by default:** the client remembers the latest position of every command it sent
//! and passes it as `min_position` on each later call, so "create channel → send → read" never observes its
//! own writes missing, on any node. [`Client::without_session_consistency`] turns that off.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatsdk_schemas::events::Role;
use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UploadId, UserId};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    Accepted, AddMember, AddReaction, AppCredentials, ArchiveChannel, ChangeRole, CompleteUpload, CreateApp,
    CreateChannel, CreateUpload, EditMessage, ErrorBody, MarkRead, SendMessage, UpdateChannel, UploadTicket,
};
use crate::position::{Position, SessionPosition};
use crate::views::{ChannelPage, ChannelView, MemberPage, MessageDetail, MessagePage, SearchResults, SyncPage};

/// Sent with every request: it names the client in logs, and load balancers' bot rules (AWS WAF's
/// `NoUserAgent_HEADER`) refuse requests without one.
pub const USER_AGENT: &str = concat!("chatsdk-client/", env!("CARGO_PKG_VERSION"));

/// Who is calling.
#[derive(Clone)]
pub enum Credentials {
    /// An end user: the app's public key and a JWT the customer's backend signed with the app secret.
    User { api_key: String, token: String },
    /// The customer's backend, acting as the app's server actor.
    Server { api_key: String, api_secret: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User { api_key, .. } => formatter.debug_struct("User").field("api_key", api_key).finish(),
            Self::Server { api_key, .. } => formatter.debug_struct("Server").field("api_key", api_key).finish(),
        }
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error body.
    #[error("{status} {code}: {message}")]
    Api { status: StatusCode, code: String, message: String, retry_after: Option<Duration> },
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("unexpected response ({status}): {body}")]
    Unexpected { status: StatusCode, body: String },
}

impl ClientError {
    /// The machine-readable error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::Transport(error) => error.status(),
        }
    }

    /// Worth retrying as is: the service was unavailable or asked to slow down. Sends stay idempotent
    /// through `client_msg_id`.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Api { status, .. } => {
                *status == StatusCode::SERVICE_UNAVAILABLE || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Self::Transport(error) => error.is_timeout() || error.is_connect(),
            Self::Unexpected { status, .. } => status.is_server_error(),
        }
    }
}

/// The command API client. Cheap to clone; clones share the session position.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    /// Where reads go (the query API); the command API's URL unless set.
    query_url: String,
    credentials: Credentials,
    session: Arc<Mutex<SessionPosition>>,
    consistent: bool,
}

impl Client {
    /// `base_url` is the service root, e.g. `http://127.0.0.1:18180`.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self::with_http(http, base_url, credentials))
    }

    /// With a caller-configured `reqwest::Client` (timeouts, pools).
    pub fn with_http(http: reqwest::Client, base_url: impl Into<String>, credentials: Credentials) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { http, query_url: base_url.clone(), base_url, credentials, session: Arc::default(), consistent: true }
    }

    /// Reads go to `query_url` (when the two APIs are not behind one address).
    pub fn with_query_url(mut self, query_url: impl Into<String>) -> Self {
        self.query_url = query_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Calls no longer wait for this client's earlier writes to be projected.
    pub fn without_session_consistency(mut self) -> Self {
        self.consistent = false;
        self
    }

    /// The same session with other credentials (e.g. a second user of the same app).
    pub fn with_credentials(&self, credentials: Credentials) -> Self {
        Self { credentials, ..self.clone() }
    }

    /// What this session has written so far.
    pub fn session_position(&self) -> SessionPosition {
        self.session.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Adds positions seen elsewhere (another client's writes this one must observe).
    pub fn observe(&self, position: Position) {
        self.session.lock().unwrap_or_else(PoisonError::into_inner).observe(position);
    }

    pub async fn create_channel(&self, request: &CreateChannel) -> Result<Accepted, ClientError> {
        self.command(Method::POST, "/v1/channels".to_owned(), Some(request)).await
    }

    pub async fn update_channel(&self, channel: &ChannelId, request: &UpdateChannel) -> Result<Accepted, ClientError> {
        self.command(Method::PATCH, format!("/v1/channels/{channel}"), Some(request)).await
    }

    pub async fn archive_channel(
        &self,
        channel: &ChannelId,
        request: &ArchiveChannel,
    ) -> Result<Accepted, ClientError> {
        self.command(Method::POST, format!("/v1/channels/{channel}/archive"), Some(request)).await
    }

    pub async fn add_member(
        &self,
        channel: &ChannelId,
        user: &UserId,
        role: Option<Role>,
    ) -> Result<Accepted, ClientError> {
        let request = AddMember { user_id: user.clone(), role };
        self.command(Method::POST, format!("/v1/channels/{channel}/members"), Some(&request)).await
    }

    pub async fn remove_member(&self, channel: &ChannelId, user: &UserId) -> Result<Accepted, ClientError> {
        self.command::<()>(Method::DELETE, format!("/v1/channels/{channel}/members/{user}"), None).await
    }

    pub async fn change_role(&self, channel: &ChannelId, user: &UserId, role: Role) -> Result<Accepted, ClientError> {
        let request = ChangeRole { role };
        self.command(Method::PATCH, format!("/v1/channels/{channel}/members/{user}"), Some(&request)).await
    }

    /// The caller leaves the channel.
    pub async fn leave_channel(&self, channel: &ChannelId) -> Result<Accepted, ClientError> {
        self.command::<()>(Method::POST, format!("/v1/channels/{channel}/leave"), None).await
    }

    pub async fn send_message(&self, channel: &ChannelId, request: &SendMessage) -> Result<Accepted, ClientError> {
        self.command(Method::POST, format!("/v1/channels/{channel}/messages"), Some(request)).await
    }

    pub async fn edit_message(
        &self,
        channel: &ChannelId,
        message: &MessageId,
        request: &EditMessage,
    ) -> Result<Accepted, ClientError> {
        self.command(Method::PATCH, format!("/v1/channels/{channel}/messages/{message}"), Some(request)).await
    }

    /// Soft delete (a tombstone stays in history) or, with `hard`, a purge (admins and owners).
    pub async fn delete_message(
        &self,
        channel: &ChannelId,
        message: &MessageId,
        hard: bool,
    ) -> Result<Accepted, ClientError> {
        self.command::<()>(Method::DELETE, format!("/v1/channels/{channel}/messages/{message}?hard={hard}"), None).await
    }

    pub async fn add_reaction(
        &self,
        channel: &ChannelId,
        message: &MessageId,
        emoji: &str,
    ) -> Result<Accepted, ClientError> {
        let request = AddReaction { emoji: emoji.to_owned() };
        self.command(Method::POST, format!("/v1/channels/{channel}/messages/{message}/reactions"), Some(&request)).await
    }

    pub async fn remove_reaction(
        &self,
        channel: &ChannelId,
        message: &MessageId,
        emoji: &str,
    ) -> Result<Accepted, ClientError> {
        let path = format!("/v1/channels/{channel}/messages/{message}/reactions/{}", percent_encode(emoji));
        self.command::<()>(Method::DELETE, path, None).await
    }

    pub async fn pin_message(&self, channel: &ChannelId, message: &MessageId) -> Result<Accepted, ClientError> {
        self.command::<()>(Method::POST, format!("/v1/channels/{channel}/messages/{message}/pin"), None).await
    }

    pub async fn unpin_message(&self, channel: &ChannelId, message: &MessageId) -> Result<Accepted, ClientError> {
        self.command::<()>(Method::DELETE, format!("/v1/channels/{channel}/messages/{message}/pin"), None).await
    }

    pub async fn mark_read(&self, channel: &ChannelId, request: &MarkRead) -> Result<Accepted, ClientError> {
        self.command(Method::POST, format!("/v1/channels/{channel}/read"), Some(request)).await
    }

    /// `GET /v1/channels`: the caller's channels; `query` holds further parameters (`type`, `limit`,
    /// `cursor`, and `user_id` for the backend) as `name=value` pairs.
    pub async fn channels(&self, query: &[(&str, &str)]) -> Result<ChannelPage, ClientError> {
        self.read(format!("/v1/channels{}", query_string(query))).await
    }

    pub async fn channel(&self, channel: &ChannelId) -> Result<ChannelView, ClientError> {
        self.read(format!("/v1/channels/{channel}")).await
    }

    pub async fn members(&self, channel: &ChannelId, query: &[(&str, &str)]) -> Result<MemberPage, ClientError> {
        self.read(format!("/v1/channels/{channel}/members{}", query_string(query))).await
    }

    /// History: `before`, `after` (offsets), `limit`, `order` (`asc`/`desc`).
    pub async fn history(&self, channel: &ChannelId, query: &[(&str, &str)]) -> Result<MessagePage, ClientError> {
        self.read(format!("/v1/channels/{channel}/messages{}", query_string(query))).await
    }

    pub async fn replies(
        &self,
        channel: &ChannelId,
        message: &MessageId,
        query: &[(&str, &str)],
    ) -> Result<MessagePage, ClientError> {
        self.read(format!("/v1/channels/{channel}/messages/{message}/replies{}", query_string(query))).await
    }

    pub async fn message(&self, channel: &ChannelId, message: &MessageId) -> Result<MessageDetail, ClientError> {
        self.read(format!("/v1/channels/{channel}/messages/{message}")).await
    }

    /// `GET /v1/sync`: from `token`, or without one a token for now and the channel list.
    pub async fn sync(&self, token: Option<&str>, limit: Option<u32>) -> Result<SyncPage, ClientError> {
        let limit = limit.map(|limit| limit.to_string());
        let mut query = Vec::new();
        if let Some(token) = token {
            query.push(("token", token));
        }
        if let Some(limit) = &limit {
            query.push(("limit", limit.as_str()));
        }
        self.read(format!("/v1/sync{}", query_string(&query))).await
    }

    /// `GET /v1/search`: `q` plus filters (`channel_id`, `author_id`, `since`, `until`), `order`
    /// (`relevance`/`newest`), `limit` and `cursor`.
    pub async fn search(&self, q: &str, query: &[(&str, &str)]) -> Result<SearchResults, ClientError> {
        let mut all = vec![("q", q)];
        all.extend_from_slice(query);
        self.read(format!("/v1/search{}", query_string(&all))).await
    }

    /// A GET on the query API with the session's `min_position`.
    pub async fn read<T: DeserializeOwned>(&self, path_and_query: String) -> Result<T, ClientError> {
        let mut url = format!("{}{path_and_query}", self.query_url);
        if self.consistent {
            let session = self.session_position();
            if !session.is_empty() {
                let separator = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{separator}min_position={}", session.token());
            }
        }
        parse(self.authorized(self.http.get(url)).send().await?).await
    }

    /// The service's OpenAPI document.
    pub async fn openapi(&self) -> Result<Value, ClientError> {
        let response = self
            .http
            .get(format!("{}/v1/openapi.json", self.base_url))
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .send()
            .await?;
        parse(response).await
    }

    async fn command<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        body: Option<&B>,
    ) -> Result<Accepted, ClientError> {
        let accepted: Accepted = parse(self.command_request(method, &path, body).send().await?).await?;
        self.observe(accepted.position);
        Ok(accepted)
    }

    /// A command request on the command API, with the session's `min_position`.
    fn command_request<B: Serialize + ?Sized>(&self, method: Method, path: &str, body: Option<&B>) -> RequestBuilder {
        let mut url = format!("{}{path}", self.base_url);
        if self.consistent {
            let session = self.session_position();
            if !session.is_empty() {
                // Tokens are URL-safe by construction (a prefix and base64url).
                let separator = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{separator}min_position={}", session.token());
            }
        }
        let mut request = self.authorized(self.http.request(method, url));
        if let Some(body) = body {
            request = request.json(body);
        }
        request
    }

    /// `POST /v1/uploads`: where to send a file's bytes (one presigned PUT, or one per part).
    pub async fn create_upload(&self, request: &CreateUpload) -> Result<UploadTicket, ClientError> {
        parse(self.command_request(Method::POST, "/v1/uploads", Some(request)).send().await?).await
    }

    /// `POST /v1/uploads/{id}/complete`: the bytes are in; post the file as a message.
    pub async fn complete_upload(&self, upload: &UploadId, request: &CompleteUpload) -> Result<Accepted, ClientError> {
        self.command(Method::POST, format!("/v1/uploads/{upload}/complete"), Some(request)).await
    }

    /// `DELETE /v1/uploads/{id}?channel_id=`: gives an upload up (its bytes are deleted).
    pub async fn abort_upload(&self, upload: &UploadId, channel: &ChannelId) -> Result<(), ClientError> {
        let path = format!("/v1/uploads/{upload}{}", query_string(&[("channel_id", channel.as_str())]));
        let response = self.command_request::<()>(Method::DELETE, &path, None).send().await?;
        if response.status().is_success() {
            return Ok(());
        }
        parse::<Value>(response).await.map(|_| ())
    }

    /// `GET /v1/files/{upload_id}`: the short-lived URL the query API redirects a download to.
    pub async fn file_url(&self, upload: &UploadId) -> Result<String, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut url = format!("{}/v1/files/{upload}", self.query_url);
        if self.consistent {
            let session = self.session_position();
            if !session.is_empty() {
                url = format!("{url}?min_position={}", session.token());
            }
        }
        let response = self.authorized(http.get(url)).send().await?;
        if response.status() == reqwest::StatusCode::FOUND
            && let Some(location) =
                response.headers().get(reqwest::header::LOCATION).and_then(|value| value.to_str().ok())
        {
            return Ok(location.to_owned());
        }
        parse::<Value>(response)
            .await
            .and_then(|body| Err(ClientError::Unexpected { status: reqwest::StatusCode::OK, body: body.to_string() }))
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        let request = request.header(reqwest::header::USER_AGENT, USER_AGENT);
        match &self.credentials {
            Credentials::User { api_key, token } => request.header("x-api-key", api_key).bearer_auth(token),
            Credentials::Server { api_key, api_secret } => request.header(
                reqwest::header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("{api_key}:{api_secret}"))),
            ),
        }
    }
}

/// Creates an app through the admin endpoint (`Authorization: Bearer <admin token>`).
pub async fn create_app(base_url: &str, admin_token: &str, app_id: &AppId) -> Result<AppCredentials, ClientError> {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/admin/apps", base_url.trim_end_matches('/')))
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .bearer_auth(admin_token)
        .json(&CreateApp { app_id: app_id.clone() })
        .send()
        .await?;
    parse(response).await
}

async fn parse<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response.bytes().await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map_err(|_| ClientError::Unexpected { status, body: String::from_utf8_lossy(&bytes).into_owned() });
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(ErrorBody { error }) => {
            Err(ClientError::Api { status, code: error.code, message: error.message, retry_after })
        }
        Err(_) => Err(ClientError::Unexpected { status, body: String::from_utf8_lossy(&bytes).into_owned() }),
    }
}

/// `?a=b&c=d` with percent-encoded values ("" for none).
fn query_string(query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> =
        query.iter().map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value))).collect();
    format!("?{}", pairs.join("&"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for emoji in a path segment).
fn percent_encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len() * 3);
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_names_the_client() {
        let credentials = Credentials::User { api_key: "key".to_owned(), token: "token".to_owned() };
        // A caller's own reqwest::Client (with_http) has no user agent of ours: the request still carries it.
        let client = Client::with_http(reqwest::Client::new(), "http://127.0.0.1:1", credentials);
        let request = client.authorized(client.http.get("http://127.0.0.1:1/v1/channels")).build().expect("a request");
        let agent = request.headers().get(reqwest::header::USER_AGENT).and_then(|value| value.to_str().ok());
        assert_eq!(agent, Some(USER_AGENT));
        assert!(USER_AGENT.starts_with("chatsdk-client/"));
    }

    #[test]
    fn emoji_path_segments_are_percent_encoded() {
        assert_eq!(percent_encode("thumbs_up"), "thumbs_up");
        assert_eq!(percent_encode("👍"), "%F0%9F%91%8D");
        assert_eq!(percent_encode("a/b"), "a%2Fb");
    }
}
