//! No e-mail address in the worker's metric labels or in its OTLP log records, for processed
//! and failed records alike (spans and log files are checked elsewhere). One test: it owns the
//! process's global subscriber and meter provider.

mod common;

use common::{event, record, setup};
use onboarding_lambda::Invocation;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn no_email_address_in_metric_labels_or_log_records() {
    let logs = InMemoryLogExporter::default();
    let logger_provider = SdkLoggerProvider::builder()
        .with_simple_exporter(logs.clone())
        .build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(&logger_provider)),
    )
    .expect("the only subscriber of this test binary");
    let metrics = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    // The test worker takes its meter from the global provider.
    opentelemetry::global::set_meter_provider(meter_provider.clone());

    let (_dir, worker, _spans, _p) = setup(&[]);
    let mut unknown = record(7, "00f067aa0ba902b9"); // no such customer: the status step fails
    unknown.message_id = Some("msg-7".into());
    let out = worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b7"), unknown]),
            Invocation::default(),
        )
        .await;
    let failed: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["msg-7"]);

    meter_provider.force_flush().expect("metrics flushed");
    let exported = format!("{:?}", metrics.get_finished_metrics().expect("metrics"));
    assert!(
        exported.contains("premium") && exported.contains("failure"),
        "{exported}"
    );
    assert!(
        !exported.contains("secret.example") && !exported.contains('@'),
        "{exported}"
    );

    logger_provider.force_flush().expect("logs flushed");
    let records = format!("{:?}", logs.get_emitted_logs().expect("log records"));
    assert!(records.contains("batchItemFailures"), "{records}");
    assert!(!records.contains("secret.example"), "{records}");
}
