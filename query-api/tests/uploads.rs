//! Direct uploads against the real stack (garage for S3): presigned PUT and multipart uploads end as messages
//! members can download and others cannot; every refusal; aborting; the sweeper.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chatsdk_client::api::{CompleteUpload, CompletedPart, CreateUpload, UploadTicket};
use chatsdk_client::{Client, ClientError};
use chatsdk_schemas::ids::{ChannelId, UploadId};
use chatsdk_testkit::wait_for;
use common::{Harness, follow, group};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

fn upload(channel: &ChannelId, name: &str, size: u64, content_type: &str) -> CreateUpload {
    CreateUpload { channel_id: channel.clone(), name: name.to_owned(), size, content_type: content_type.to_owned() }
}

fn complete(channel: &ChannelId) -> CompleteUpload {
    CompleteUpload {
        channel_id: channel.clone(),
        parts: Vec::new(),
        text: String::new(),
        parent_id: None,
        client_msg_id: None,
    }
}

/// Deterministic bytes: byte `i` of a file is a function of `i`, so any slice can be made on the fly.
fn bytes(from: u64, length: u64) -> Vec<u8> {
    (from..from + length).map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// PUTs `body` to a single-PUT ticket with its signed headers; the S3 status.
async fn put(ticket: &UploadTicket, body: Vec<u8>) -> u16 {
    ticket.put.as_ref().unwrap().request(&reqwest::Client::new(), body).send().await.unwrap().status().as_u16()
}

/// The same with another `Content-Type` than the signed one.
async fn put_as(ticket: &UploadTicket, content_type: &str, body: Vec<u8>) -> u16 {
    let presigned = ticket.put.as_ref().unwrap();
    let mut request = reqwest::Client::new().put(&presigned.url).body(body);
    for (name, value) in &presigned.headers {
        // reqwest sets Content-Length from the body itself.
        if name == "content-length" {
            continue;
        }
        request = request.header(name, if name == "content-type" { content_type } else { value });
    }
    request.send().await.unwrap().status().as_u16()
}

/// Uploads every part of a multipart ticket (all but `skip`) and returns them with their ETags.
async fn put_parts(ticket: &UploadTicket, skip: Option<u32>) -> Vec<CompletedPart> {
    let multipart = ticket.multipart.as_ref().unwrap();
    let mut parts = Vec::new();
    for part in &multipart.parts {
        if Some(part.part_number) == skip {
            continue;
        }
        let from = u64::from(part.part_number - 1) * multipart.part_size;
        let response = reqwest::Client::new().put(&part.url).body(bytes(from, part.size)).send().await.unwrap();
        assert_eq!(response.status(), 200, "part {}", part.part_number);
        let etag = response.headers().get("etag").unwrap().to_str().unwrap().to_owned();
        parts.push(CompletedPart { part_number: part.part_number, etag });
    }
    parts
}

fn code(error: ClientError) -> (u16, String) {
    match error {
        ClientError::Api { status, code, .. } => (status.as_u16(), code),
        other => panic!("not an API error: {other}"),
    }
}

/// Downloads through the query API's redirect; the body and the `Content-Disposition`.
async fn download(client: &Client, upload: &UploadId) -> (Vec<u8>, String) {
    let url = client.file_url(upload).await.unwrap();
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let disposition = response.headers().get("content-disposition").unwrap().to_str().unwrap().to_owned();
    (response.bytes().await.unwrap().to_vec(), disposition)
}

#[tokio::test]
async fn a_presigned_put_becomes_a_message_that_members_download_and_others_cannot() {
    let harness = Harness::start(1).await;
    let (ann, bob, cat) = (harness.user("ann", 0), harness.user("bob", 0), harness.user("cat", 0));
    let channel = group(&ann, &["bob"]).await;
    let body = bytes(0, 300_000);
    let ticket = ann.create_upload(&upload(&channel, "../../Holiday photo.png", 300_000, "image/png")).await.unwrap();
    assert!(ticket.multipart.is_none());
    let (_, document) = harness.get(0, "/v1/openapi.json", &[]).await;
    common::assert_valid(&document, "UploadTicket", &serde_json::to_value(&ticket).unwrap());
    let signed: Vec<&str> = ticket.put.as_ref().unwrap().headers.keys().map(String::as_str).collect();
    for header in ["content-type", "x-amz-meta-uploader", "x-amz-meta-declared-size", "x-amz-meta-name"] {
        assert!(signed.contains(&header), "{header} is not among the headers to send: {signed:?}");
    }
    let prefix = format!("{}/{channel}/{}/", harness.commands.app.app_id, ticket.upload_id);
    assert_eq!(ticket.object_key, format!("{prefix}Holiday_photo.png"), "the name cannot leave the upload's prefix");
    assert_eq!(put(&ticket, body.clone()).await, 200);

    let mut request = complete(&channel);
    request.text = "from the beach".to_owned();
    let accepted = ann.complete_upload(&ticket.upload_id, &request).await.unwrap();
    // A retried completion posts nothing new.
    let again = ann.complete_upload(&ticket.upload_id, &request).await.unwrap();
    assert_eq!((again.message_id, again.duplicate), (accepted.message_id, true));

    follow(&bob, &ann);
    let history = bob.history(&channel, &[]).await.unwrap();
    let message = history.messages.iter().find(|message| Some(message.message_id) == accepted.message_id).unwrap();
    assert_eq!(message.text, "from the beach");
    let attachment = &message.attachments[0];
    assert_eq!(
        (attachment.name.as_str(), attachment.size, attachment.content_type.as_str()),
        ("../../Holiday photo.png", 300_000, "image/png")
    );
    let (downloaded, disposition) = download(&bob, &ticket.upload_id).await;
    assert!(downloaded == body, "the downloaded bytes are the uploaded ones");
    assert!(disposition.starts_with("attachment;"), "{disposition}");

    follow(&cat, &ann);
    assert_eq!(code(cat.file_url(&ticket.upload_id).await.unwrap_err()), (403, "not_a_member".to_owned()));
    let unknown = UploadId::from_uuid(uuid::Uuid::now_v7());
    assert_eq!(code(bob.file_url(&unknown).await.unwrap_err()), (404, "file_not_found".to_owned()));
    harness.stop().await;
}

#[tokio::test]
async fn a_multipart_upload_over_100_mb_becomes_a_downloadable_message() {
    // Limits are configurable beyond the 100 MB video default.
    let harness =
        Harness::start_adjusted(1, |config| config.uploads.limits.max_video_bytes = 200_000_000, |_| {}).await;
    let (ann, bob) = (harness.user("ann", 0), harness.user("bob", 0));
    let channel = group(&ann, &["bob"]).await;
    let size = 105 * MIB;
    let ticket = ann.create_upload(&upload(&channel, "talk.mp4", size, "video/mp4")).await.unwrap();
    let multipart = ticket.multipart.as_ref().unwrap();
    assert!(ticket.put.is_none() && multipart.parts.len() >= 2);
    let (_, document) = harness.get(0, "/v1/openapi.json", &[]).await;
    common::assert_valid(&document, "UploadTicket", &serde_json::to_value(&ticket).unwrap());
    assert_eq!(multipart.parts.iter().map(|part| part.size).sum::<u64>(), size);
    let mut request = complete(&channel);
    request.parts = put_parts(&ticket, None).await;
    let accepted = ann.complete_upload(&ticket.upload_id, &request).await.unwrap();
    assert!(accepted.message_id.is_some());

    follow(&bob, &ann);
    let url = bob.file_url(&ticket.upload_id).await.unwrap();
    let mut response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut received, mut digest) = (0_u64, Sha256::new());
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len() as u64;
        digest.update(&chunk);
    }
    let mut expected = Sha256::new();
    let mut at = 0;
    while at < size {
        let length = (8 * MIB).min(size - at);
        expected.update(bytes(at, length));
        at += length;
    }
    assert_eq!(received, size);
    assert_eq!(digest.finalize(), expected.finalize(), "the downloaded file is the uploaded one");
    harness.stop().await;
}

#[tokio::test]
async fn refused_uploads_get_clear_codes_and_leave_nothing_behind() {
    let harness = Harness::start(1).await;
    let (ann, cat) = (harness.user("ann", 0), harness.user("cat", 0));
    let channel = group(&ann, &[]).await;
    let other = group(&ann, &[]).await;
    let refused = |request: CreateUpload| {
        let ann = ann.clone();
        async move { code(ann.create_upload(&request).await.unwrap_err()) }
    };
    assert_eq!(refused(upload(&channel, "big.png", 20_000_000, "image/png")).await, (413, "file_too_large".to_owned()));
    assert_eq!(refused(upload(&channel, "a", 10, "not a type")).await, (422, "invalid_content_type".to_owned()));
    assert_eq!(refused(upload(&channel, " ", 10, "text/plain")).await, (422, "invalid_name".to_owned()));
    assert_eq!(refused(upload(&channel, "a", 0, "text/plain")).await, (422, "empty_file".to_owned()));
    let not_member = cat.create_upload(&upload(&channel, "a.txt", 10, "text/plain")).await.unwrap_err();
    assert_eq!(code(not_member), (403, "not_a_member".to_owned()));

    // The presigned PUT takes only what was declared; a tampered URL nothing.
    let ticket = ann.create_upload(&upload(&channel, "notes.txt", 11, "text/plain")).await.unwrap();
    assert_eq!(put_as(&ticket, "text/html", b"hello world".to_vec()).await, 403, "another content type");
    let mut longer = ticket.clone();
    assert_eq!(put(&longer, b"hello world, and more".to_vec()).await, 403, "another size");
    if let Some(put) = longer.put.as_mut() {
        put.url = put.url.replacen("X-Amz-Signature=", "X-Amz-Signature=0", 1);
    }
    assert_eq!(put(&longer, b"hello world".to_vec()).await, 403, "a tampered signature");
    // Nothing stored yet: completing is a 404, also from another channel once it is.
    assert_eq!(
        code(ann.complete_upload(&ticket.upload_id, &complete(&channel)).await.unwrap_err()),
        (404, "upload_not_found".to_owned())
    );
    assert_eq!(put(&ticket, b"hello world".to_vec()).await, 200);
    assert_eq!(
        code(ann.complete_upload(&ticket.upload_id, &complete(&other)).await.unwrap_err()),
        (404, "upload_not_found".to_owned())
    );

    // A multipart upload completed without one of its parts is shorter than declared: refused and deleted.
    let ticket = ann.create_upload(&upload(&channel, "clip.mp4", 40 * MIB, "video/mp4")).await.unwrap();
    let parts_count = ticket.multipart.as_ref().unwrap().parts.len() as u32;
    let mut request = complete(&channel);
    assert_eq!(
        code(ann.complete_upload(&ticket.upload_id, &request).await.unwrap_err()),
        (422, "parts_required".to_owned())
    );
    request.parts = put_parts(&ticket, Some(parts_count)).await;
    assert_eq!(
        code(ann.complete_upload(&ticket.upload_id, &request).await.unwrap_err()),
        (422, "upload_mismatch".to_owned())
    );
    let s3 = harness.commands.stack.s3.client().unwrap();
    let left = s3.head_object().bucket(&harness.commands.stack.s3.bucket).key(&ticket.object_key).send().await;
    assert!(left.is_err(), "the mismatched object was deleted");

    // Completing without listing the parts: the service asks S3 for them (large files need not send thousands).
    let ticket = ann.create_upload(&upload(&channel, "whole.mp4", 40 * MIB, "video/mp4")).await.unwrap();
    put_parts(&ticket, None).await;
    assert!(ann.complete_upload(&ticket.upload_id, &complete(&channel)).await.unwrap().message_id.is_some());

    // A plain send cannot borrow an upload id for another object (the id names its own object only).
    let borrowed = chatsdk_schemas::events::Attachment {
        upload_id: ticket.upload_id,
        object_key: format!(
            "{}/{other}/{}/whole.mp4",
            harness.commands.app.app_id,
            UploadId::from_uuid(uuid::Uuid::now_v7())
        ),
        name: "contract.pdf".to_owned(),
        content_type: "application/pdf".to_owned(),
        size: 10,
    };
    let send = chatsdk_client::api::SendMessage {
        attachments: vec![borrowed],
        ..chatsdk_client::api::SendMessage::text("see")
    };
    assert_eq!(code(ann.send_message(&other, &send).await.unwrap_err()), (422, "invalid_attachment".to_owned()));
    harness.stop().await;
}

#[tokio::test]
async fn aborting_deletes_an_uncompleted_upload_but_not_a_posted_one() {
    let harness = Harness::start(1).await;
    let ann = harness.user("ann", 0);
    let channel = group(&ann, &[]).await;
    let (s3, bucket) = (harness.commands.stack.s3.client().unwrap(), harness.commands.stack.s3.bucket.clone());
    let open_parts = |prefix: String| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move { s3.list_multipart_uploads().bucket(bucket).prefix(prefix).send().await.unwrap().uploads().len() }
    };

    let ticket = ann.create_upload(&upload(&channel, "big.bin", 40 * MIB, "application/octet-stream")).await.unwrap();
    let prefix = format!("{}/{channel}/{}/", harness.commands.app.app_id, ticket.upload_id);
    assert_eq!(open_parts(prefix.clone()).await, 1);
    ann.abort_upload(&ticket.upload_id, &channel).await.unwrap();
    assert_eq!(open_parts(prefix).await, 0, "the multipart upload and its parts are gone");

    let ticket = ann.create_upload(&upload(&channel, "small.txt", 5, "text/plain")).await.unwrap();
    assert_eq!(put(&ticket, b"hello".to_vec()).await, 200);
    ann.abort_upload(&ticket.upload_id, &channel).await.unwrap();
    assert!(s3.head_object().bucket(&bucket).key(&ticket.object_key).send().await.is_err(), "the object is gone");
    assert_eq!(
        code(ann.abort_upload(&ticket.upload_id, &channel).await.unwrap_err()),
        (404, "upload_not_found".to_owned())
    );

    let ticket = ann.create_upload(&upload(&channel, "kept.txt", 4, "text/plain")).await.unwrap();
    assert_eq!(put(&ticket, b"kept".to_vec()).await, 200);
    ann.complete_upload(&ticket.upload_id, &complete(&channel)).await.unwrap();
    // The abort carries the caller's session: it sees the completion, whatever the projector's lag.
    let refused = code(ann.abort_upload(&ticket.upload_id, &channel).await.unwrap_err());
    assert_eq!(refused, (409, "upload_completed".to_owned()));
    harness.stop().await;
}

#[tokio::test]
async fn expired_urls_disallowed_types_and_abandoned_multipart_uploads() {
    let harness = Harness::start_adjusted(
        1,
        |config| {
            config.uploads.url_ttl_secs = 1;
            config.uploads.limits.allowed_types = vec!["image/*".to_owned(), "video/*".to_owned()];
        },
        |_| {},
    )
    .await;
    let ann = harness.user("ann", 0);
    let channel = group(&ann, &[]).await;
    let refused = ann.create_upload(&upload(&channel, "doc.pdf", 10, "application/pdf")).await.unwrap_err();
    assert_eq!(code(refused), (415, "unsupported_type".to_owned()));

    let ticket = ann.create_upload(&upload(&channel, "late.png", 4, "image/png")).await.unwrap();
    // AWS answers 403, garage 400 "Date is too old": both refuse.
    wait_for("the URL expired", Duration::from_secs(20), || async {
        matches!(put(&ticket, b"late".to_vec()).await, 400 | 403).then_some(())
    })
    .await;

    let ticket = ann.create_upload(&upload(&channel, "left.mp4", 40 * MIB, "video/mp4")).await.unwrap();
    let prefix = format!("{}/{channel}/{}/", harness.commands.app.app_id, ticket.upload_id);
    let (s3, bucket) = (harness.commands.stack.s3.client().unwrap(), harness.commands.stack.s3.bucket.clone());
    let open =
        || async { s3.list_multipart_uploads().bucket(&bucket).prefix(&prefix).send().await.unwrap().uploads().len() };
    assert_eq!(open().await, 1);
    // A sweep that abandons nothing younger than an hour keeps it; one that abandons at once aborts it. (Scoped
    // to this test's upload: the bucket is shared with tests running meanwhile.)
    let sweeper = |abandon_after_secs| {
        let config = command_api::config::UploadsConfig { abandon_after_secs, ..Default::default() };
        command_api::uploads::Uploads::new(s3.clone(), &bucket, config)
    };
    assert_eq!(command_api::uploads::sweep_once(&sweeper(3_600), &prefix).await.unwrap(), 0);
    assert_eq!(open().await, 1);
    assert_eq!(command_api::uploads::sweep_once(&sweeper(0), &prefix).await.unwrap(), 1);
    assert_eq!(open().await, 0);
    harness.stop().await;
}
