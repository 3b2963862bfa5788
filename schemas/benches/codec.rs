//! Encode and decode throughput per event with a warm cache (schema ids and validators cached, so no
//! registry call is timed). Needs the local stack's registry for the warm-up:
//!
//! ```sh
//! eval "$(infra/local/stack env)" && cargo bench -p chatsdk-schemas --bench codec
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use chatsdk_schemas::{EventDecoder, EventEncoder, EventType, RegistrySettings};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn registry_url() -> String {
    std::env::var("CHATSDK_REGISTRY__URL").unwrap_or_else(|_| "http://127.0.0.1:18081/apis/ccompat/v7".to_owned())
}

fn codec(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let settings = RegistrySettings::new(registry_url(), Duration::from_secs(5));
    let topic = format!("bench.codec.{}", uuid::Uuid::new_v4().simple());
    let encoder = EventEncoder::new(settings.clone(), &topic).unwrap();
    let decoder = EventDecoder::new(&settings).unwrap();
    runtime.block_on(encoder.register_all()).expect("registry unreachable: start the stack first");

    let samples = common::full_samples();
    for event_type in [EventType::MessageSent, EventType::ReactionAdded, EventType::ChannelCreated] {
        let sample = samples.iter().find(|sample| sample.event_type() == event_type).unwrap().clone();
        let bytes = runtime.block_on(encoder.encode(&sample)).unwrap();
        runtime.block_on(decoder.decode(&bytes)).unwrap(); // warm the decoder's schema cache

        let mut group = criterion.benchmark_group(event_type.as_str());
        group.throughput(Throughput::Elements(1));
        group.bench_function("encode", |bencher| bencher.to_async(&runtime).iter(|| encoder.encode(&sample)));
        group.bench_function("decode", |bencher| bencher.to_async(&runtime).iter(|| decoder.decode(&bytes)));
        group
            .bench_function("decode_value", |bencher| bencher.to_async(&runtime).iter(|| decoder.decode_value(&bytes)));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = codec
}
criterion_main!(benches);
