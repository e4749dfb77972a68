//! The handler in process, with an in-memory span exporter: span shapes, cold start, failures
//! reported in `batchItemFailures`, and no email anywhere on a span.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use onboarding_lambda::{Invocation, Worker, WorkerConfig, WorkerTelemetry};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn record(n: usize, producer_span: &str) -> SqsMessage {
    let mut attr = SqsMessageAttribute::default();
    attr.string_value = Some(format!("00-{PRODUCER_TRACE}-{producer_span}-01"));
    attr.data_type = Some("String".into());
    let mut m = SqsMessage::default();
    m.message_id = Some(format!("msg-{n}"));
    m.body = Some(
        serde_json::json!({"customer_id": format!("C-{n}"), "email": format!("person{n}@secret.example"),
                           "name": "Acme", "type": "premium", "request_id": format!("r{n}")})
        .to_string(),
    );
    m.message_attributes = HashMap::from([("traceparent".to_owned(), attr)]);
    m.attributes = HashMap::from([("ApproximateReceiveCount".to_owned(), "1".to_owned())]);
    m
}

fn setup(
    extra: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    Worker,
    InMemorySpanExporter,
    SdkTracerProvider,
) {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, status TEXT, status_detail TEXT, risk_score REAL,
                                 attempts INTEGER NOT NULL DEFAULT 0, updated_at TEXT);
         INSERT INTO customers (customer_id, status) VALUES ('C-0','received'),('C-1','received'),('C-2','received');",
    )
    .unwrap();
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.display().to_string()),
        (
            "ONBOARDING_DOCUMENTS_URL".into(),
            dir.path().join("docs").display().to_string(),
        ),
        (
            "ONBOARDING_OUTBOX_DIR".into(),
            dir.path().join("outbox").display().to_string(),
        ),
    ]);
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let telemetry = WorkerTelemetry {
        tracer: BoxedTracer::new(Box::new(provider.tracer("onboarding-lambda"))),
        meter: opentelemetry::global::meter("test"),
        flush: None,
    };
    let worker = Worker::new(WorkerConfig::from_env(&env).unwrap(), telemetry).unwrap();
    (dir, worker, exporter, provider)
}

fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[tokio::test]
async fn spans_continue_the_producer_trace_and_report_cold_start_once() {
    let (dir, worker, exporter, _p) = setup(&[]);
    let inv = Invocation {
        request_id: "req-1".into(),
        function_name: "onboarding-lambda".into(),
        ..Default::default()
    };
    let out = worker
        .handle(
            event(vec![
                record(0, "00f067aa0ba902b7"),
                record(1, "00f067aa0ba902b8"),
            ]),
            inv.clone(),
        )
        .await;
    assert!(out.batch_item_failures.is_empty());
    let spans = exporter.get_finished_spans().unwrap();

    let server: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(server.len(), 1);
    assert_eq!(
        attr(server[0], "faas.coldstart"),
        Some(&opentelemetry::Value::Bool(true))
    );
    assert_eq!(
        attr(server[0], "faas.invocation_id")
            .map(|v| v.to_string())
            .as_deref(),
        Some("req-1")
    );

    let consumers: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Consumer && s.name == "process onboarding-queue")
        .collect();
    assert_eq!(consumers.len(), 2);
    for c in &consumers {
        assert_eq!(c.span_context.trace_id().to_string(), PRODUCER_TRACE);
        assert!(
            ["00f067aa0ba902b7", "00f067aa0ba902b8"]
                .contains(&c.parent_span_id.to_string().as_str())
        );
        assert_eq!(
            attr(c, "messaging.system")
                .map(|v| v.to_string())
                .as_deref(),
            Some("aws_sqs")
        );
    }
    let batch = spans
        .iter()
        .find(|s| s.name == "batch onboarding-queue")
        .unwrap();
    assert_eq!(batch.links.len(), 2);
    assert_eq!(
        attr(batch, "messaging.batch.message_count"),
        Some(&opentelemetry::Value::I64(2))
    );
    // Every step is a child span of a record's CONSUMER span.
    for step in [
        "validate and enrich customer",
        "compliance checks",
        "INSERT audit_trail",
        "store customer documents",
        "UPDATE customers",
        "send welcome notification",
        "trigger follow-up workflows",
    ] {
        let n = spans.iter().filter(|s| s.name == step).count();
        assert_eq!(n, 2, "{step}");
    }
    // The email is in the outbox, never on a span.
    for s in &spans {
        assert!(!s.name.contains("secret.example"));
        for kv in &s.attributes {
            assert!(
                !kv.value.to_string().contains("secret.example"),
                "{} on {}",
                kv.key,
                s.name
            );
        }
    }
    // One outbox line per processed record, addressed to the customer.
    let outbox = std::fs::read_to_string(
        dir.path()
            .join("outbox")
            .join(onboarding_lambda::outbox::OUTBOX_FILE),
    )
    .unwrap();
    let mut to: Vec<String> = outbox
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["to"].to_string())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["\"person0@secret.example\"", "\"person1@secret.example\""]
    );

    exporter.reset();
    worker
        .handle(event(vec![record(2, "00f067aa0ba902b9")]), inv)
        .await;
    let spans = exporter.get_finished_spans().unwrap();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(
        attr(server, "faas.coldstart"),
        Some(&opentelemetry::Value::Bool(false))
    );
}

#[tokio::test]
async fn injected_failures_are_reported_per_record() {
    let (_dir, worker, exporter, _p) = setup(&[("ONBOARDING_FAILURES", "compliance=1")]);
    let out = worker
        .handle(
            event(vec![
                record(0, "00f067aa0ba902b7"),
                record(1, "00f067aa0ba902b8"),
            ]),
            Invocation::default(),
        )
        .await;
    let ids: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["msg-0", "msg-1"]);
    let spans = exporter.get_finished_spans().unwrap();
    let consumer = spans
        .iter()
        .find(|s| s.name == "process onboarding-queue")
        .unwrap();
    assert_eq!(
        attr(consumer, "onboarding.failed_step")
            .map(|v| v.to_string())
            .as_deref(),
        Some("compliance")
    );
    assert!(matches!(
        consumer.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.name == "store customer documents")
            .count(),
        0
    );
}

#[tokio::test]
async fn link_mode_starts_a_new_trace_linked_to_the_producer() {
    let (_dir, worker, exporter, _p) = setup(&[("ONBOARDING_CONSUMER_CONTEXT", "link")]);
    worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b7")]),
            Invocation::default(),
        )
        .await;
    let spans = exporter.get_finished_spans().unwrap();
    let consumer = spans
        .iter()
        .find(|s| s.name == "process onboarding-queue")
        .unwrap();
    assert_ne!(consumer.span_context.trace_id().to_string(), PRODUCER_TRACE);
    assert!(
        consumer
            .links
            .iter()
            .any(|l| l.span_context.trace_id().to_string() == PRODUCER_TRACE)
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_record_fails_that_record_only() {
    let (_dir, worker, _exporter, _p) = setup(&[]);
    let mut bad = record(1, "00f067aa0ba902b8");
    bad.body = Some("not json".into());
    let out = worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b7"), bad]),
            Invocation::default(),
        )
        .await;
    let ids: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["msg-1"]);
}
