//! Realistic OTLP test traces for tests and benchmarks: the seeds' HTTP → SQS → Lambda shape.
//!
//! [`TwoServiceTrace`] builds one trace across an API service and a queue worker:
//!
//! ```text
//! api     SERVER   "POST /onboard"              root
//! api     PRODUCER "onboarding-queue send"      child of the root (messaging.system aws_sqs)
//! worker  CONSUMER "onboarding-queue process"   child of the producer, or linked to it
//! worker  CLIENT   "INSERT users"               child of the consumer (db.system.name postgresql)
//! ```
//!
//! Each service's spans can be exported separately ([`TwoServiceTrace::api_request`],
//! [`TwoServiceTrace::worker_request`]) to test arrival in either order, or together.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::api::*;

/// Deterministic 64-bit mixing (splitmix64), so test ids are reproducible.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A trace id made from a number (never all zero).
pub fn trace_id(n: u64) -> TraceId {
    let hi = mix64(n) | 1;
    let lo = mix64(n ^ 0xA5A5_A5A5);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hi.to_be_bytes());
    id[8..].copy_from_slice(&lo.to_be_bytes());
    TraceId(id)
}

fn span_id_for(trace: TraceId, index: u64) -> SpanId {
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&trace.0[8..]);
    SpanId((mix64(u64::from_be_bytes(seed) ^ index.wrapping_mul(0x1000_0001)) | 1).to_be_bytes())
}

pub fn kv(key: &str, value: impl Into<AttrValue>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(value.into().0),
        }),
        ..Default::default()
    }
}

/// An attribute value for [`kv`].
#[derive(Debug, Clone)]
pub struct AttrValue(Value);

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        Self(Value::StringValue(s.to_owned()))
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self(Value::StringValue(s))
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        Self(Value::IntValue(i))
    }
}

/// A resource with `service.name` and a few usual attributes.
pub fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            kv(semconv::SERVICE_NAME, service),
            kv(semconv::SERVICE_VERSION, "1.4.2"),
            kv(semconv::DEPLOYMENT_ENVIRONMENT_NAME, "local"),
            kv(semconv::TELEMETRY_SDK_LANGUAGE, "rust"),
            kv(semconv::CLOUD_PROVIDER, "aws"),
            kv(semconv::CLOUD_REGION, "eu-west-1"),
        ],
        ..Default::default()
    }
}

/// One export of `spans` under `service`'s resource.
pub fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "throughline".into(),
                    version: "0.1.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The seeds' two-service trace; fields are public so tests can vary it.
#[derive(Debug, Clone)]
pub struct TwoServiceTrace {
    pub trace_id: TraceId,
    pub start_unix_nanos: u64,
    pub api_service: String,
    pub worker_service: String,
    pub queue: String,
    /// The consumer span starts its own trace position through a span link to the producer
    /// instead of being its child.
    pub consumer_linked: bool,
    /// The worker's spans end in error.
    pub worker_error: bool,
}

impl TwoServiceTrace {
    /// The trace numbered `n`, starting at `start_unix_nanos`.
    pub fn new(n: u64, start_unix_nanos: u64) -> Self {
        Self {
            trace_id: trace_id(n),
            start_unix_nanos,
            api_service: "onboarding-api".into(),
            worker_service: "onboarding-lambda".into(),
            queue: "onboarding-queue".into(),
            consumer_linked: false,
            worker_error: false,
        }
    }

    pub fn root_span_id(&self) -> SpanId {
        span_id_for(self.trace_id, 1)
    }
    pub fn producer_span_id(&self) -> SpanId {
        span_id_for(self.trace_id, 2)
    }
    pub fn consumer_span_id(&self) -> SpanId {
        span_id_for(self.trace_id, 3)
    }
    pub fn db_span_id(&self) -> SpanId {
        span_id_for(self.trace_id, 4)
    }

    fn span(
        &self,
        id: SpanId,
        parent: Option<SpanId>,
        name: &str,
        kind: SpanKind,
        from_ms: u64,
        to_ms: u64,
    ) -> Span {
        Span {
            trace_id: self.trace_id.0.to_vec(),
            span_id: id.0.to_vec(),
            parent_span_id: parent.map(|p| p.0.to_vec()).unwrap_or_default(),
            name: name.to_owned(),
            kind: kind as i32,
            start_time_unix_nano: self.start_unix_nanos + from_ms * 1_000_000,
            end_time_unix_nano: self.start_unix_nanos + to_ms * 1_000_000,
            flags: 0x101,
            ..Default::default()
        }
    }

    /// The API's spans: the HTTP server span and the SQS send.
    pub fn api_spans(&self) -> Vec<Span> {
        let mut root = self.span(
            self.root_span_id(),
            None,
            "POST /onboard",
            SpanKind::Server,
            0,
            50,
        );
        root.attributes = vec![
            kv(semconv::HTTP_REQUEST_METHOD, "POST"),
            kv(semconv::HTTP_ROUTE, "/onboard"),
            kv(semconv::URL_PATH, "/onboard"),
            kv(semconv::URL_SCHEME, "http"),
            kv(semconv::HTTP_RESPONSE_STATUS_CODE, 202i64),
            kv(semconv::SERVER_ADDRESS, "127.0.0.1"),
            kv(semconv::SERVER_PORT, 8080i64),
            kv(semconv::USER_AGENT_ORIGINAL, "curl/8.5.0"),
        ];
        let mut send = self.span(
            self.producer_span_id(),
            Some(self.root_span_id()),
            &format!("{} send", self.queue),
            SpanKind::Producer,
            5,
            15,
        );
        send.attributes = vec![
            kv(semconv::MESSAGING_SYSTEM, "aws_sqs"),
            kv(semconv::MESSAGING_DESTINATION_NAME, self.queue.as_str()),
            kv(semconv::MESSAGING_OPERATION_TYPE, "send"),
            kv(semconv::MESSAGING_OPERATION_NAME, "SendMessage"),
            kv(
                semconv::MESSAGING_MESSAGE_ID,
                format!("{:016x}", mix64(self.start_unix_nanos)),
            ),
            kv(semconv::SERVER_ADDRESS, "sqs.eu-west-1.amazonaws.com"),
            kv(semconv::CLOUD_REGION, "eu-west-1"),
            kv("rpc.system", "aws-api"),
        ];
        vec![root, send]
    }

    /// The worker's spans: the SQS receive and a database insert.
    pub fn worker_spans(&self) -> Vec<Span> {
        let (parent, links) = if self.consumer_linked {
            let link = Link {
                trace_id: self.trace_id.0.to_vec(),
                span_id: self.producer_span_id().0.to_vec(),
                ..Default::default()
            };
            (Some(self.root_span_id()), vec![link])
        } else {
            (Some(self.producer_span_id()), Vec::new())
        };
        let mut consume = self.span(
            self.consumer_span_id(),
            parent,
            &format!("{} process", self.queue),
            SpanKind::Consumer,
            20,
            60,
        );
        consume.links = links;
        consume.attributes = vec![
            kv(semconv::MESSAGING_SYSTEM, "aws_sqs"),
            kv(semconv::MESSAGING_DESTINATION_NAME, self.queue.as_str()),
            kv(semconv::MESSAGING_OPERATION_TYPE, "process"),
            kv(
                semconv::MESSAGING_MESSAGE_ID,
                format!("{:016x}", mix64(self.start_unix_nanos)),
            ),
            kv(semconv::FAAS_TRIGGER, "pubsub"),
            kv(
                semconv::FAAS_INVOCATION_ID,
                format!("{:032x}", u128::from(mix64(self.start_unix_nanos ^ 7))),
            ),
            kv(semconv::CLOUD_REGION, "eu-west-1"),
            kv(
                "aws.lambda.invoked_arn",
                "arn:aws:lambda:eu-west-1:000000000000:function:onboarding",
            ),
        ];
        let mut db = self.span(
            self.db_span_id(),
            Some(self.consumer_span_id()),
            "INSERT users",
            SpanKind::Client,
            25,
            35,
        );
        db.attributes = vec![
            kv(semconv::DB_SYSTEM_NAME, "postgresql"),
            kv(semconv::DB_NAMESPACE, "onboarding"),
            kv(semconv::DB_OPERATION_NAME, "INSERT"),
            kv(semconv::DB_COLLECTION_NAME, "users"),
            kv(
                semconv::DB_QUERY_TEXT,
                "INSERT INTO users (id, email) VALUES ($1, $2)",
            ),
            kv(semconv::SERVER_ADDRESS, "127.0.0.1"),
            kv(semconv::SERVER_PORT, 5432i64),
            kv(semconv::NETWORK_PROTOCOL_VERSION, "3"),
        ];
        if self.worker_error {
            let error = Some(Status {
                message: "insert failed".into(),
                code: StatusCode::Error as i32,
            });
            consume.status = error.clone();
            db.status = error;
        }
        vec![consume, db]
    }

    /// The API's export alone.
    pub fn api_request(&self) -> ExportTraceServiceRequest {
        export(&self.api_service, self.api_spans())
    }

    /// The worker's export alone.
    pub fn worker_request(&self) -> ExportTraceServiceRequest {
        export(&self.worker_service, self.worker_spans())
    }

    /// Both services in one export.
    pub fn request(&self) -> ExportTraceServiceRequest {
        let mut req = self.api_request();
        req.resource_spans
            .extend(self.worker_request().resource_spans);
        req
    }
}

/// A batch shaped like the seeds' exports: `traces` whole four-span traces (8 attributes per
/// span), the API and worker spans under their two resources. Batches rotate through eight
/// service pairs (`api-0`/`worker-0` … `api-7`/`worker-7`) by `batch`, so a search by service
/// touches one batch in eight. Trace numbers are `batch * traces + i`.
pub fn seeds_like_batch(
    batch: u64,
    traces: usize,
    start_unix_nanos: u64,
) -> ExportTraceServiceRequest {
    let pair = batch % 8;
    let api = format!("api-{pair}");
    let worker = format!("worker-{pair}");
    let mut api_spans = Vec::with_capacity(traces * 2);
    let mut worker_spans = Vec::with_capacity(traces * 2);
    for i in 0..traces as u64 {
        let mut t =
            TwoServiceTrace::new(batch * traces as u64 + i, start_unix_nanos + i * 1_000_000);
        t.worker_error = i % 50 == 0;
        api_spans.extend(t.api_spans());
        worker_spans.extend(t.worker_spans());
    }
    let mut req = export(&api, api_spans);
    req.resource_spans
        .extend(export(&worker, worker_spans).resource_spans);
    req
}

/// A request that loads a list and then each item's details one query at a time (the N+1 shape
/// of seed 004's drawing):
///
/// ```text
/// api  SERVER "GET /v1/videos"                                   root, ends after the queries
/// api  CLIENT "SELECT videos"     SELECT * FROM videos            0..query_ms
/// api  CLIENT "SELECT placements" SELECT … WHERE video_id = {i}   one per item, back to back
/// ```
#[derive(Debug, Clone)]
pub struct QueryLoopTrace {
    pub trace_id: TraceId,
    pub start_unix_nanos: u64,
    pub service: String,
    /// How many per-item queries follow the list query.
    pub repeats: u64,
    /// How long each query takes, in microseconds.
    pub query_micros: u64,
}

impl QueryLoopTrace {
    pub fn new(n: u64, start_unix_nanos: u64, repeats: u64, query_micros: u64) -> Self {
        Self {
            trace_id: trace_id(n),
            start_unix_nanos,
            service: "videos-api".to_owned(),
            repeats,
            query_micros,
        }
    }

    pub fn root_span_id(&self) -> SpanId {
        span_id_for(self.trace_id, 1)
    }

    /// The span id of the `i`-th per-item query (from 0).
    pub fn item_span_id(&self, i: u64) -> SpanId {
        span_id_for(self.trace_id, 10 + i)
    }

    fn query(&self, id: SpanId, name: &str, statement: String, from_us: u64) -> Span {
        Span {
            trace_id: self.trace_id.0.to_vec(),
            span_id: id.0.to_vec(),
            parent_span_id: self.root_span_id().0.to_vec(),
            name: name.to_owned(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: self.start_unix_nanos + from_us * 1000,
            end_time_unix_nano: self.start_unix_nanos + (from_us + self.query_micros) * 1000,
            attributes: vec![
                kv(semconv::DB_SYSTEM_NAME, "postgresql"),
                kv(semconv::DB_NAMESPACE, "videos"),
                kv(semconv::DB_QUERY_TEXT, statement),
                kv(semconv::SERVER_ADDRESS, "127.0.0.1"),
            ],
            ..Default::default()
        }
    }

    pub fn spans(&self) -> Vec<Span> {
        let mut spans = vec![self.query(
            span_id_for(self.trace_id, 2),
            "SELECT videos",
            "SELECT id, title FROM videos LIMIT 20".to_owned(),
            0,
        )];
        for i in 0..self.repeats {
            spans.push(self.query(
                self.item_span_id(i),
                "SELECT placements",
                format!(
                    "SELECT slot, ad_id FROM placements WHERE video_id = {}",
                    100 + i
                ),
                (i + 1) * self.query_micros,
            ));
        }
        let end_us = (self.repeats + 1) * self.query_micros + 100;
        spans.push(Span {
            trace_id: self.trace_id.0.to_vec(),
            span_id: self.root_span_id().0.to_vec(),
            name: "GET /v1/videos".to_owned(),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: self.start_unix_nanos,
            end_time_unix_nano: self.start_unix_nanos + end_us * 1000,
            attributes: vec![
                kv(semconv::HTTP_REQUEST_METHOD, "GET"),
                kv(semconv::HTTP_ROUTE, "/v1/videos"),
            ],
            ..Default::default()
        });
        spans
    }

    pub fn request(&self) -> ExportTraceServiceRequest {
        export(&self.service, self.spans())
    }
}

/// One log record at `time_unix_nanos` with a string body, in `trace`/`span` when given.
pub fn log_record(
    time_unix_nanos: u64,
    severity: crate::Severity,
    body: &str,
    trace: Option<(TraceId, SpanId)>,
    attributes: Vec<KeyValue>,
) -> opentelemetry_proto::tonic::logs::v1::LogRecord {
    let (trace_id, span_id) = trace.map_or((Vec::new(), Vec::new()), |(t, s)| {
        (t.0.to_vec(), s.0.to_vec())
    });
    opentelemetry_proto::tonic::logs::v1::LogRecord {
        time_unix_nano: time_unix_nanos,
        observed_time_unix_nano: time_unix_nanos,
        severity_number: severity.number(),
        severity_text: severity.as_str().to_owned(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.to_owned())),
        }),
        attributes,
        trace_id,
        span_id,
        ..Default::default()
    }
}

/// One logs export of `records` under `service`'s resource.
pub fn log_export(
    service: &str,
    records: Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>,
) -> ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(service)),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "throughline".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The span id of span `index` of trace `n`'s log records in [`seeds_like_logs`].
pub fn log_span_id(n: u64, index: u64) -> SpanId {
    span_id_for(trace_id(n), index)
}

/// A logs export as a service's batch processor sends it: `records` records of `traces`
/// consecutive traces starting at trace `first_trace`, one second apart from `base_unix_nanos`,
/// every tenth a warning and every fiftieth an error.
pub fn seeds_like_logs(
    service: &str,
    first_trace: u64,
    traces: u64,
    records: u64,
    base_unix_nanos: u64,
) -> ExportLogsServiceRequest {
    let records = (0..records)
        .map(|i| {
            let n = first_trace + i % traces.max(1);
            let severity = match i {
                i if i % 50 == 49 => crate::Severity::Error,
                i if i % 10 == 9 => crate::Severity::Warn,
                _ => crate::Severity::Info,
            };
            log_record(
                base_unix_nanos + i * 1_000_000,
                severity,
                &format!(
                    "onboarding request {n} step {i} for customer cust-{}",
                    n % 97
                ),
                Some((trace_id(n), log_span_id(n, i % 4))),
                vec![kv(
                    "customer.type",
                    if n.is_multiple_of(3) {
                        "business"
                    } else {
                        "consumer"
                    },
                )],
            )
        })
        .collect();
    log_export(service, records)
}
