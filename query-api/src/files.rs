//! `GET /v1/files/{upload_id}`: a file attached to a message, for whoever may read the message's channel — as a
//! redirect to a short-lived presigned `GET`, so no file byte passes through this service either.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatsdk_platform::api::error::ApiError;
use chatsdk_platform::api::parse::path_id;
use chatsdk_schemas::events::Attachment;
use chatsdk_schemas::ids::{ChannelId, UploadId};

use crate::AppState;
use crate::reads;
use crate::request::Read;

/// The object store the redirects point into.
#[derive(Debug, Clone)]
pub struct Files {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub url_ttl: Duration,
}

pub async fn download(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    read: Read,
) -> Result<Response, ApiError> {
    let upload: UploadId = path_id("upload id", &id)?;
    // Every message that names the upload (no LIMIT: with one, a generic plan prefers a sequential scan to
    // the GIN index). The file is the one stored under the upload's own prefix in the message's channel; a
    // message of another channel naming the same upload id cannot redirect to its own object.
    let rows = sqlx::query!(
        r#"SELECT channel_id, attachments, kafka_partition, kafka_offset FROM messages
           WHERE app_id = $1 AND attachments @> jsonb_build_array(jsonb_build_object('upload_id', $2::text))
             AND deleted_at IS NULL AND NOT purged"#,
        read.actor.app_id.as_str(),
        upload.to_string(),
    )
    .fetch_all(&state.pool)
    .await
    .map_err(|error| ApiError::database(&error))?;
    let not_found = || ApiError::not_found("file_not_found", format!("no file {upload}"));
    let found = rows
        .into_iter()
        .filter_map(|row| {
            let prefix = format!("{}/{}/{upload}/", read.actor.app_id, row.channel_id);
            let attachments: Vec<Attachment> = serde_json::from_value(row.attachments).ok()?;
            let attachment = attachments
                .into_iter()
                .find(|attachment| attachment.upload_id == upload && attachment.object_key.starts_with(&prefix))?;
            Some(((row.kafka_partition, row.kafka_offset), row.channel_id, attachment))
        })
        .min_by_key(|(position, _, _)| *position);
    let Some((_, channel, attachment)) = found else { return Err(not_found()) };
    let channel: ChannelId = channel.parse().map_err(|_| not_found())?;
    // The same rule as reading the channel's history: 403 for a channel the caller may not read.
    reads::reader(&state.pool, &read.actor, &channel).await?;
    let encoded_name: String =
        form_urlencoded::byte_serialize(attachment.name.as_bytes()).collect::<String>().replace('+', "%20");
    let files = &state.files;
    let presigning = PresigningConfig::expires_in(files.url_ttl)
        .map_err(|error| ApiError::Internal(format!("presigning: {error}")))?;
    let presigned = files
        .client
        .get_object()
        .bucket(&files.bucket)
        .key(&attachment.object_key)
        // Served as a download with its name, never rendered by the browser on the bucket's origin.
        .response_content_disposition(format!("attachment; filename*=UTF-8''{encoded_name}"))
        .response_content_type(&attachment.content_type)
        .presigned(presigning)
        .await
        .map_err(ApiError::storage)?;
    let location = HeaderValue::from_str(presigned.uri()).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"))],
    )
        .into_response())
}
