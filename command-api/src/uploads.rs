//! Direct uploads to S3: no file byte passes through this service.
//!
//! `POST /v1/uploads` checks the caller may post in the channel and the file is allowed, then answers presigned
//! URLs: one `PUT` whose signature binds the declared size, type and uploader (S3 refuses anything else), or for
//! large files a multipart upload created here (type and declared size set on it) with one presigned `PUT` per
//! part, each bound to its size. `POST /v1/uploads/{id}/complete` finishes a multipart upload, checks the object
//! with `HeadObject` (it exists, it has the declared size and type, the caller uploaded it), then posts a message
//! with the attachment through the ordinary send path (so it is idempotent). S3 holds the whole state: the object
//! key `{app}/{channel}/{upload_id}/{name}` and its metadata — nothing is written to PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as S3CompletedPart};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chatsdk_client::api::{
    CompleteUpload, CreateUpload, MultipartTicket, PartTicket, PresignedPut, SendMessage, UploadTicket,
};
use chatsdk_schemas::events::{Attachment, Role};
use chatsdk_schemas::ids::{ChannelId, UploadId};

use crate::AppState;
use crate::commands::{self, Mode, Named, Reply};
use crate::config::{UploadLimits, UploadsConfig};
use crate::error::ApiError;
use crate::request::{Command, JsonBody};
use chatsdk_platform::api::parse::path_id;

/// The scope a user token needs to upload (besides `chat:write`, which every command needs).
pub const UPLOAD_SCOPE: &str = "upload:write";
/// S3's most parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;
const MIB: u64 = 1024 * 1024;
/// Object metadata (`x-amz-meta-…`) the service reads back at completion.
const META_UPLOADER: &str = "uploader";
const META_SIZE: &str = "declared-size";
const META_NAME: &str = "name";
/// The display name, percent-encoded, must fit S3's 2 KB of metadata with room for the rest.
const MAX_ENCODED_NAME_BYTES: usize = 1_024;

/// The S3 side of uploads, shared by the handlers and the sweeper.
#[derive(Debug, Clone)]
pub struct Uploads {
    client: aws_sdk_s3::Client,
    bucket: String,
    config: Arc<UploadsConfig>,
}

impl Uploads {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, config: UploadsConfig) -> Self {
        Self { client, bucket: bucket.to_owned(), config: Arc::new(config) }
    }

    fn limits(&self, app: &str) -> &UploadLimits {
        self.config.apps.get(app).unwrap_or(&self.config.limits)
    }

    fn presigning(&self) -> Result<PresigningConfig, ApiError> {
        PresigningConfig::expires_in(Duration::from_secs(self.config.url_ttl_secs))
            .map_err(|error| ApiError::Internal(format!("presigning: {error}")))
    }
}

// ------------------------------------------------------------------------------------------------ policy

/// The name users see: trimmed, 1 to 256 characters, no control characters.
pub fn display_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > chatsdk_client::api::limits::MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "name must be 1 to 256 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// The name in the object key: the last path component only (no `..`, no directories), letters, digits, `.`,
/// `-` and `_` kept, everything else `_`, no leading dot, at most 100 bytes keeping the extension.
pub fn key_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut safe: String =
        last.chars()
            .map(|character| {
                if character.is_ascii_alphanumeric() || matches!(character, '.' | '-' | '_') { character } else { '_' }
            })
            .collect();
    // No `..` anywhere (nor a leading dot): runs of dots become one.
    while safe.contains("..") {
        safe = safe.replace("..", ".");
    }
    safe = safe.trim_start_matches('.').to_owned();
    if safe.len() > 100 {
        let extension = safe.rfind('.').map(|dot| safe[dot..].to_owned()).filter(|extension| extension.len() <= 16);
        let keep = 100 - extension.as_ref().map_or(0, String::len);
        safe.truncate(keep);
        let stem_end = safe.trim_end_matches('.').len();
        safe.truncate(stem_end);
        safe.push_str(&extension.unwrap_or_default());
    }
    if safe.is_empty() || safe.chars().all(|character| character == '_' || character == '.') {
        return "file".to_owned();
    }
    safe
}

/// A media type, lowercased: `type/subtype` of token characters (parameters are not accepted).
pub fn media_type(content_type: &str) -> Result<String, ApiError> {
    let lowered = content_type.trim().to_ascii_lowercase();
    let token = |part: &str| {
        !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&byte))
    };
    match lowered.split_once('/') {
        Some((kind, subtype)) if lowered.len() <= 127 && token(kind) && token(subtype) => Ok(lowered),
        _ => Err(ApiError::unprocessable("invalid_content_type", "content_type must be a media type like image/png")),
    }
}

/// The most bytes an app allows for a media type, or why the type is not allowed.
pub fn max_bytes(limits: &UploadLimits, media_type: &str) -> Result<u64, ApiError> {
    let allowed = limits.allowed_types.is_empty()
        || limits.allowed_types.iter().any(|pattern| match pattern.strip_suffix("/*") {
            Some(family) => media_type.split_once('/').is_some_and(|(kind, _)| kind == family),
            None => pattern.eq_ignore_ascii_case(media_type),
        });
    if !allowed {
        return Err(ApiError::UnsupportedMediaType(format!("{media_type} files are not allowed in this app")));
    }
    Ok(match media_type.split_once('/').map(|(kind, _)| kind) {
        Some("image") => limits.max_image_bytes,
        Some("video") => limits.max_video_bytes,
        _ => limits.max_file_bytes,
    })
}

/// Part size (whole MiB, at least `min_part`) and count (at most 10,000) for a multipart upload of `size` bytes.
pub fn part_plan(size: u64, min_part: u64) -> (u64, u64) {
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    let part_size = needed.max(min_part);
    (part_size, size.div_ceil(part_size))
}

// ------------------------------------------------------------------------------------------------ handlers

/// Checks, inside the command's rate limit and read-your-writes handling, that the caller may post in the
/// channel (a member, the channel open).
async fn require_poster(state: &AppState, command: &Command, channel: &ChannelId, mode: Mode) -> Result<(), ApiError> {
    command.actor.require_scope(UPLOAD_SCOPE)?;
    commands::consistent(state, command, channel.as_str(), mode, |min| async move {
        let target = commands::target(state, command, channel.as_str(), Named::Nothing, min).await?;
        target.access.require(Role::Member, "uploading")?;
        commands::require_open(&target)
    })
    .await
}

pub async fn create_upload(
    State(state): State<Arc<AppState>>,
    command: Command,
    JsonBody(request): JsonBody<CreateUpload>,
) -> Result<(StatusCode, Json<UploadTicket>), ApiError> {
    let uploads = &state.uploads;
    let name = display_name(&request.name)?;
    let encoded_name: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    // Object metadata is limited to 2 KB on S3; the name travels in it.
    if encoded_name.len() > MAX_ENCODED_NAME_BYTES {
        return Err(ApiError::unprocessable("invalid_name", "the name is too long once encoded for storage"));
    }
    let content_type = media_type(&request.content_type)?;
    let actor = &command.actor;
    if matches!(request.channel_id.as_str(), "." | "..") {
        return Err(ApiError::unprocessable("invalid_channel", "files cannot be stored for a channel named . or .."));
    }
    let limit = max_bytes(uploads.limits(actor.app_id.as_str()), &content_type)?;
    if request.size == 0 {
        return Err(ApiError::unprocessable("empty_file", "size must be positive"));
    }
    if request.size > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "{content_type} files are limited to {limit} bytes in this app ({} declared)",
            request.size
        )));
    }
    require_poster(&state, &command, &request.channel_id, Mode::Optimistic).await?;
    let upload_id = UploadId::from_uuid(uuid::Uuid::now_v7());
    let object_key = format!("{}/{}/{upload_id}/{}", actor.app_id, request.channel_id, key_name(&name));
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(uploads.config.url_ttl_secs as i64);
    let mut ticket = UploadTicket { upload_id, object_key: object_key.clone(), expires_at, put: None, multipart: None };
    if request.size <= uploads.config.multipart_threshold_bytes {
        let presigned = uploads
            .client
            .put_object()
            .bucket(&uploads.bucket)
            .key(&object_key)
            .content_type(&content_type)
            .content_length(i64::try_from(request.size).unwrap_or(i64::MAX))
            .metadata(META_UPLOADER, actor.user_id.as_str())
            .metadata(META_SIZE, request.size.to_string())
            .metadata(META_NAME, &encoded_name)
            .presigned(uploads.presigning()?)
            .await
            .map_err(ApiError::storage)?;
        let headers: BTreeMap<String, String> = presigned
            .headers()
            .map(|(header, value)| (header.to_ascii_lowercase(), value.to_owned()))
            .filter(|(header, _)| header != "host")
            .collect();
        ticket.put = Some(PresignedPut { url: presigned.uri().to_owned(), headers });
    } else {
        let created = uploads
            .client
            .create_multipart_upload()
            .bucket(&uploads.bucket)
            .key(&object_key)
            .content_type(&content_type)
            .metadata(META_UPLOADER, actor.user_id.as_str())
            .metadata(META_SIZE, request.size.to_string())
            .metadata(META_NAME, &encoded_name)
            .send()
            .await
            .map_err(ApiError::storage)?;
        let s3_upload =
            created.upload_id().ok_or_else(|| ApiError::storage("CreateMultipartUpload returned no upload id"))?;
        let (part_size, count) = part_plan(request.size, uploads.config.min_part_bytes);
        let mut parts = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for number in 1..=count {
            let size = part_size.min(request.size - (number - 1) * part_size);
            let presigned = uploads
                .client
                .upload_part()
                .bucket(&uploads.bucket)
                .key(&object_key)
                .upload_id(s3_upload)
                .part_number(i32::try_from(number).unwrap_or(i32::MAX))
                .content_length(i64::try_from(size).unwrap_or(i64::MAX))
                .presigned(uploads.presigning()?)
                .await
                .map_err(ApiError::storage)?;
            parts.push(PartTicket {
                part_number: u32::try_from(number).unwrap_or(u32::MAX),
                size,
                url: presigned.uri().to_owned(),
            });
        }
        ticket.multipart = Some(MultipartTicket { part_size, parts });
    }
    Ok((StatusCode::CREATED, Json(ticket)))
}

/// The object of an upload: its key, if one was stored under the upload's prefix.
async fn stored_key(uploads: &Uploads, prefix: &str) -> Result<Option<String>, ApiError> {
    let listed = uploads
        .client
        .list_objects_v2()
        .bucket(&uploads.bucket)
        .prefix(prefix)
        .max_keys(1)
        .send()
        .await
        .map_err(ApiError::storage)?;
    Ok(listed.contents().first().and_then(|object| object.key()).map(str::to_owned))
}

/// Multipart uploads still open under the upload's prefix: `(key, S3 upload id)`.
async fn open_multiparts(uploads: &Uploads, prefix: &str) -> Result<Vec<(String, String)>, ApiError> {
    let listed = uploads
        .client
        .list_multipart_uploads()
        .bucket(&uploads.bucket)
        .prefix(prefix)
        .send()
        .await
        .map_err(ApiError::storage)?;
    Ok(listed
        .uploads()
        .iter()
        .filter_map(|upload| Some((upload.key()?.to_owned(), upload.upload_id()?.to_owned())))
        .collect())
}

/// Every part S3 holds for a multipart upload: `(part number, ETag)`.
async fn uploaded_parts(uploads: &Uploads, key: &str, s3_upload: &str) -> Result<Vec<(i32, String)>, ApiError> {
    let mut parts = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let listed = uploads
            .client
            .list_parts()
            .bucket(&uploads.bucket)
            .key(key)
            .upload_id(s3_upload)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .map_err(ApiError::storage)?;
        parts.extend(listed.parts().iter().filter_map(|part| Some((part.part_number()?, part.e_tag()?.to_owned()))));
        if listed.is_truncated() != Some(true) {
            return Ok(parts);
        }
        marker = listed.next_part_number_marker().map(str::to_owned);
        if marker.is_none() {
            return Ok(parts);
        }
    }
}

pub async fn complete_upload(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    command: Command,
    JsonBody(request): JsonBody<CompleteUpload>,
) -> Reply {
    let uploads = &state.uploads;
    let upload_id: UploadId = path_id("upload id", &id)?;
    let channel = request.channel_id.clone();
    require_poster(&state, &command, &channel, Mode::Optimistic).await?;
    let actor = &command.actor;
    let prefix = format!("{}/{channel}/{upload_id}/", actor.app_id);
    let pending = open_multiparts(uploads, &prefix).await?;
    if let Some((key, s3_upload)) = pending.first() {
        // The parts as the client reports them, or as S3 lists them (each part's size was bound by its signature,
        // and the whole is checked below): large files need not send thousands of ETags.
        let mut parts: Vec<(i32, String)> = if request.parts.is_empty() {
            uploaded_parts(uploads, key, s3_upload).await?
        } else {
            request
                .parts
                .iter()
                .map(|part| (i32::try_from(part.part_number).unwrap_or(i32::MAX), part.etag.clone()))
                .collect()
        };
        if parts.is_empty() {
            return Err(ApiError::unprocessable("parts_required", "no part of this multipart upload was uploaded yet"));
        }
        parts.sort_by_key(|(number, _)| *number);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|(number, etag)| S3CompletedPart::builder().part_number(*number).e_tag(etag).build())
                    .collect(),
            ))
            .build();
        let finished = uploads
            .client
            .complete_multipart_upload()
            .bucket(&uploads.bucket)
            .key(key)
            .upload_id(s3_upload)
            .multipart_upload(completed)
            .send()
            .await;
        if let Err(error) = finished {
            match error.as_service_error().and_then(|service| service.meta().code()) {
                // Missing, unknown, out-of-order or undersized parts: the client's to fix (the parts stay until it
                // does, or the upload is abandoned).
                Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "MalformedXML") => {
                    return Err(ApiError::unprocessable(
                        "invalid_parts",
                        format!(
                            "the parts do not complete the upload: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&error)
                        ),
                    ));
                }
                // Completed meanwhile (a concurrent retry) or aborted: whatever is stored decides below.
                Some("NoSuchUpload") => {}
                _ => return Err(ApiError::storage(aws_sdk_s3::error::DisplayErrorContext(&error))),
            }
        }
    }
    let Some(key) = stored_key(uploads, &prefix).await? else {
        return Err(ApiError::not_found(
            "upload_not_found",
            format!("nothing was uploaded for {upload_id} in {channel}"),
        ));
    };
    let head = match uploads.client.head_object().bucket(&uploads.bucket).key(&key).send().await {
        Ok(head) => head,
        // Deleted meanwhile (an abort): as if never uploaded.
        Err(error) if error.as_service_error().is_some_and(|service| service.is_not_found()) => {
            return Err(ApiError::not_found("upload_not_found", format!("nothing is stored for {upload_id} any more")));
        }
        Err(error) => return Err(ApiError::storage(aws_sdk_s3::error::DisplayErrorContext(&error))),
    };
    let metadata = head.metadata().cloned().unwrap_or_default();
    if !actor.is_server && metadata.get(META_UPLOADER).map(String::as_str) != Some(actor.user_id.as_str()) {
        return Err(ApiError::forbidden("not_the_uploader", "only the uploader completes an upload"));
    }
    let size = head.content_length().and_then(|length| u64::try_from(length).ok()).unwrap_or(0);
    let declared_size = metadata.get(META_SIZE).and_then(|size| size.parse::<u64>().ok());
    let content_type = head.content_type().unwrap_or_default().to_owned();
    let declared_type = media_type(&content_type).ok();
    if declared_size != Some(size) || declared_type.is_none() {
        let _best_effort = uploads.client.delete_object().bucket(&uploads.bucket).key(&key).send().await;
        return Err(ApiError::unprocessable(
            "upload_mismatch",
            format!("the upload has {size} bytes, {declared_size:?} were declared; it was deleted"),
        ));
    }
    let name = metadata
        .get(META_NAME)
        .map(|encoded| {
            form_urlencoded::parse(format!("n={encoded}").as_bytes())
                .map(|(_, value)| value.into_owned())
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or("file").to_owned());
    let attachment = Attachment { upload_id, object_key: key, name, content_type, size };
    let message = SendMessage {
        text: request.text.clone(),
        attachments: vec![attachment],
        parent_id: request.parent_id,
        client_msg_id: Some(request.client_msg_id.clone().unwrap_or_else(|| format!("upload-{upload_id}"))),
        ..SendMessage::default()
    };
    commands::send(&state, channel.as_str(), &command, message).await
}

/// `DELETE /v1/uploads/{id}?channel_id=`: aborts an upload not completed yet (its parts or object deleted).
pub async fn abort_upload(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    command: Command,
) -> Result<StatusCode, ApiError> {
    let channel = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "channel_id")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| ApiError::bad_request("invalid_parameter", "channel_id is required"))?;
    let channel: ChannelId =
        channel.parse().map_err(|error| ApiError::bad_request("invalid_parameter", format!("channel_id: {error}")))?;
    let uploads = &state.uploads;
    let upload_id: UploadId = path_id("upload id", &id)?;
    // Strict: the caller's own completion (their `min_position`) is in the read model before it is consulted.
    require_poster(&state, &command, &channel, Mode::Strict).await?;
    let actor = &command.actor;
    let prefix = format!("{}/{channel}/{upload_id}/", actor.app_id);
    if state.read.upload_attached(&actor.app_id, upload_id).await? {
        return Err(ApiError::conflict("upload_completed", "the upload is part of a message; delete the message"));
    }
    let mut found = false;
    for (key, s3_upload) in open_multiparts(uploads, &prefix).await? {
        found = true;
        uploads
            .client
            .abort_multipart_upload()
            .bucket(&uploads.bucket)
            .key(key)
            .upload_id(s3_upload)
            .send()
            .await
            .map_err(ApiError::storage)?;
    }
    if let Some(key) = stored_key(uploads, &prefix).await? {
        found = true;
        let head =
            uploads.client.head_object().bucket(&uploads.bucket).key(&key).send().await.map_err(ApiError::storage)?;
        let uploader = head.metadata().and_then(|metadata| metadata.get(META_UPLOADER).cloned());
        if !actor.is_server && uploader.as_deref() != Some(actor.user_id.as_str()) {
            return Err(ApiError::forbidden("not_the_uploader", "only the uploader aborts an upload"));
        }
        uploads.client.delete_object().bucket(&uploads.bucket).key(&key).send().await.map_err(ApiError::storage)?;
    }
    if !found {
        return Err(ApiError::not_found("upload_not_found", format!("no upload {upload_id} in {channel}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------------------------------------ sweeper

/// Aborts multipart uploads left incomplete for `abandon_after_secs` (their parts are billed storage), every
/// `sweep_interval_secs`. Every node may run it: aborting twice is harmless. Production buckets also have a
/// lifecycle rule for this (infra).
pub async fn sweep(uploads: Uploads) {
    if uploads.config.sweep_interval_secs == 0 {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(uploads.config.sweep_interval_secs));
    loop {
        ticks.tick().await;
        match sweep_once(&uploads, "").await {
            Ok(0) => {}
            Ok(aborted) => tracing::info!(aborted, "abandoned multipart uploads aborted"),
            Err(error) => tracing::warn!(error = %error, "sweeping multipart uploads failed"),
        }
    }
}

/// One pass over the open multipart uploads under `prefix` (`""`: the whole bucket); returns how many it aborted.
pub async fn sweep_once(uploads: &Uploads, prefix: &str) -> Result<usize, ApiError> {
    let cutoff = std::time::SystemTime::now() - Duration::from_secs(uploads.config.abandon_after_secs);
    let mut aborted = 0;
    let (mut key_marker, mut upload_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let listed = uploads
            .client
            .list_multipart_uploads()
            .bucket(&uploads.bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(upload_marker.clone())
            .send()
            .await
            .map_err(ApiError::storage)?;
        for upload in listed.uploads() {
            let started = upload.initiated().and_then(|time| std::time::SystemTime::try_from(*time).ok());
            if started.is_none_or(|started| started > cutoff) {
                continue;
            }
            let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else { continue };
            let outcome =
                uploads.client.abort_multipart_upload().bucket(&uploads.bucket).key(key).upload_id(id).send().await;
            match outcome {
                Ok(_) => aborted += 1,
                // Another node's sweeper (or a completion) got there first.
                Err(error)
                    if error.as_service_error().and_then(|service| service.meta().code()) == Some("NoSuchUpload") => {}
                Err(error) => return Err(ApiError::storage(aws_sdk_s3::error::DisplayErrorContext(&error))),
            }
        }
        if listed.is_truncated() != Some(true) {
            return Ok(aborted);
        }
        key_marker = listed.next_key_marker().map(str::to_owned);
        upload_marker = listed.next_upload_id_marker().map(str::to_owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_keep_only_the_last_safe_component() {
        assert_eq!(key_name("../../etc/passwd"), "passwd");
        assert_eq!(key_name("C:\\Users\\me\\photo 1.png"), "photo_1.png");
        assert_eq!(key_name(".hidden"), "hidden");
        assert_eq!(key_name("../.."), "file");
        assert_eq!(key_name("ünïcødé.txt"), "_n_c_d_.txt");
        assert_eq!(key_name("report..v2....pdf"), "report.v2.pdf");
        let long = format!("{}.jpeg", "a".repeat(300));
        assert_eq!(key_name(&long).len(), 100);
        assert!(key_name(&long).ends_with(".jpeg"));
    }

    #[test]
    fn media_types_are_checked_and_lowercased() {
        assert_eq!(media_type("Image/PNG").ok().as_deref(), Some("image/png"));
        assert!(media_type("image").is_err());
        assert!(media_type("text/html; charset=utf-8").is_err());
        assert!(media_type("a/b/c").is_err());
    }

    #[test]
    fn limits_follow_the_type_family_and_the_allow_list() {
        let limits =
            UploadLimits { allowed_types: vec!["image/*".into(), "application/pdf".into()], ..UploadLimits::default() };
        assert_eq!(max_bytes(&limits, "image/png").ok(), Some(10_000_000));
        assert_eq!(max_bytes(&limits, "application/pdf").ok(), Some(50_000_000));
        assert!(matches!(max_bytes(&limits, "video/mp4"), Err(ApiError::UnsupportedMediaType(_))));
        assert_eq!(max_bytes(&UploadLimits::default(), "video/mp4").ok(), Some(100_000_000));
    }

    #[test]
    fn part_plans_respect_the_minimum_and_s3s_part_count() {
        assert_eq!(part_plan(100 * MIB, 8 * MIB), (8 * MIB, 13));
        assert_eq!(part_plan(8 * MIB, 8 * MIB), (8 * MIB, 1));
        let (size, count) = part_plan(5 * 1024 * 1024 * MIB, 8 * MIB);
        assert!(count <= MAX_PARTS && size % MIB == 0 && size * count >= 5 * 1024 * 1024 * MIB);
    }
}
