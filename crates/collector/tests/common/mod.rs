//! Shared set-up for the collector's integration tests: a collector on loopback over a store in a
//! temporary directory, the two-service fixture trace, and snapshot normalisation.
#![allow(dead_code)] // each test file uses a different part of this module

pub mod upstream;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status, status};
use throughline_collector::{Collector, CollectorConfig, IngestLimits, RunningCollector};
use throughline_store::{
    AnyValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Span, SpanKind, SpanSink,
    TraceReader,
};

/// A collector on ephemeral loopback ports over a fresh store; the directory lives as long as it.
pub struct TestCollector {
    pub running: RunningCollector,
    pub dir: tempfile::TempDir,
}

impl TestCollector {
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.http_addr)
    }
    pub fn query_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.query_addr)
    }
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.running.grpc_addr)
    }
}

pub fn open_store(dir: &std::path::Path) -> (Arc<dyn SpanSink>, Arc<dyn TraceReader>) {
    let mut config = throughline_store::StoreConfig::new(dir);
    // Judge integrity at once, so a test reads a verdict rather than "settling".
    config.settle_secs = 0;
    let store = Arc::new(throughline_store::Store::open(config).expect("store opens"));
    (store.clone(), store)
}

pub async fn start_with(limits: IngestLimits) -> TestCollector {
    start_with_config(CollectorConfig {
        limits,
        ..CollectorConfig::default()
    })
    .await
}

/// A collector with `config`, its addresses replaced by ephemeral loopback ports.
pub async fn start_with_config(config: CollectorConfig) -> TestCollector {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (sink, reader) = open_store(dir.path());
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        query_addr: loopback,
        ..config
    };
    let running = Collector::start(config, sink, reader, None)
        .await
        .expect("collector starts");
    TestCollector { running, dir }
}

pub async fn start() -> TestCollector {
    start_with(IngestLimits::default()).await
}

pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", service),
            kv("deployment.environment.name", "test"),
        ],
        ..Default::default()
    }
}

/// The fixture's ids: trace `trace_byte` repeated, spans numbered 1..=4.
pub fn span_id(n: u8) -> Vec<u8> {
    vec![0, 0, 0, 0, 0, 0, 0, n]
}

/// A trace crossing two services by HTTP and a queue:
/// `shop-api` SERVER `POST /orders` (1) → PRODUCER `orders publish` (2) →
/// `shop-worker` CONSUMER `orders process` (3, child of 2 and linked to 2, status ERROR)
/// → CLIENT `INSERT orders` (4, a database call).
pub fn two_service_trace(trace_byte: u8, base_nanos: u64) -> ExportTraceServiceRequest {
    let trace_id = vec![trace_byte; 16];
    let ms = 1_000_000;
    let span = |n: u8, parent: Option<u8>, name: &str, kind: SpanKind, start: u64, end: u64| Span {
        trace_id: trace_id.clone(),
        span_id: span_id(n),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: base_nanos + start * ms,
        end_time_unix_nano: base_nanos + end * ms,
        flags: 0x101,
        ..Default::default()
    };
    let mut server = span(1, None, "POST /orders", SpanKind::Server, 0, 40);
    server.attributes = vec![
        kv("http.request.method", "POST"),
        kv("http.route", "/orders"),
        kv_int("http.response.status_code", 202),
    ];
    let mut producer = span(2, Some(1), "orders publish", SpanKind::Producer, 5, 8);
    producer.attributes = vec![
        kv("messaging.system", "aws_sqs"),
        kv("messaging.destination.name", "orders"),
    ];
    let mut consumer = span(3, Some(2), "orders process", SpanKind::Consumer, 20, 70);
    consumer.attributes = vec![
        kv("messaging.system", "aws_sqs"),
        kv("messaging.destination.name", "orders"),
    ];
    consumer.links = vec![Link {
        trace_id: trace_id.clone(),
        span_id: span_id(2),
        ..Default::default()
    }];
    consumer.events = vec![Event {
        time_unix_nano: base_nanos + 30 * ms,
        name: "retrying".into(),
        attributes: vec![kv_int("attempt", 2)],
        ..Default::default()
    }];
    consumer.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "payment declined".into(),
    });
    let mut db = span(4, Some(3), "INSERT orders", SpanKind::Client, 40, 60);
    db.attributes = vec![
        kv("db.system.name", "postgresql"),
        kv("db.namespace", "shop"),
    ];
    let scope = |name: &str| {
        Some(InstrumentationScope {
            name: name.into(),
            version: "1.0.0".into(),
            ..Default::default()
        })
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(resource("shop-api")),
                scope_spans: vec![ScopeSpans {
                    scope: scope("shop-api"),
                    spans: vec![server, producer],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                resource: Some(resource("shop-worker")),
                scope_spans: vec![ScopeSpans {
                    scope: scope("shop-worker"),
                    spans: vec![consumer, db],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

/// Makes Jaeger JSON stable for snapshots: times become offsets from `base_micros`.
pub fn normalise_times(value: &mut serde_json::Value, base_micros: u64) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if (key == "startTime" || key == "timestamp")
                    && let Some(t) = v.as_u64()
                {
                    *v = serde_json::Value::from(t.saturating_sub(base_micros));
                } else {
                    normalise_times(v, base_micros);
                }
            }
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .for_each(|v| normalise_times(v, base_micros)),
        _ => {}
    }
}

/// GET a JSON document.
pub async fn get_json(url: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let response = reqwest::get(url).await.expect("query API answers");
    let status = response.status();
    (
        status,
        response.json().await.expect("query API answers JSON"),
    )
}
