//! aws-sdk-s3 against the real S3-compatible server (garage) of the local stack: presigned PUT over plain
//! HTTP works, and the server verifies signatures and expiry.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use chatsdk_testkit::Stack;

fn object_key(label: &str) -> String {
    format!("tests/{label}/{}", uuid::Uuid::new_v4())
}

async fn presign_put(stack: &Stack, key: &str, presigning: PresigningConfig) -> PresignedRequest {
    let client = stack.s3.client().unwrap();
    client.put_object().bucket(&stack.s3.bucket).key(key).presigned(presigning).await.unwrap()
}

async fn http_put(url: &str, body: &'static [u8]) -> reqwest::StatusCode {
    http_put_with_reply(url, body).await.0
}

async fn http_put_with_reply(url: &str, body: &'static [u8]) -> (reqwest::StatusCode, String) {
    let response = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("S3 server unreachable: {error}; start it with `infra/local/stack up`"));
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

async fn object_exists(stack: &Stack, key: &str) -> bool {
    let client = stack.s3.client().unwrap();
    match client.head_object().bucket(&stack.s3.bucket).key(key).send().await {
        Ok(_) => true,
        Err(error) if error.as_service_error().is_some_and(|service| service.is_not_found()) => false,
        Err(error) => panic!("HeadObject failed: {error:?}"),
    }
}

#[tokio::test]
async fn presigned_put_uploads_over_plain_http() {
    let stack = Stack::from_env();
    let key = object_key("presigned-put");
    let body: &'static [u8] = b"hello from a presigned PUT";
    let request = presign_put(&stack, &key, PresigningConfig::expires_in(Duration::from_secs(300)).unwrap()).await;

    assert_eq!(http_put(request.uri(), body).await, reqwest::StatusCode::OK);

    let client = stack.s3.client().unwrap();
    let object = client.get_object().bucket(&stack.s3.bucket).key(&key).send().await.unwrap();
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.as_ref(), body);
}

#[tokio::test]
async fn tampered_presigned_url_is_rejected() {
    let stack = Stack::from_env();
    let key = object_key("tampered");
    let request = presign_put(&stack, &key, PresigningConfig::expires_in(Duration::from_secs(300)).unwrap()).await;
    let url = request.uri().to_owned();

    // Flip the last hex digit of the signature.
    let last = url.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let bad_signature = format!("{}{flipped}", &url[..url.len() - 1]);
    assert_eq!(http_put(&bad_signature, b"x").await, reqwest::StatusCode::FORBIDDEN);

    // Same signature, another object key.
    let other_key = url.replacen(&key, &object_key("elsewhere"), 1);
    assert_eq!(http_put(&other_key, b"x").await, reqwest::StatusCode::FORBIDDEN);

    assert!(!object_exists(&stack, &key).await, "a rejected upload left an object behind");
}

#[tokio::test]
async fn expired_presigned_url_is_rejected() {
    let stack = Stack::from_env();
    let signed_at = SystemTime::now() - Duration::from_secs(90);
    let presigned_at =
        |expires_in| PresigningConfig::builder().start_time(signed_at).expires_in(expires_in).build().unwrap();

    // Signed 90 s ago for 30 s: expired, without waiting for the clock.
    let expired_key = object_key("expired");
    let expired = presign_put(&stack, &expired_key, presigned_at(Duration::from_secs(30))).await;
    let (status, reply) = http_put_with_reply(expired.uri(), b"x").await;
    // AWS answers 403 "Request has expired", garage 400 "Date is too old": both refuse the upload.
    assert!(matches!(status.as_u16(), 400 | 403), "expired URL answered {status}: {reply}");
    assert!(!object_exists(&stack, &expired_key).await, "an expired URL created an object");

    // Control: signed at the same moment for 5 minutes, still valid, so the refusal above was the expiry.
    let valid_key = object_key("not-expired");
    let valid = presign_put(&stack, &valid_key, presigned_at(Duration::from_secs(300))).await;
    assert_eq!(http_put(valid.uri(), b"x").await, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn unsigned_put_is_rejected() {
    let stack = Stack::from_env();
    let endpoint = stack.s3.endpoint.clone().unwrap();
    let url = format!("{endpoint}/{}/{}", stack.s3.bucket, object_key("unsigned"));
    assert_eq!(http_put(&url, b"x").await, reqwest::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn readiness_probe_passes_with_the_stack_credentials() {
    let stack = Stack::from_env();
    let probe = stack.s3.readiness_probe(stack.s3.client().unwrap());
    probe.check().await.unwrap_or_else(|error| panic!("S3 of the stack: {error}"));
}

/// What direct uploads rely on: a presigned PUT signs the declared `Content-Length` and `Content-Type`, so the
/// server refuses a body of another size or another type under the same URL.
#[tokio::test]
async fn presigned_put_binds_the_declared_size_and_content_type() {
    let stack = Stack::from_env();
    let client = stack.s3.client().unwrap();
    let key = object_key("bound-put");
    let declared: &'static [u8] = b"\x89PNG fake image";
    let request = client
        .put_object()
        .bucket(&stack.s3.bucket)
        .key(&key)
        .content_type("image/png")
        .content_length(declared.len() as i64)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let put = |content_type: &'static str, body: &'static [u8]| {
        let url = request.uri().to_owned();
        async move {
            reqwest::Client::new()
                .put(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(put("text/html", declared).await, reqwest::StatusCode::FORBIDDEN, "another type");
    assert_eq!(put("image/png", b"\x89PNG a larger fake image").await, reqwest::StatusCode::FORBIDDEN, "another size");
    assert!(!object_exists(&stack, &key).await, "nothing stored by the refused attempts");
    assert_eq!(put("image/png", declared).await, reqwest::StatusCode::OK, "as declared");
    let head = client.head_object().bucket(&stack.s3.bucket).key(&key).send().await.unwrap();
    assert_eq!((head.content_length(), head.content_type()), (Some(declared.len() as i64), Some("image/png")));
}
