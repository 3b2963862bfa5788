//! Kafka client setup. Every producer is idempotent with acks=all and uses `murmur2_random`, so a key
//! lands in the same partition as with Java's default partitioner (DESIGN.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use serde::{Deserialize, Serialize};

use crate::ops::Probe;

use chatsdk_schemas::topics::CHANNEL_EVENTS;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub brokers: String,
    /// The partition count the channel topics were created with; a mismatch means channels moved.
    pub partitions: u32,
    /// Upper bound for a produce to be acknowledged (librdkafka `message.timeout.ms`); past it the
    /// command API answers 503.
    pub delivery_timeout_ms: u64,
    /// Consumer group session timeout.
    pub session_timeout_ms: u64,
    /// Deadline of the readiness probe's metadata request.
    pub probe_timeout_ms: u64,
    /// Extra librdkafka properties (TLS, SASL for MSK, …), applied last.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".to_owned(),
            partitions: 12,
            delivery_timeout_ms: 5_000,
            session_timeout_ms: 30_000,
            probe_timeout_ms: 2_000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    fn base(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            // Fail fast on a dead broker instead of retrying a connection for minutes.
            .set("socket.connection.setup.timeout.ms", "5000")
            .set("reconnect.backoff.max.ms", "2000");
        config
    }

    fn apply_overrides(&self, config: &mut ClientConfig) {
        for (key, value) in &self.properties {
            config.set(key, value);
        }
    }

    /// Idempotent producer: acks=all, at most 5 in flight (ordering kept by idempotence), murmur2_random.
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = self.base(client_id);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string())
            .set("request.timeout.ms", self.delivery_timeout_ms.min(30_000).to_string())
            .set("linger.ms", "2")
            .set("compression.type", "lz4");
        self.apply_overrides(&mut config);
        config
    }

    /// A consumer that never auto-commits: offsets are stored with the data (projector) or not at all.
    pub fn consumer_config(&self, client_id: &str, group_id: Option<&str>) -> ClientConfig {
        let mut config = self.base(client_id);
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set("enable.partition.eof", "false");
        if let Some(group) = group_id {
            config.set("group.id", group);
        }
        self.apply_overrides(&mut config);
        config
    }

    pub fn producer(&self, client_id: &str) -> anyhow::Result<FutureProducer> {
        self.producer_config(client_id).create().context("creating the Kafka producer")
    }

    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }

    /// Readiness: the broker answers a metadata request for the event topic, which exists with the
    /// configured partition count. Runs on a dedicated metadata client in a blocking thread.
    pub fn readiness_probe(&self, client_id: &str) -> anyhow::Result<Probe> {
        let client: BaseConsumer =
            self.consumer_config(client_id, None).create().context("creating the Kafka metadata client")?;
        let client = Arc::new(client);
        let expected_partitions = self.partitions;
        let timeout = self.probe_timeout();
        Ok(Probe::new("kafka", timeout + Duration::from_millis(500), move || {
            let client = Arc::clone(&client);
            async move {
                tokio::task::spawn_blocking(move || check_topic(&client, CHANNEL_EVENTS, expected_partitions, timeout))
                    .await
                    .context("kafka probe task")?
            }
        }))
    }
}

/// The partitions of `topic` (blocks up to `timeout` on a metadata request: call it on a blocking thread).
pub fn partitions_of(consumer: &impl Consumer, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout).context("fetching the topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|candidate| candidate.name() == topic && candidate.error().is_none())
        .flat_map(|candidate| candidate.partitions().iter().map(|partition| partition.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions (does it exist?)");
    Ok(partitions)
}

fn check_topic(client: &BaseConsumer, topic: &str, expected_partitions: u32, timeout: Duration) -> anyhow::Result<()> {
    let metadata = client.fetch_metadata(Some(topic), timeout).context("fetching metadata")?;
    let found = metadata.topics().iter().find(|candidate| candidate.name() == topic);
    let Some(found) = found else { anyhow::bail!("topic {topic} missing") };
    if let Some(error) = found.error() {
        anyhow::bail!("topic {topic}: {error:?}");
    }
    let partitions = found.partitions().len();
    if partitions != expected_partitions as usize {
        anyhow::bail!("topic {topic} has {partitions} partitions, configured {expected_partitions}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_idempotent_with_acks_all_and_java_compatible_partitioner() {
        let config = KafkaConfig::default().producer_config("test");
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("partitioner"), Some("murmur2_random"));
    }

    #[test]
    fn overrides_apply_last_so_msk_auth_can_be_configured() {
        let mut kafka = KafkaConfig::default();
        kafka.properties.insert("security.protocol".to_owned(), "SASL_SSL".to_owned());
        kafka.properties.insert("linger.ms".to_owned(), "20".to_owned());
        let config = kafka.producer_config("test");
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("linger.ms"), Some("20"));
    }

    const MSK_SECRET_FILE: &str = "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
                                   \"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"chatsdk\"\n\
                                   \"sasl.password\" = \"from-secrets-manager\"\n";

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Service {
        kafka: KafkaConfig,
    }

    // librdkafka's property names have dots, which the environment layer would read as nesting: in
    // production they come from the TOML file mounted from the secret (infra/k8s), as quoted keys.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures must return figment::Error
    fn msk_properties_with_dotted_names_load_from_the_mounted_secret_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("secrets.toml", MSK_SECRET_FILE)?;
            jail.set_env("CHATSDK_CONFIG", "secrets.toml");
            jail.set_env("CHATSDK_KAFKA__BROKERS", "b-1.example:9096,b-2.example:9096");
            let loaded: Service = crate::config::load(None).map_err(|error| figment::Error::from(error.to_string()))?;
            assert_eq!(loaded.kafka.brokers, "b-1.example:9096,b-2.example:9096");
            let config = loaded.kafka.producer_config("test");
            assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
            assert_eq!(config.get("sasl.password"), Some("from-secrets-manager"));
            Ok(())
        });
    }

    // MSK takes TLS only, with SASL/SCRAM: librdkafka refuses such a client at creation when it was built
    // without OpenSSL ("OpenSSL not available at build time").
    #[test]
    fn clients_for_msk_scram_over_tls_can_be_created() {
        let mut kafka = KafkaConfig::default();
        for (key, value) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "chatsdk"),
            ("sasl.password", "secret"),
        ] {
            kafka.properties.insert(key.to_owned(), value.to_owned());
        }
        let producer = kafka.producer("test");
        assert!(producer.is_ok(), "{:?}", producer.err());
        let consumer: Result<BaseConsumer, _> = kafka.consumer_config("test", Some("group")).create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }

    #[test]
    fn consumers_never_auto_commit() {
        let config = KafkaConfig::default().consumer_config("test", Some("group"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("group.id"), Some("group"));
    }
}
