//! Events in Confluent wire format through the schema registry: magic byte 0, the schema id as a big-endian
//! `u32`, then the JSON document.
//!
//! - [`EventEncoder`] validates an event against its schema file (the source of truth), registers the file
//!   under `TopicRecordNameStrategy` once, and frames it. After the first event of a type the hot path makes
//!   no registry call: ids are cached.
//! - [`EventDecoder`] reads the framing, fetches the writer's schema by id (cached after the first time),
//!   validates, and gives back either the JSON value (for any consumer) or a typed [`Envelope`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use schema_registry_converter::async_impl::json::JsonDecoder;
use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use serde_json::Value;

use crate::catalog::{SCHEMA_FILES, SchemaFile, schema_file};
use crate::events::{Envelope, EventError, EventType};

/// The compatibility rule set on every event subject: a new schema must read every older event.
pub const COMPATIBILITY: &str = "BACKWARD_TRANSITIVE";

const MAGIC_BYTE: u8 = 0;
const HEADER_LEN: usize = 5;

/// Where the registry is and how long a call to it may take.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Base URL of the Confluent-compatible API, e.g. `http://127.0.0.1:18081/apis/ccompat/v7`.
    pub url: String,
    pub timeout: Duration,
}

impl RegistrySettings {
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        Self { url: url.into().trim_end_matches('/').to_owned(), timeout }
    }

    fn sr_settings(&self) -> Result<SrSettings, RegistryError> {
        SrSettings::new_builder(self.url.clone())
            .set_timeout(self.timeout)
            .build()
            .map_err(|error| RegistryError::Unavailable(error.to_string()))
    }
}

/// A failure talking to the registry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or failed: retry later.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry refused a schema, e.g. because it breaks compatibility with earlier versions.
    #[error("schema registry rejected {subject}: {message}")]
    Rejected { subject: String, message: String },
}

impl RegistryError {
    fn from_src(subject: &str, error: &SRCError) -> Self {
        let message = describe(error);
        if error.retriable || !message.contains("status 4") {
            Self::Unavailable(message)
        } else {
            Self::Rejected { subject: subject.to_owned(), message }
        }
    }
}

fn describe(error: &SRCError) -> String {
    match &error.cause {
        Some(cause) => format!("{}: {cause}", error.error),
        None => error.error.clone(),
    }
}

/// Why an event was not encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("no schema file for {event_type} version {version}")]
    NoSchema { event_type: &'static str, version: u32 },
    #[error("{event_type} event violates its schema: {message}")]
    SchemaViolation { event_type: &'static str, message: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Why bytes from Kafka are not an event. Everything but [`DecodeError::RegistryUnavailable`] is permanent:
/// the projector sends such a record to the dead-letter topic. A registry outage is retried instead.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not Confluent wire format: {0}")]
    NotConfluentFraming(&'static str),
    #[error("schema id {0} is unknown to the registry")]
    UnknownSchemaId(u32),
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    #[error("payload is not JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("event violates its schema {schema_id}: {message}")]
    SchemaViolation { schema_id: u32, message: String },
    #[error(transparent)]
    Event(#[from] EventError),
}

impl DecodeError {
    /// Whether the same bytes may decode later (only when the registry was unreachable).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::RegistryUnavailable(_))
    }
}

/// The outcome of one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub subject: String,
    pub schema_id: u32,
}

/// Registers schema files and encodes events. Cheap to share: clone the `Arc` you keep it in.
pub struct EventEncoder {
    settings: SrSettings,
    registry: RegistrySettings,
    http: reqwest::Client,
    topic: String,
    validators: HashMap<(EventType, u32), jsonschema::Validator>,
    schema_ids: RwLock<HashMap<(EventType, u32), u32>>,
    /// One registration at a time per process: concurrent first registrations of a subject race inside
    /// the registry (Apicurio answers one of them with an error).
    registering: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EventEncoder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("EventEncoder").field("registry", &self.registry).field("topic", &self.topic).finish()
    }
}

impl EventEncoder {
    /// Compiles every schema file (a malformed file fails here, at start) for events on `topic`.
    pub fn new(registry: RegistrySettings, topic: impl Into<String>) -> Result<Self, RegistryError> {
        let mut validators = HashMap::new();
        for file in SCHEMA_FILES {
            let event_type: EventType = file.event_type.parse().map_err(|error: EventError| {
                RegistryError::Rejected { subject: file.file_name(), message: error.to_string() }
            })?;
            let schema = parse_schema(file)?;
            let validator = jsonschema::validator_for(&schema)
                .map_err(|error| RegistryError::Rejected { subject: file.file_name(), message: error.to_string() })?;
            validators.insert((event_type, file.version), validator);
        }
        let http = reqwest::Client::builder()
            .timeout(registry.timeout)
            .build()
            .map_err(|error| RegistryError::Unavailable(error.to_string()))?;
        Ok(Self {
            settings: registry.sr_settings()?,
            registry,
            http,
            topic: topic.into(),
            validators,
            schema_ids: RwLock::new(HashMap::new()),
            registering: tokio::sync::Mutex::new(()),
        })
    }

    /// Registers every schema file (idempotent: an identical schema keeps its id) and sets
    /// [`COMPATIBILITY`] on each subject. Run at deployment or service start.
    pub async fn register_all(&self) -> Result<Vec<Registration>, RegistryError> {
        let _one_at_a_time = self.registering.lock().await;
        let mut registrations = Vec::with_capacity(SCHEMA_FILES.len());
        for file in SCHEMA_FILES {
            registrations.push(self.register(file).await?);
        }
        Ok(registrations)
    }

    async fn register(&self, file: &SchemaFile) -> Result<Registration, RegistryError> {
        let subject = file.subject(&self.topic);
        // Look up first: re-posting an older version once a newer one exists is checked against the newer
        // one by Apicurio and refused, although the schema is already registered.
        let schema_id = match self.lookup(&subject, file).await? {
            Some(schema_id) => schema_id,
            None => {
                let supplied = SuppliedSchema::new(Some(file.record_name()), SchemaType::Json, file.source.to_owned());
                post_schema(&self.settings, subject.clone(), supplied)
                    .await
                    .map_err(|error| RegistryError::from_src(&subject, &error))?
                    .id
            }
        };
        self.set_compatibility(&subject).await?;
        if let Ok(event_type) = file.event_type.parse::<EventType>()
            && let Ok(mut ids) = self.schema_ids.write()
        {
            ids.insert((event_type, file.version), schema_id);
        }
        Ok(Registration { subject, schema_id })
    }

    /// The id of `file` if it is already registered under `subject` (`POST /subjects/{subject}`).
    async fn lookup(&self, subject: &str, file: &SchemaFile) -> Result<Option<u32>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Found {
            id: u32,
        }
        let url = format!("{}/subjects/{}", self.registry.url, subject);
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": file.source, "schemaType": "JSON" }))
            .send()
            .await
            .map_err(|error| RegistryError::Unavailable(format!("POST {url}: {error}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(RegistryError::Unavailable(format!("POST {url}: {status} {body}")));
        }
        let found: Found =
            response.json().await.map_err(|error| RegistryError::Unavailable(format!("POST {url}: {error}")))?;
        Ok(Some(found.id))
    }

    async fn set_compatibility(&self, subject: &str) -> Result<(), RegistryError> {
        let url = format!("{}/config/{}", self.registry.url, subject);
        let response = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "compatibility": COMPATIBILITY }))
            .send()
            .await
            .map_err(|error| RegistryError::Unavailable(format!("PUT {url}: {error}")))?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_server_error() {
            return Err(RegistryError::Unavailable(format!("PUT {url}: {status} {body}")));
        }
        Err(RegistryError::Rejected { subject: subject.to_owned(), message: format!("{status} {body}") })
    }

    /// Validates `envelope` against its schema file and frames it with the registered schema id.
    pub async fn encode(&self, envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
        let event_type = envelope.event_type();
        let key = (event_type, envelope.version);
        let Some(validator) = self.validators.get(&key) else {
            return Err(EncodeError::NoSchema { event_type: event_type.as_str(), version: envelope.version });
        };
        let value = envelope.to_value();
        if let Err(error) = validator.validate(&value) {
            return Err(EncodeError::SchemaViolation {
                event_type: event_type.as_str(),
                message: format!("{error} at {}", error.instance_path()),
            });
        }
        let schema_id = self.schema_id(event_type, envelope.version).await?;
        Ok(frame(schema_id, &value))
    }

    async fn schema_id(&self, event_type: EventType, version: u32) -> Result<u32, RegistryError> {
        let cached = || self.schema_ids.read().ok().and_then(|ids| ids.get(&(event_type, version)).copied());
        if let Some(id) = cached() {
            return Ok(id);
        }
        let _one_at_a_time = self.registering.lock().await;
        if let Some(id) = cached() {
            return Ok(id);
        }
        let Some(file) = schema_file(event_type, version) else {
            return Err(RegistryError::Rejected {
                subject: event_type.as_str().to_owned(),
                message: format!("no schema file for version {version}"),
            });
        };
        Ok(self.register(file).await?.schema_id)
    }
}

fn parse_schema(file: &SchemaFile) -> Result<Value, RegistryError> {
    serde_json::from_str(file.source)
        .map_err(|error| RegistryError::Rejected { subject: file.file_name(), message: error.to_string() })
}

/// Confluent wire format: `[0][schema id, 4 bytes big-endian][JSON]`.
pub fn frame(schema_id: u32, value: &Value) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    bytes.push(MAGIC_BYTE);
    bytes.extend_from_slice(&schema_id.to_be_bytes());
    // Writing a `Value` into a Vec cannot fail.
    let _infallible = serde_json::to_writer(&mut bytes, value);
    bytes
}

/// Splits Confluent wire format into the schema id and the JSON bytes.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::NotConfluentFraming("shorter than the 5-byte header"));
    }
    if bytes[0] != MAGIC_BYTE {
        return Err(DecodeError::NotConfluentFraming("magic byte is not 0"));
    }
    let schema_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((schema_id, &bytes[HEADER_LEN..]))
}

/// A value decoded and validated against its writer's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedValue {
    pub schema_id: u32,
    pub value: Value,
}

/// Decodes events for any consumer: the projector, query-api's realtime tail, downstream integrations.
#[derive(Debug, Clone)]
pub struct EventDecoder {
    decoder: Arc<JsonDecoder>,
}

impl EventDecoder {
    pub fn new(registry: &RegistrySettings) -> Result<Self, RegistryError> {
        Ok(Self { decoder: Arc::new(JsonDecoder::new(registry.sr_settings()?)) })
    }

    /// Framing → writer schema by id (cached) → JSON → validation. Works for every registered event type
    /// and version, including ones newer than this crate.
    pub async fn decode_value(&self, bytes: &[u8]) -> Result<DecodedValue, DecodeError> {
        let (schema_id, json) = unframe(bytes)?;
        let schema = match self.decoder.get_schema(schema_id).await {
            Ok(schema) => schema,
            Err(error) => return Err(self.schema_fetch_error(schema_id, &error)),
        };
        let value: Value = serde_json::from_slice(json).map_err(DecodeError::InvalidJson)?;
        self.decoder
            .validate(&schema, &value)
            .map_err(|error| DecodeError::SchemaViolation { schema_id, message: describe(&error) })?;
        Ok(DecodedValue { schema_id, value })
    }

    /// [`EventDecoder::decode_value`], then the typed envelope.
    pub async fn decode(&self, bytes: &[u8]) -> Result<Envelope, DecodeError> {
        let decoded = self.decode_value(bytes).await?;
        Ok(Envelope::from_value(decoded.value)?)
    }

    fn schema_fetch_error(&self, schema_id: u32, error: &SRCError) -> DecodeError {
        let message = describe(error);
        if !error.retriable && message.contains("status 404") {
            return DecodeError::UnknownSchemaId(schema_id);
        }
        // The decoder caches non-retriable errors; a registry failure must not stick once it recovers.
        self.decoder.remove_errors_from_cache();
        DecodeError::RegistryUnavailable(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn framing_round_trips() {
        let value = json!({ "a": 1 });
        let bytes = frame(258, &value);
        assert_eq!(&bytes[..5], &[0, 0, 0, 1, 2]);
        let (schema_id, json) = unframe(&bytes).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(schema_id, 258);
        assert_eq!(serde_json::from_slice::<Value>(json).ok(), Some(value));
    }

    #[test]
    fn bytes_that_are_not_framed_are_typed_errors() {
        assert!(matches!(unframe(b"{}"), Err(DecodeError::NotConfluentFraming(_))));
        assert!(matches!(unframe(b"{\"a\":1}"), Err(DecodeError::NotConfluentFraming("magic byte is not 0"))));
        assert!(!DecodeError::UnknownSchemaId(7).is_retriable());
        assert!(DecodeError::RegistryUnavailable(String::new()).is_retriable());
    }

    #[test]
    fn every_schema_file_compiles() {
        let encoder = EventEncoder::new(RegistrySettings::new("http://127.0.0.1:9", Duration::from_secs(1)), "t");
        let encoder = encoder.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(encoder.validators.len(), SCHEMA_FILES.len());
    }
}
