//! The worker as the in-process tests build it: SQLite in a temp dir, spans in memory, and the
//! SQS records and events they hand it.
#![allow(dead_code)] // each test file uses a different part of this module

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use onboarding_lambda::{Worker, WorkerConfig, WorkerTelemetry};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

pub const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

pub fn record(n: usize, producer_span: &str) -> SqsMessage {
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

/// A worker as the tests hold it: its temp dir, itself, its finished spans and their provider.
pub type TestWorker = (
    tempfile::TempDir,
    Worker,
    InMemorySpanExporter,
    SdkTracerProvider,
);

pub fn setup(extra: &[(&str, &str)]) -> TestWorker {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, status TEXT, status_detail TEXT, risk_score REAL,
                                 attempts INTEGER NOT NULL DEFAULT 0, updated_at TEXT);
         INSERT INTO customers (customer_id, status) VALUES ('C-0','received'),('C-1','received'),('C-2','received');",
    )
    .unwrap();
    worker_on(dir, &db.display().to_string(), extra)
}

/// The worker on `database_url`, its documents and outbox in `dir`, spans kept in memory; `extra`
/// pairs are added to (or override) its environment map.
pub fn worker_on(dir: tempfile::TempDir, database_url: &str, extra: &[(&str, &str)]) -> TestWorker {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.to_owned()),
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
    let config = WorkerConfig::from_env(&env).expect("a valid configuration");
    let worker = Worker::new(config, telemetry).expect("the worker opens");
    (dir, worker, exporter, provider)
}

pub fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

pub fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}
