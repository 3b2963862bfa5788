//! The command handlers: authorize against the read model, validate, append exactly one event, answer with
//! its position. Nothing here writes to PostgreSQL.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chatsdk_client::api::limits::{
    MAX_ATTACHMENTS, MAX_CLIENT_MSG_ID_BYTES, MAX_CUSTOM_BYTES, MAX_EMOJI_CHARS, MAX_INITIAL_MEMBERS, MAX_MENTIONS,
    MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_TOPIC_CHARS,
};
use chatsdk_client::api::{
    Accepted, AddMember, AddReaction, ArchiveChannel, ChangeRole, CreateChannel, EditMessage, MarkRead, SendMessage,
    UpdateChannel,
};
use chatsdk_client::{Position, SessionPosition};
use chatsdk_platform::metrics as names;
use chatsdk_schemas::Envelope;
use chatsdk_schemas::events::{
    Attachment, ChannelArchived, ChannelCreated, ChannelMember, ChannelType, ChannelUpdated, Event, MemberAdded,
    MemberRemoved, MemberRoleChanged, MessageDeleted, MessageEdited, MessageSent, PinChange, Reaction, ReadMarked,
    RemovalReason, Role,
};
use chatsdk_schemas::ids::{ChannelId, MessageId, UserId};
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::SERVER_ACTOR;
use crate::derive;
use crate::error::ApiError;
use crate::eventlog::{Claim, SentMessage, outcome_of};
use crate::readmodel::{ChannelState, MessageState};
use crate::request::{Command, JsonBody};
use chatsdk_platform::api::parse::path_id;

pub type Reply = Result<(StatusCode, Json<Accepted>), ApiError>;

type AppStateRef = State<Arc<AppState>>;

/// What the caller may do in a channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    is_server: bool,
    role: Option<Role>,
}

impl Access {
    /// server 4 > owner 3 > admin 2 > moderator 1 > member 0 > not a member.
    fn rank(self) -> i8 {
        if self.is_server { 4 } else { self.role.map_or(-1, rank) }
    }

    pub(crate) fn require(self, minimum: Role, action: &str) -> Result<(), ApiError> {
        if self.role.is_none() && !self.is_server {
            return Err(ApiError::forbidden("not_a_member", "the caller is not a member of this channel"));
        }
        if self.rank() < rank(minimum) {
            return Err(ApiError::forbidden(
                "insufficient_role",
                format!("{action} needs the {} role or higher", role_name(minimum)),
            ));
        }
        Ok(())
    }
}

fn rank(role: Role) -> i8 {
    match role {
        Role::Owner => 3,
        Role::Admin => 2,
        Role::Moderator => 1,
        Role::Member => 0,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Moderator => "moderator",
        Role::Member => "member",
    }
}

/// A command on an existing channel, after the common steps: rate limit, then the channel, the caller's role
/// and the named message loaded.
pub(crate) struct Target {
    pub(crate) channel_id: ChannelId,
    channel: ChannelState,
    pub(crate) access: Access,
    /// The command's `min_position` once it was waited for: later reads for this command reflect it.
    min: Option<SessionPosition>,
    /// The message the command named, if it exists (anywhere in the app).
    message: Option<MessageState>,
}

/// The message a command names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Named {
    Nothing,
    /// Looked up to recognise a retried send: its absence is the normal case.
    Retry(MessageId),
    /// Must exist in the channel.
    Required(MessageId),
}

impl Named {
    fn id(self) -> Option<MessageId> {
        match self {
            Self::Nothing => None,
            Self::Retry(id) | Self::Required(id) => Some(id),
        }
    }
}

async fn wait_for_position(state: &AppState, command: &Command) -> Result<Option<SessionPosition>, ApiError> {
    wait_for_partition(state, command, None).await
}

/// Waits for the command's `min_position`; only for `partition` when given (a channel's state depends on its
/// partition alone, so a lagging unrelated partition in the caller's session does not delay it).
async fn wait_for_partition(
    state: &AppState,
    command: &Command,
    partition: Option<i32>,
) -> Result<Option<SessionPosition>, ApiError> {
    let Some(position) = &command.min_position else { return Ok(None) };
    let position = match partition {
        Some(partition) => position.only(partition),
        None => position.clone(),
    };
    let reached = state.read.wait_for(&position).await?;
    let outcome = if reached { "reached" } else { "timeout" };
    metrics::counter!(names::COMMAND_POSITION_WAITS_TOTAL, "outcome" => outcome).increment(1);
    if reached {
        Ok(Some(position))
    } else {
        Err(ApiError::unavailable(
            "projection_behind",
            "the read model has not reached min_position yet; retry shortly",
        ))
    }
}

/// Loads the channel, the caller's role and the named message, reflecting `min` if given.
pub(crate) async fn target(
    state: &AppState,
    command: &Command,
    channel_id: &str,
    named: Named,
    min: Option<SessionPosition>,
) -> Result<Target, ApiError> {
    let channel_id: ChannelId = path_id("channel id", channel_id)?;
    let actor = &command.actor;
    let user = (!actor.is_server).then_some(&actor.user_id);
    let access = state.read.access(&actor.app_id, &channel_id, user, named.id(), min.as_ref()).await?;
    let Some(channel) = access.channel else {
        return Err(ApiError::not_found("channel_not_found", format!("no channel {channel_id}")));
    };
    let access_rights = Access { is_server: actor.is_server, role: access.role };
    Ok(Target { channel_id, channel, access: access_rights, min, message: access.message })
}

/// How a command treats its `min_position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Wait for `min_position` first, then check against state that reflects it. For commands whose event
    /// content or effect depends on the caller's earlier writes (membership and role changes, archiving,
    /// moderation), which are rare.
    Strict,
    /// Check against the read model as cached; only when it refuses the command (unknown channel or
    /// message, not a member, too low a role…), which may just mean the projector has not applied the
    /// caller's own earlier writes yet, wait for `min_position` (bounded) and check once more on state that
    /// reflects it. For the frequent commands (send, edit, react, mark read): a stream of sends never waits
    /// for the projection of the previous one, so send latency does not follow projector lag.
    Optimistic,
}

/// Rate-limits the command once, then runs its checks and append (see [`Mode`]). Nothing is appended
/// before the checks pass, so running them twice is safe.
pub(crate) async fn consistent<T, F, Fut>(
    state: &AppState,
    command: &Command,
    channel: &str,
    mode: Mode,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut(Option<SessionPosition>) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let channel_id: ChannelId = path_id("channel id", channel)?;
    let actor = &command.actor;
    state.limits.check(&actor.app_id, &channel_id, (!actor.is_server).then_some(&actor.user_id))?;
    // A channel this node has seen needs only its own partition waited for.
    let partition = || state.read.known_partition(&actor.app_id, &channel_id);
    if mode == Mode::Strict {
        let min = wait_for_partition(state, command, partition()).await?;
        return attempt(min).await;
    }
    match attempt(None).await {
        Err(error) if command.min_position.is_some() && error.may_reflect_lag() => {
            let min = wait_for_partition(state, command, partition()).await?;
            attempt(min).await
        }
        other => other,
    }
}

/// The named message, which must be in this channel (else 404: ids of other channels are not confirmed
/// to exist). Checked after the caller's rights, so a stranger learns nothing about messages.
fn message_of(target: &Target, message_id: MessageId) -> Result<MessageState, ApiError> {
    match &target.message {
        Some(message) if message.channel_id == target.channel_id.as_str() => Ok(message.clone()),
        _ => Err(ApiError::not_found("message_not_found", format!("no message {message_id} in {}", target.channel_id))),
    }
}

/// Another member's role, as of the command's attempt (see [`consistent`]).
async fn role_of(
    state: &AppState,
    command: &Command,
    target: &Target,
    user: &UserId,
) -> Result<Option<Role>, ApiError> {
    let (app, channel, partition) = (&command.actor.app_id, &target.channel_id, target.channel.partition);
    state.read.role(app, channel, partition, user, target.min.as_ref()).await
}

pub(crate) fn require_open(target: &Target) -> Result<(), ApiError> {
    if target.channel.archived {
        return Err(ApiError::conflict("channel_archived", "the channel is archived (read-only)"));
    }
    Ok(())
}

fn require_user(command: &Command, action: &str) -> Result<(), ApiError> {
    if command.actor.is_server {
        return Err(ApiError::forbidden("user_required", format!("{action} is done by a user, not the app's backend")));
    }
    Ok(())
}

async fn append(
    state: &AppState,
    command: &Command,
    channel_id: ChannelId,
    message_id: Option<MessageId>,
    event: Event,
) -> Result<(Position, Accepted), ApiError> {
    let actor = &command.actor;
    let envelope = Envelope::new(actor.app_id.clone(), channel_id.clone(), actor.user_id.clone(), event);
    let position = state.log.append(&envelope, command.traceparent.as_deref()).await?;
    let accepted = Accepted {
        channel_id,
        message_id,
        event_id: Some(envelope.event_id),
        position,
        position_token: position.token(),
        duplicate: false,
    };
    Ok((position, accepted))
}

fn accepted((_, accepted): (Position, Accepted)) -> Reply {
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

// ------------------------------------------------------------------------------------------------ checks

fn check_chars(field: &str, value: &str, max: usize, code: &'static str) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::unprocessable(code, format!("{field} is longer than {max} characters")));
    }
    Ok(())
}

fn check_custom(custom: Option<&Map<String, Value>>) -> Result<(), ApiError> {
    if let Some(custom) = custom
        && serde_json::to_vec(custom).map_or(0, |bytes| bytes.len()) > MAX_CUSTOM_BYTES
    {
        return Err(ApiError::unprocessable(
            "custom_too_large",
            format!("custom is larger than {MAX_CUSTOM_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn check_not_reserved(user: &UserId) -> Result<(), ApiError> {
    if user.as_str() == SERVER_ACTOR {
        return Err(ApiError::unprocessable(
            "reserved_id",
            format!("{SERVER_ACTOR} is reserved for the app's backend"),
        ));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), ApiError> {
    check_chars("text", text, MAX_TEXT_CHARS, "text_too_long")
}

/// Mentions: valid ids (the body's types checked that), at most 100, duplicates dropped in order.
fn mentions(list: Vec<UserId>) -> Result<Vec<UserId>, ApiError> {
    if list.len() > MAX_MENTIONS {
        return Err(ApiError::unprocessable("too_many_mentions", format!("at most {MAX_MENTIONS} mentions")));
    }
    let mut seen = BTreeSet::new();
    Ok(list.into_iter().filter(|user| seen.insert(user.clone())).collect())
}

fn check_attachments(command: &Command, channel: &ChannelId, attachments: &[Attachment]) -> Result<(), ApiError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ApiError::unprocessable("too_many_attachments", format!("at most {MAX_ATTACHMENTS} attachments")));
    }
    for attachment in attachments {
        let invalid = |why: &str| {
            ApiError::unprocessable("invalid_attachment", format!("attachment {}: {why}", attachment.upload_id))
        };
        // The object lies under its own upload's prefix in this channel: an upload id names one object, and a
        // message cannot borrow another channel's (or another upload's) object.
        let prefix = format!("{}/{}/{}/", command.actor.app_id, channel, attachment.upload_id);
        let name = attachment.object_key.strip_prefix(&prefix);
        if name.is_none_or(|name| name.is_empty() || name.contains('/') || name == "." || name == "..") {
            return Err(invalid("its object is not this upload's in this channel's storage"));
        }
        if attachment.name.is_empty() || attachment.name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid("name must be 1 to 256 characters"));
        }
        if !attachment.content_type.contains('/') || attachment.content_type.len() > 255 {
            return Err(invalid("content_type must be a media type"));
        }
        if attachment.size == 0 {
            return Err(invalid("size must be positive"));
        }
    }
    Ok(())
}

fn check_client_msg_id(key: &str) -> Result<(), ApiError> {
    let valid =
        !key.is_empty() && key.len() <= MAX_CLIENT_MSG_ID_BYTES && key.bytes().all(|byte| byte.is_ascii_graphic());
    if !valid {
        return Err(ApiError::unprocessable(
            "invalid_client_msg_id",
            format!("client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_BYTES} visible ASCII characters"),
        ));
    }
    Ok(())
}

fn check_emoji(emoji: &str) -> Result<(), ApiError> {
    let count = emoji.chars().count();
    if count == 0 || count > MAX_EMOJI_CHARS || emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::unprocessable(
            "invalid_emoji",
            format!("emoji must be 1 to {MAX_EMOJI_CHARS} characters without spaces"),
        ));
    }
    Ok(())
}

fn require_not_deleted(message: &MessageState) -> Result<(), ApiError> {
    if message.deleted {
        return Err(ApiError::conflict("message_deleted", "the message was deleted"));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------ channels

pub async fn create_channel(
    State(state): AppStateRef,
    command: Command,
    JsonBody(request): JsonBody<CreateChannel>,
) -> Reply {
    let actor = &command.actor;
    if let Some(name) = &request.name {
        check_chars("name", name, MAX_NAME_CHARS, "name_too_long")?;
    }
    if let Some(topic) = &request.topic {
        check_chars("topic", topic, MAX_TOPIC_CHARS, "topic_too_long")?;
    }
    check_custom(request.custom.as_ref())?;
    if request.members.len() > MAX_INITIAL_MEMBERS {
        return Err(ApiError::unprocessable(
            "too_many_members",
            format!("at most {MAX_INITIAL_MEMBERS} initial members"),
        ));
    }
    let mut members: Vec<ChannelMember> = Vec::with_capacity(request.members.len() + 1);
    if !actor.is_server {
        let creator_role = if request.channel_type == ChannelType::Dm { Role::Member } else { Role::Owner };
        members.push(ChannelMember { user_id: actor.user_id.clone(), role: creator_role });
    }
    for member in &request.members {
        check_not_reserved(&member.user_id)?;
        if members.iter().any(|listed| listed.user_id == member.user_id) {
            return Err(ApiError::unprocessable(
                "duplicate_member",
                format!("{} is listed twice (the creator is a member already)", member.user_id),
            ));
        }
        members.push(ChannelMember { user_id: member.user_id.clone(), role: member.role.unwrap_or(Role::Member) });
    }
    let channel_id = if request.channel_type == ChannelType::Dm {
        if request.channel_id.is_some() {
            return Err(ApiError::unprocessable(
                "dm_id_derived",
                "a dm's id is derived from its two members; omit channel_id",
            ));
        }
        let [first, second] = members.as_mut_slice() else {
            return Err(ApiError::unprocessable("dm_needs_two_members", "a dm has exactly two distinct members"));
        };
        // In a DM both are equal members.
        first.role = Role::Member;
        second.role = Role::Member;
        derive::dm_channel_id(&actor.app_id, &first.user_id, &second.user_id)
    } else {
        if request.channel_id.as_ref().is_some_and(|id| id.as_str().starts_with("dm-")) {
            return Err(ApiError::unprocessable("reserved_id", "channel ids starting with dm- are reserved for dms"));
        }
        request.channel_id.clone().unwrap_or_else(|| {
            ChannelId::try_from(format!("ch-{}", uuid::Uuid::now_v7().simple()))
                .unwrap_or_else(|_| unreachable!("ch- and hex digits form a valid id"))
        })
    };
    state.limits.check(&actor.app_id, &channel_id, (!actor.is_server).then_some(&actor.user_id))?;
    // Creating is strict: a create after the caller's earlier writes sees them (see `Mode`).
    wait_for_position(&state, &command).await?;
    let is_dm = request.channel_type == ChannelType::Dm;
    let existing_reply = |position: Position| {
        Ok((
            StatusCode::OK,
            Json(Accepted {
                channel_id: channel_id.clone(),
                message_id: None,
                event_id: None,
                position,
                position_token: position.token(),
                duplicate: true,
            }),
        ))
    };
    let exists = || ApiError::conflict("channel_exists", format!("channel {channel_id} exists already"));
    // Two creates of one id on this node within the projector's lag: the second sees the first.
    let guard = match state.creates.claim((actor.app_id.clone(), channel_id.clone())) {
        Claim::Repeat(first) => {
            return match outcome_of(first).await {
                Some(created) if is_dm => existing_reply(created.position),
                Some(_) => Err(exists()),
                None => {
                    Err(ApiError::unavailable("kafka_unavailable", "a concurrent create of this channel failed; retry"))
                }
            };
        }
        Claim::Owner(guard) => guard,
    };
    let existing = state.read.access(&actor.app_id, &channel_id, None, None, None).await?.channel;
    if let Some(existing) = existing {
        // Get-or-create for a DM: the same two users always share one DM.
        if is_dm && existing.channel_type == ChannelType::Dm {
            return existing_reply(Position { partition: existing.partition, offset: existing.last_offset });
        }
        return Err(exists());
    }
    let event = Event::ChannelCreated(ChannelCreated {
        channel_type: request.channel_type,
        name: request.name,
        topic: request.topic,
        custom: request.custom,
        members,
    });
    let (position, reply) = append(&state, &command, channel_id.clone(), None, event).await?;
    guard.finish(SentMessage { event_id: reply.event_id, position });
    Ok((StatusCode::ACCEPTED, Json(reply)))
}

pub async fn update_channel(
    State(state): AppStateRef,
    Path(channel): Path<String>,
    command: Command,
    JsonBody(request): JsonBody<UpdateChannel>,
) -> Reply {
    if let Some(name) = &request.name {
        check_chars("name", name, MAX_NAME_CHARS, "name_too_long")?;
    }
    if let Some(topic) = &request.topic {
        check_chars("topic", topic, MAX_TOPIC_CHARS, "topic_too_long")?;
    }
    check_custom(request.custom.as_ref())?;
    if request.name.is_none() && request.topic.is_none() && request.custom.is_none() {
        return Err(ApiError::unprocessable("empty_update", "name, topic or custom must be given"));
    }
    consistent(&state, &command, &channel, Mode::Strict, |min| async {
        let target = target(&state, &command, &channel, Named::Nothing, min).await?;
        target.access.require(Role::Admin, "updating a channel")?;
        require_open(&target)?;
        let event = Event::ChannelUpdated(ChannelUpdated {
            name: request.name.clone(),
            topic: request.topic.clone(),
            custom: request.custom.clone(),
        });
        accepted(append(&state, &command, target.channel_id, None, event).await?)
    })
    .await
}

pub async fn archive_channel(
    State(state): AppStateRef,
    Path(channel): Path<String>,
    command: Command,
    JsonBody(request): JsonBody<ArchiveChannel>,
) -> Reply {
    if let Some(reason) = &request.reason {
        check_chars("reason", reason, MAX_NAME_CHARS, "reason_too_long")?;
    }
    consistent(&state, &command, &channel, Mode::Strict, |min| async {
        let target = target(&state, &command, &channel, Named::Nothing, min).await?;
        target.access.require(Role::Admin, "archiving a channel")?;
        require_open(&target)?;
        let event = Event::ChannelArchived(ChannelArchived { reason: request.reason.clone() });
        accepted(append(&state, &command, target.channel_id, None, event).await?)
    })
    .await
}

// ------------------------------------------------------------------------------------------------ members

pub async fn add_member(
    State(state): AppStateRef,
    Path(channel): Path<String>,
    command: Command,
    JsonBody(request): JsonBody<AddMember>,
) -> Reply {
    check_not_reserved(&request.user_id)?;
    consistent(&state, &command, &channel, Mode::Strict, |min| {
        add_member_attempt(&state, &command, &channel, &request, min)
    })
    .await
}

async fn add_member_attempt(
    state: &AppState,
    command: &Command,
    channel: &str,
    request: &AddMember,
    min: Option<SessionPosition>,
) -> Reply {
    let target = target(state, command, channel, Named::Nothing, min).await?;
    require_open(&target)?;
    let role = request.role.unwrap_or(Role::Member);
    let actor = &command.actor;
    if target.channel.channel_type == ChannelType::Dm {
        return Err(ApiError::forbidden("dm_members_fixed", "a dm's members cannot change"));
    }
    let joining_public =
        !actor.is_server && request.user_id == actor.user_id && target.channel.channel_type == ChannelType::Public;
    if joining_public {
        if target.access.role.is_some() {
            return Err(ApiError::conflict("already_a_member", "the caller is a member already"));
        }
        if role != Role::Member {
            return Err(ApiError::forbidden("insufficient_role", "joining a public channel gives the member role"));
        }
    } else {
        target.access.require(Role::Moderator, "adding members")?;
        // Nobody grants more than they have; only owners (and the backend) make owners.
        if rank(role) > target.access.rank() || (role == Role::Owner && target.access.rank() < 3) {
            return Err(ApiError::forbidden("insufficient_role", format!("cannot grant the {} role", role_name(role))));
        }
        let existing = role_of(state, command, &target, &request.user_id).await?;
        if existing.is_some() {
            return Err(ApiError::conflict("already_a_member", format!("{} is a member already", request.user_id)));
        }
    }
    let event = Event::MemberAdded(MemberAdded { user_id: request.user_id.clone(), role });
    accepted(append(state, command, target.channel_id, None, event).await?)
}

pub async fn remove_member(
    State(state): AppStateRef,
    Path((channel, user)): Path<(String, String)>,
    command: Command,
) -> Reply {
    let user: UserId = path_id("user id", &user)?;
    consistent(&state, &command, &channel, Mode::Strict, |min| remove(&state, &command, &channel, &user, min)).await
}

pub async fn leave_channel(State(state): AppStateRef, Path(channel): Path<String>, command: Command) -> Reply {
    require_user(&command, "leaving a channel")?;
    let user = command.actor.user_id.clone();
    consistent(&state, &command, &channel, Mode::Strict, |min| remove(&state, &command, &channel, &user, min)).await
}

async fn remove(
    state: &AppState,
    command: &Command,
    channel: &str,
    user: &UserId,
    min: Option<SessionPosition>,
) -> Reply {
    let target = target(state, command, channel, Named::Nothing, min).await?;
    require_open(&target)?;
    let actor = &command.actor;
    let leaving = !actor.is_server && *user == actor.user_id;
    if leaving && target.access.role.is_none() {
        return Err(ApiError::forbidden("not_a_member", "the caller is not a member of this channel"));
    }
    if target.channel.channel_type == ChannelType::Dm {
        return Err(ApiError::forbidden("dm_members_fixed", "a dm's members cannot change"));
    }
    let target_role = if leaving {
        target.access.role
    } else {
        target.access.require(Role::Moderator, "removing members")?;
        role_of(state, command, &target, user).await?
    };
    let Some(target_role) = target_role else {
        return Err(ApiError::not_found("member_not_found", format!("{user} is not a member")));
    };
    if !leaving && rank(target_role) >= target.access.rank() {
        return Err(ApiError::forbidden("insufficient_role", format!("cannot remove a {}", role_name(target_role))));
    }
    let reason = if leaving { RemovalReason::Left } else { RemovalReason::Removed };
    let event = Event::MemberRemoved(MemberRemoved { user_id: user.clone(), reason });
    accepted(append(state, command, target.channel_id, None, event).await?)
}

pub async fn change_role(
    State(state): AppStateRef,
    Path((channel, user)): Path<(String, String)>,
    command: Command,
    JsonBody(request): JsonBody<ChangeRole>,
) -> Reply {
    let user: UserId = path_id("user id", &user)?;
    consistent(&state, &command, &channel, Mode::Strict, |min| {
        change_role_attempt(&state, &command, &channel, &user, request.role, min)
    })
    .await
}

async fn change_role_attempt(
    state: &AppState,
    command: &Command,
    channel: &str,
    user: &UserId,
    role: Role,
    min: Option<SessionPosition>,
) -> Reply {
    let target = target(state, command, channel, Named::Nothing, min).await?;
    require_open(&target)?;
    target.access.require(Role::Admin, "changing roles")?;
    let actor = &command.actor;
    if !actor.is_server && *user == actor.user_id {
        return Err(ApiError::forbidden("cannot_change_own_role", "members cannot change their own role"));
    }
    let Some(previous_role) = role_of(state, command, &target, user).await? else {
        return Err(ApiError::not_found("member_not_found", format!("{user} is not a member")));
    };
    let rank_actor = target.access.rank();
    let owner_power = rank_actor >= 3;
    // Admins manage moderators and members; owners (and the backend) manage everyone.
    if !owner_power && (rank(previous_role) >= rank_actor || rank(role) >= rank_actor) {
        return Err(ApiError::forbidden("insufficient_role", "cannot change a role equal to or above one's own"));
    }
    if previous_role == role {
        return Err(ApiError::conflict("role_unchanged", format!("{user} is a {} already", role_name(previous_role))));
    }
    let event = Event::MemberRoleChanged(MemberRoleChanged { user_id: user.clone(), role, previous_role });
    accepted(append(state, command, target.channel_id, None, event).await?)
}

// ------------------------------------------------------------------------------------------------ messages

pub async fn send_message(
    State(state): AppStateRef,
    Path(channel): Path<String>,
    command: Command,
    JsonBody(request): JsonBody<SendMessage>,
) -> Reply {
    send(&state, &channel, &command, request).await
}

/// A send, from `POST …/messages` or a completed upload.
pub(crate) async fn send(state: &AppState, channel: &str, command: &Command, request: SendMessage) -> Reply {
    check_text(&request.text)?;
    if request.text.trim().is_empty() && request.attachments.is_empty() {
        return Err(ApiError::unprocessable("empty_message", "a message needs text or attachments"));
    }
    check_custom(request.custom.as_ref())?;
    if let Some(key) = &request.client_msg_id {
        check_client_msg_id(key)?;
    }
    let actor = &command.actor;
    let channel_id: ChannelId = path_id("channel id", channel)?;
    check_attachments(command, &channel_id, &request.attachments)?;
    let mentions = mentions(request.mentions.clone())?;
    // The id a retry would have: looked up with the channel and role in the same query.
    let derived =
        request.client_msg_id.as_deref().map(|key| derive::message_id(&actor.app_id, &channel_id, &actor.user_id, key));
    let sent = |message_id| MessageSent {
        message_id,
        client_msg_id: request.client_msg_id.clone(),
        text: request.text.clone(),
        mentions: mentions.clone(),
        attachments: request.attachments.clone(),
        parent_id: request.parent_id,
        custom: request.custom.clone(),
    };
    let parent = request.parent_id;
    consistent(state, command, channel, Mode::Optimistic, |min| {
        send_attempt(state, command, channel, derived, parent, &sent, min)
    })
    .await
}

async fn send_attempt(
    state: &AppState,
    command: &Command,
    channel: &str,
    derived: Option<MessageId>,
    parent: Option<MessageId>,
    sent: &impl Fn(MessageId) -> MessageSent,
    min: Option<SessionPosition>,
) -> Reply {
    let target = target(state, command, channel, derived.map_or(Named::Nothing, Named::Retry), min).await?;
    target.access.require(Role::Member, "sending")?;
    require_open(&target)?;
    let actor = &command.actor;
    if let Some(parent_id) = parent {
        let parent = state.read.message(&actor.app_id, parent_id).await?;
        let valid = parent.is_some_and(|parent| {
            parent.channel_id == target.channel_id.as_str() && !parent.is_reply && !parent.purged
        });
        if !valid {
            return Err(ApiError::unprocessable(
                "invalid_parent",
                "parent_id must be a top-level message of this channel",
            ));
        }
    }
    let Some(message_id) = derived else {
        let message_id = MessageId::from_uuid(uuid::Uuid::now_v7());
        let event = Event::MessageSent(sent(message_id));
        return accepted(append(state, command, target.channel_id, Some(message_id), event).await?);
    };
    let repeat = |sent: SentMessage| {
        Ok((
            StatusCode::OK,
            Json(Accepted {
                channel_id: target.channel_id.clone(),
                message_id: Some(message_id),
                event_id: sent.event_id,
                position: sent.position,
                position_token: sent.position.token(),
                duplicate: true,
            }),
        ))
    };
    let guard = match state.recent.claim((actor.app_id.clone(), message_id)) {
        Claim::Repeat(first) => {
            return match outcome_of(first).await {
                Some(sent) => {
                    metrics::counter!(names::COMMAND_RETRIED_SENDS_TOTAL, "found" => "memory").increment(1);
                    repeat(sent)
                }
                None => Err(ApiError::unavailable("kafka_unavailable", "the first attempt of this send failed; retry")),
            };
        }
        Claim::Owner(guard) => guard,
    };
    // Sent through another node (or before this node's memory) and projected already.
    if let Some(existing) = &target.message {
        let first = SentMessage {
            event_id: None,
            position: Position { partition: existing.partition, offset: existing.offset },
        };
        guard.finish(first);
        metrics::counter!(names::COMMAND_RETRIED_SENDS_TOTAL, "found" => "read_model").increment(1);
        return repeat(first);
    }
    let event = Event::MessageSent(sent(message_id));
    let (position, reply) = append(state, command, target.channel_id.clone(), Some(message_id), event).await?;
    guard.finish(SentMessage { event_id: reply.event_id, position });
    Ok((StatusCode::ACCEPTED, Json(reply)))
}

pub async fn edit_message(
    State(state): AppStateRef,
    Path((channel, message)): Path<(String, String)>,
    command: Command,
    JsonBody(request): JsonBody<EditMessage>,
) -> Reply {
    check_text(&request.text)?;
    if request.text.trim().is_empty() {
        return Err(ApiError::unprocessable("empty_message", "an edit needs text; delete the message instead"));
    }
    let message_id: MessageId = path_id("message id", &message)?;
    let mentions = mentions(request.mentions.clone())?;
    consistent(&state, &command, &channel, Mode::Optimistic, |min| async {
        let target = target(&state, &command, &channel, Named::Required(message_id), min).await?;
        target.access.require(Role::Member, "editing")?;
        require_open(&target)?;
        let message = message_of(&target, message_id)?;
        require_not_deleted(&message)?;
        if !command.actor.is_server && message.author_id != command.actor.user_id.as_str() {
            return Err(ApiError::forbidden("not_the_author", "only the author edits a message"));
        }
        let event =
            Event::MessageEdited(MessageEdited { message_id, text: request.text.clone(), mentions: mentions.clone() });
        accepted(append(&state, &command, target.channel_id, Some(message_id), event).await?)
    })
    .await
}

pub async fn delete_message(
    State(state): AppStateRef,
    Path((channel, message)): Path<(String, String)>,
    command: Command,
) -> Reply {
    let message_id: MessageId = path_id("message id", &message)?;
    consistent(&state, &command, &channel, Mode::Strict, |min| async {
        let target = target(&state, &command, &channel, Named::Required(message_id), min).await?;
        require_open(&target)?;
        if target.access.role.is_none() && !target.access.is_server {
            return Err(ApiError::forbidden("not_a_member", "the caller is not a member of this channel"));
        }
        let message = message_of(&target, message_id)?;
        if command.hard {
            target.access.require(Role::Admin, "purging a message")?;
            if message.purged {
                return Err(ApiError::conflict("message_deleted", "the message was purged already"));
            }
        } else {
            let is_author = !command.actor.is_server && message.author_id == command.actor.user_id.as_str();
            if is_author {
                target.access.require(Role::Member, "deleting")?;
            } else {
                target.access.require(Role::Moderator, "deleting another member's message")?;
            }
            require_not_deleted(&message)?;
        }
        let event = Event::MessageDeleted(MessageDeleted { message_id, hard: command.hard });
        accepted(append(&state, &command, target.channel_id, Some(message_id), event).await?)
    })
    .await
}

pub async fn add_reaction(
    State(state): AppStateRef,
    Path((channel, message)): Path<(String, String)>,
    command: Command,
    JsonBody(request): JsonBody<AddReaction>,
) -> Reply {
    check_emoji(&request.emoji)?;
    react(&state, &command, &channel, &message, &request.emoji, true).await
}

pub async fn remove_reaction(
    State(state): AppStateRef,
    Path((channel, message, emoji)): Path<(String, String, String)>,
    command: Command,
) -> Reply {
    check_emoji(&emoji)?;
    react(&state, &command, &channel, &message, &emoji, false).await
}

async fn react(state: &AppState, command: &Command, channel: &str, message: &str, emoji: &str, add: bool) -> Reply {
    require_user(command, "reacting")?;
    let message_id: MessageId = path_id("message id", message)?;
    consistent(state, command, channel, Mode::Optimistic, |min| async move {
        let target = target(state, command, channel, Named::Required(message_id), min).await?;
        target.access.require(Role::Member, "reacting")?;
        require_open(&target)?;
        require_not_deleted(&message_of(&target, message_id)?)?;
        let reaction = Reaction { message_id, emoji: emoji.to_owned() };
        let event = if add { Event::ReactionAdded(reaction) } else { Event::ReactionRemoved(reaction) };
        accepted(append(state, command, target.channel_id, Some(message_id), event).await?)
    })
    .await
}

pub async fn pin_message(
    State(state): AppStateRef,
    Path((channel, message)): Path<(String, String)>,
    command: Command,
) -> Reply {
    pin(&state, &command, &channel, &message, true).await
}

pub async fn unpin_message(
    State(state): AppStateRef,
    Path((channel, message)): Path<(String, String)>,
    command: Command,
) -> Reply {
    pin(&state, &command, &channel, &message, false).await
}

async fn pin(state: &AppState, command: &Command, channel: &str, message: &str, pin: bool) -> Reply {
    let message_id: MessageId = path_id("message id", message)?;
    consistent(state, command, channel, Mode::Strict, |min| async move {
        let target = target(state, command, channel, Named::Required(message_id), min).await?;
        target.access.require(Role::Member, "pinning")?;
        require_open(&target)?;
        let message = message_of(&target, message_id)?;
        if pin {
            require_not_deleted(&message)?;
        }
        let change = PinChange { message_id };
        let event = if pin { Event::MessagePinned(change) } else { Event::MessageUnpinned(change) };
        accepted(append(state, command, target.channel_id, Some(message_id), event).await?)
    })
    .await
}

pub async fn mark_read(
    State(state): AppStateRef,
    Path(channel): Path<String>,
    command: Command,
    JsonBody(request): JsonBody<MarkRead>,
) -> Reply {
    require_user(&command, "marking read")?;
    if request.up_to_offset.is_some_and(|offset| offset < 0) {
        return Err(ApiError::unprocessable("invalid_position", "up_to_offset must not be negative"));
    }
    consistent(&state, &command, &channel, Mode::Optimistic, |min| async {
        let target = target(&state, &command, &channel, Named::Nothing, min).await?;
        target.access.require(Role::Member, "marking read")?;
        let up_to = match request.up_to_offset {
            None => target.channel.last_offset,
            Some(offset) if offset <= target.channel.last_offset => offset,
            Some(offset) => {
                // An offset the client saw (e.g. live) that the read model has not reached: wait for it, so
                // the marker is never ahead of the log.
                let mut wanted = SessionPosition::default();
                wanted.observe(Position { partition: target.channel.partition, offset });
                if !state.read.wait_for(&wanted).await? {
                    return Err(ApiError::unprocessable(
                        "position_ahead",
                        "up_to_offset is beyond the channel's events",
                    ));
                }
                offset
            }
        };
        let up_to_offset = u64::try_from(up_to).unwrap_or_default();
        let event = Event::ReadMarked(ReadMarked { up_to_offset });
        accepted(append(&state, &command, target.channel_id, None, event).await?)
    })
    .await
}
