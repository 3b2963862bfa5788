//! Without static keys in its configuration the S3 client signs with AWS's default credential chain, which is
//! how it gets credentials on EKS (IRSA's web identity token, infra/k8s). Here the chain's first link, the
//! environment, against the local S3 server. The environment is process-wide (and setting it needs `unsafe`),
//! so the test runs its two cases in child processes of this test binary.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use chatsdk_testkit::Stack;

const TEST_NAME: &str = "client_without_static_keys_signs_with_the_default_credential_chain";
const CASE: &str = "CHATSDK_TEST_DEFAULT_CHAIN_CASE";

#[tokio::test]
async fn client_without_static_keys_signs_with_the_default_credential_chain() {
    let stack = Stack::from_env();
    let mut config = stack.s3.clone();
    let key_id = config.access_key_id.take().expect("the stack's S3 key (infra/local/stack env)");
    let secret = config.secret_access_key.take().expect("the stack's S3 secret (infra/local/stack env)");

    match std::env::var(CASE).as_deref() {
        Ok("with-environment-keys") => {
            let client = config.client().unwrap();
            client.head_bucket().bucket(&config.bucket).send().await.expect("HeadBucket signed with the chain's keys");
        }
        Ok("without-credentials") => {
            let client = config.client().unwrap();
            let outcome = client.head_bucket().bucket(&config.bucket).send().await;
            assert!(outcome.is_err(), "no credentials anywhere, yet HeadBucket succeeded");
        }
        _ => {
            for (case, keys) in [("with-environment-keys", true), ("without-credentials", false)] {
                let mut child = Command::new(std::env::current_exe().unwrap());
                child.args(["--exact", TEST_NAME, "--nocapture"]).env(CASE, case);
                // Nothing else may hand out credentials: no profile files, no instance metadata.
                child
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .env("AWS_CONFIG_FILE", "/nonexistent/chatsdk-test")
                    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/chatsdk-test")
                    .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
                    .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                    .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                    .env_remove("AWS_PROFILE");
                if keys {
                    child.env("AWS_ACCESS_KEY_ID", &key_id).env("AWS_SECRET_ACCESS_KEY", secret.expose());
                } else {
                    child.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
                }
                let output = child.output().unwrap();
                assert!(
                    output.status.success(),
                    "case {case} failed:\n{}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                // The child really ran the case (a filter matching nothing also exits 0).
                assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"), "case {case} did not run");
            }
        }
    }
}
