//! tail-events: a downstream consumer of ChatSDK's event log, small enough to copy.
//!
//! It joins its own consumer group, decodes every event through the schema registry (validating it against
//! the schema it was written with) and prints one JSON line per event on stdout:
//!
//! ```text
//! {"partition":3,"offset":41,"key":"acme:general","schema_id":7,"event":{"event_id":"…","type":"message.sent",…}}
//! ```
//!
//! Delivery is at least once: an offset is stored only after its line is printed, and committed in the
//! background. A record that cannot be decoded is reported on stderr and skipped; a registry outage is
//! retried, never skipped.
//!
//! ```sh
//! cargo run -p chatsdk-schemas --bin tail-events -- --group my-integration --from-beginning
//! ```
//!
//! Options (each also read from the environment variable in brackets):
//!   --brokers HOSTS        Kafka bootstrap servers [CHATSDK_KAFKA__BROKERS], default 127.0.0.1:19092
//!   --registry URL         Confluent-compatible registry [CHATSDK_REGISTRY__URL], default the local stack's
//!   --topic NAME           default chatsdk.channel-events.v1
//!   --group ID             consumer group, default tail-events
//!   --from-beginning       a new group starts at the oldest event instead of the newest
//!   --max-events N         exit after N events
//!   --idle-exit-secs N     exit after N seconds without an event

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chatsdk_schemas::{DecodeError, EventDecoder, RegistrySettings, topics};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::json;

#[derive(Debug)]
struct Options {
    brokers: String,
    registry: String,
    topic: String,
    group: String,
    from_beginning: bool,
    max_events: Option<u64>,
    idle_exit: Option<Duration>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        brokers: std::env::var("CHATSDK_KAFKA__BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned()),
        registry: std::env::var("CHATSDK_REGISTRY__URL")
            .unwrap_or_else(|_| "http://127.0.0.1:18081/apis/ccompat/v7".to_owned()),
        topic: topics::CHANNEL_EVENTS.to_owned(),
        group: "tail-events".to_owned(),
        from_beginning: false,
        max_events: None,
        idle_exit: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--brokers" => options.brokers = value("--brokers")?,
            "--registry" => options.registry = value("--registry")?,
            "--topic" => options.topic = value("--topic")?,
            "--group" => options.group = value("--group")?,
            "--from-beginning" => options.from_beginning = true,
            "--max-events" => {
                options.max_events = Some(value("--max-events")?.parse().map_err(|_| "--max-events: not a number")?)
            }
            "--idle-exit-secs" => {
                let seconds: u64 = value("--idle-exit-secs")?.parse().map_err(|_| "--idle-exit-secs: not a number")?;
                options.idle_exit = Some(Duration::from_secs(seconds));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("tail-events: {message} (see the top of src/bin/tail_events.rs)");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tail-events: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let decoder = EventDecoder::new(&RegistrySettings::new(&options.registry, Duration::from_secs(5)))
        .map_err(|error| error.to_string())?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group)
        .set("auto.offset.reset", if options.from_beginning { "earliest" } else { "latest" })
        // At least once: commit in the background, but only offsets stored after an event was printed.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|error| format!("creating the consumer: {error}"))?;
    consumer.subscribe(&[&options.topic]).map_err(|error| format!("subscribing to {}: {error}", options.topic))?;

    let mut printed = 0_u64;
    let stdout = std::io::stdout();
    while options.max_events.is_none_or(|max| printed < max) {
        let received = match options.idle_exit {
            Some(idle) => match tokio::time::timeout(idle, consumer.recv()).await {
                Ok(received) => received,
                Err(_idle) => break,
            },
            None => consumer.recv().await,
        };
        let message = received.map_err(|error| format!("consuming: {error}"))?;
        let line = describe(&decoder, &message).await;
        if let Some(line) = line {
            writeln!(stdout.lock(), "{line}").map_err(|error| format!("writing: {error}"))?;
            printed += 1;
        }
        consumer.store_offset_from_message(&message).map_err(|error| format!("storing the offset: {error}"))?;
    }
    // Commit what was printed before leaving, so a restart resumes right after it.
    let _nothing_to_commit_is_fine = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    Ok(())
}

/// The JSON line of one record, or `None` (reported on stderr) when it cannot be decoded. A registry outage
/// is retried until it recovers: skipping would lose the event.
async fn describe(decoder: &EventDecoder, message: &BorrowedMessage<'_>) -> Option<String> {
    let payload = message.payload().unwrap_or_default();
    let decoded = loop {
        match decoder.decode_value(payload).await {
            Err(DecodeError::RegistryUnavailable(error)) => {
                eprintln!("tail-events: registry unavailable ({error}), retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => break other,
        }
    };
    let key = message.key().map(|key| String::from_utf8_lossy(key).into_owned());
    match decoded {
        Ok(decoded) => Some(
            json!({
                "partition": message.partition(),
                "offset": message.offset(),
                "key": key,
                "schema_id": decoded.schema_id,
                "event": decoded.value,
            })
            .to_string(),
        ),
        Err(error) => {
            eprintln!("tail-events: skipping partition {} offset {}: {error}", message.partition(), message.offset());
            None
        }
    }
}
