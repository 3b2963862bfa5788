//! S3 client setup (any S3-compatible endpoint; garage locally) and the readiness probe.

use std::time::Duration;

use anyhow::Context;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, IdentityCache, Region, SharedCredentialsProvider};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::ops::Probe;

/// The SDK's identity cache renews temporary credentials between this margin and half of it before they expire
/// (it jitters the stored expiry by up to half the buffer): presigned URLs signed with them (5-minute uploads,
/// 1-minute downloads by default) keep their whole stated life when they live at most 15 minutes. The price: a
/// failed renewal (an STS blip) fails S3 calls up to 15-30 minutes before the old credentials would have expired,
/// not seconds before; renewal is retried on the next call.
pub const TEMPORARY_CREDENTIALS_MARGIN: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Custom endpoint (garage, MinIO…); `None` or empty means AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Static credentials; both unset means AWS's default chain (environment, IRSA web identity on EKS,
    /// EKS Pod Identity or ECS, instance metadata).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Path-style URLs (`endpoint/bucket/key`), required by most local S3 servers.
    pub force_path_style: bool,
    /// Upper bound of one S3 call, retries included.
    pub operation_timeout_ms: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: Some("http://127.0.0.1:13900".to_owned()),
            region: "us-east-1".to_owned(),
            bucket: "chatsdk-local".to_owned(),
            access_key_id: None,
            secret_access_key: None,
            force_path_style: true,
            operation_timeout_ms: 5_000,
        }
    }
}

impl S3Config {
    pub fn client(&self) -> anyhow::Result<aws_sdk_s3::Client> {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_timeout(Duration::from_millis(self.operation_timeout_ms))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .force_path_style(self.force_path_style)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        // An empty endpoint (CHATSDK_S3__ENDPOINT="") means AWS, like an absent one.
        if let Some(endpoint) = self.endpoint.as_deref().filter(|endpoint| !endpoint.is_empty()) {
            builder = builder.endpoint_url(endpoint);
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(key_id), Some(secret)) => {
                builder = builder.credentials_provider(Credentials::new(
                    key_id,
                    secret.expose(),
                    None,
                    None,
                    "chatsdk-config",
                ));
            }
            (None, None) => {
                // Temporary credentials (IRSA's last an hour) also bound the presigned URLs signed with them: renew
                // them well before expiry (the SDK's default is 5-10 s), so a URL handed out now is not cut short by
                // its credentials expiring first.
                builder = builder
                    .credentials_provider(SharedCredentialsProvider::new(DefaultChain::new(self.region.clone())))
                    .identity_cache(IdentityCache::lazy().buffer_time(TEMPORARY_CREDENTIALS_MARGIN).build());
            }
            _ => anyhow::bail!("s3.access_key_id and s3.secret_access_key must be set together"),
        }
        Ok(aws_sdk_s3::Client::from_conf(builder.build()))
    }

    /// Readiness: `HeadBucket` on the configured bucket with the configured credentials.
    pub fn readiness_probe(&self, client: aws_sdk_s3::Client) -> Probe {
        let bucket = self.bucket.clone();
        Probe::new("s3", Duration::from_millis(self.operation_timeout_ms), move || {
            let request = client.head_bucket().bucket(&bucket);
            async move {
                request.send().await.map_err(aws_sdk_s3::Error::from).context("HeadBucket")?;
                Ok(())
            }
        })
    }
}

/// AWS's default credential chain, built on first use: building it is async and [`S3Config::client`] is not.
/// The SDK caches what it returns and asks again before expiry (web identity credentials last an hour).
#[derive(Debug)]
struct DefaultChain {
    region: String,
    chain: tokio::sync::OnceCell<DefaultCredentialsChain>,
}

impl DefaultChain {
    fn new(region: String) -> Self {
        Self { region, chain: tokio::sync::OnceCell::new() }
    }
}

impl ProvideCredentials for DefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| DefaultCredentialsChain::builder().region(Region::new(self.region.clone())).build())
                .await;
            chain.provide_credentials().await
        })
    }
}
