//! The Confluent-compatible schema registry (Apicurio locally): settings and readiness probe.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::ops::Probe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of the Confluent-compatible API, e.g. `http://127.0.0.1:18081/apis/ccompat/v7`.
    pub url: String,
    pub timeout_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:18081/apis/ccompat/v7".to_owned(), timeout_ms: 2_000 }
    }
}

impl RegistryConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Readiness: `GET /subjects` answers 200.
    pub fn readiness_probe(&self) -> anyhow::Result<Probe> {
        let client = reqwest::Client::builder().timeout(self.timeout()).build().context("building the HTTP client")?;
        let url = format!("{}/subjects", self.url.trim_end_matches('/'));
        Ok(Probe::new("registry", self.timeout(), move || {
            let request = client.get(&url);
            async move {
                request.send().await.context("GET /subjects")?.error_for_status().context("GET /subjects")?;
                Ok(())
            }
        }))
    }
}
