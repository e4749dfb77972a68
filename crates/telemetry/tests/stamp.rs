//! `stamp_spans`: every span started carries the stamp's attributes as they are when it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use throughline_telemetry::testing::InMemorySpanExporter;
use throughline_telemetry::{Telemetry, TelemetryConfig};

#[test]
fn every_span_carries_the_stamp_of_its_start() {
    let exporter = InMemorySpanExporter::new();
    let wave = Arc::new(AtomicU64::new(1));
    let read = wave.clone();
    let telemetry =
        Telemetry::builder(TelemetryConfig::from_env([("OTEL_SERVICE_NAME", "t")]).unwrap())
            .span_exporter(exporter.clone())
            .stamp_spans(move || {
                vec![KeyValue::new(
                    "demo.phase",
                    read.load(Ordering::Relaxed) as i64,
                )]
            })
            .build()
            .expect("telemetry builds");
    let tracer = telemetry
        .tracer_provider()
        .expect("tracing on")
        .tracer("stamp-test");
    tracer.in_span("first", |_| {});
    wave.store(2, Ordering::Relaxed);
    tracer.in_span("second", |_| {});
    let _ = telemetry.flush(Duration::from_secs(5));
    let spans = exporter.finished_spans();
    let phase = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| {
                s.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == "demo.phase")
            })
            .map(|kv| kv.value.clone())
    };
    assert_eq!(phase("first"), Some(opentelemetry::Value::I64(1)));
    assert_eq!(phase("second"), Some(opentelemetry::Value::I64(2)));
}
