//! The test trace: `onboarding-api` takes `POST /signup`, sends a message to the
//! `onboarding-queue` SQS queue; `onboarding-lambda` receives it after a wait in the queue, calls
//! back into `onboarding-api` over HTTP, and fails sending an email (an exception event).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status, status};
use opentelemetry_semantic_conventions::attribute as semconv;
use throughline_store::{
    AnyValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Span, SpanKind,
};

pub const API: &str = "onboarding-api";
pub const LAMBDA: &str = "onboarding-lambda";
pub const QUEUE: &str = "onboarding-queue";
pub const TRACE_ID: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
pub const TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The consumer span, whose row shows the queue time.
pub const CONSUMER_SPAN_HEX: &str = "00000000000000c1";
/// The producer's end to the consumer's start: 1.25 s in the queue.
pub const QUEUE_NANOS: u64 = 1_250_000_000;
pub const QUEUE_TEXT: &str = "1.25 s";
/// A span attribute the trace page must show.
pub const USER_ID: &str = "user-4711";

fn kv(key: &str, value: impl Into<AnyValueOf>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value.into().0),
        ..Default::default()
    }
}

pub struct AnyValueOf(AnyValue);
impl From<&str> for AnyValueOf {
    fn from(s: &str) -> Self {
        AnyValueOf(AnyValue {
            value: Some(Value::StringValue(s.to_owned())),
        })
    }
}
impl From<i64> for AnyValueOf {
    fn from(i: i64) -> Self {
        AnyValueOf(AnyValue {
            value: Some(Value::IntValue(i)),
        })
    }
}

fn span_id(n: u8) -> Vec<u8> {
    vec![0, 0, 0, 0, 0, 0, 0, n]
}

#[allow(clippy::too_many_arguments)] // a span literal: every field is used once
fn span(
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: SpanKind,
    start: u64,
    end: u64,
    attributes: Vec<KeyValue>,
    error: bool,
) -> Span {
    Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: span_id(id),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        status: Some(Status {
            code: if error {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: if error {
                "smtp: connection refused".to_owned()
            } else {
                String::new()
            },
        }),
        ..Default::default()
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv(semconv::SERVICE_NAME, service),
                kv(semconv::TELEMETRY_SDK_LANGUAGE, "rust"),
                kv(semconv::CLOUD_REGION, "eu-west-1"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "throughline-test".to_owned(),
                version: "0.1.0".to_owned(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Nanoseconds since the Unix epoch, a few minutes ago (inside every page's default window,
/// and old enough to have settled).
pub fn base_time() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now - 5 * 60 * 1_000_000_000
}

pub fn two_service_trace(t0: u64) -> ExportTraceServiceRequest {
    let ms = |n: u64| t0 + n * 1_000_000;
    let consumer_start = ms(40) + QUEUE_NANOS;
    let c_ms = |n: u64| consumer_start + n * 1_000_000;
    let api = vec![
        span(
            0xa1,
            None,
            "POST /signup",
            SpanKind::Server,
            ms(0),
            ms(48),
            vec![
                kv(semconv::HTTP_REQUEST_METHOD, "POST"),
                kv(semconv::HTTP_ROUTE, "/signup"),
                kv(semconv::HTTP_RESPONSE_STATUS_CODE, 202),
                kv("app.user_id", USER_ID),
            ],
            false,
        ),
        span(
            0xa2,
            Some(0xa1),
            "validate signup",
            SpanKind::Internal,
            ms(2),
            ms(12),
            vec![],
            false,
        ),
        span(
            0xa3,
            Some(0xa1),
            "onboarding-queue send",
            SpanKind::Producer,
            ms(20),
            ms(40),
            vec![
                kv(semconv::MESSAGING_SYSTEM, "aws_sqs"),
                kv(semconv::MESSAGING_DESTINATION_NAME, QUEUE),
                kv(semconv::MESSAGING_OPERATION_TYPE, "send"),
            ],
            false,
        ),
        span(
            0xa4,
            Some(0xc2),
            "POST /internal/welcome",
            SpanKind::Server,
            c_ms(12),
            c_ms(30),
            vec![
                kv(semconv::HTTP_REQUEST_METHOD, "POST"),
                kv(semconv::HTTP_ROUTE, "/internal/welcome"),
                kv(semconv::HTTP_RESPONSE_STATUS_CODE, 200),
            ],
            false,
        ),
    ];
    let mut failing = span(
        0xc3,
        Some(0xc1),
        "send welcome email",
        SpanKind::Client,
        c_ms(40),
        c_ms(55),
        vec![kv(semconv::SERVER_ADDRESS, "smtp.example.com")],
        true,
    );
    failing.events.push(Event {
        time_unix_nano: c_ms(54),
        name: "exception".to_owned(),
        attributes: vec![
            kv(semconv::EXCEPTION_TYPE, "SmtpError"),
            kv(semconv::EXCEPTION_MESSAGE, "connection refused"),
            kv(semconv::EXCEPTION_STACKTRACE, "SmtpError: connection refused\n    at send_email (mailer.rs:42)\n    at handler (main.rs:17)"),
        ],
        ..Default::default()
    });
    let lambda = vec![
        span(
            0xc1,
            Some(0xa3),
            "onboarding-queue process",
            SpanKind::Consumer,
            consumer_start,
            c_ms(60),
            vec![
                kv(semconv::MESSAGING_SYSTEM, "aws_sqs"),
                kv(semconv::MESSAGING_DESTINATION_NAME, QUEUE),
                kv(semconv::MESSAGING_OPERATION_TYPE, "process"),
                kv("app.user_id", USER_ID),
            ],
            false,
        ),
        span(
            0xc2,
            Some(0xc1),
            "POST",
            SpanKind::Client,
            c_ms(10),
            c_ms(32),
            vec![
                kv(semconv::HTTP_REQUEST_METHOD, "POST"),
                kv(semconv::URL_FULL, "http://127.0.0.1:8080/internal/welcome"),
                kv(semconv::SERVER_ADDRESS, "127.0.0.1"),
            ],
            false,
        ),
        failing,
    ];
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(API, api), resource_spans(LAMBDA, lambda)],
    }
}

/// A trace with `n` spans in a few deep chains, for the big-trace check.
pub fn big_trace(t0: u64, trace_id: [u8; 16], n: usize) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let parent = match i {
            0 => Vec::new(),
            1..=9 => 1u64.to_be_bytes().to_vec(),
            _ => (i / 10 + 1).to_be_bytes().to_vec(),
        };
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: parent,
            name: format!("step {i}"),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: t0 + i * 10_000,
            end_time_unix_nano: t0 + i * 10_000 + 500_000,
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans("batch-worker", spans)],
    }
}

/// A trace whose root never arrived: one worker span whose parent is missing.
pub const ORPHAN_TRACE_HEX: &str = "0000000000000000000000000000abcd";

pub fn orphan_trace(t0: u64) -> ExportTraceServiceRequest {
    let mut id = [0u8; 16];
    id[14] = 0xab;
    id[15] = 0xcd;
    let orphan = Span {
        trace_id: id.to_vec(),
        span_id: span_id(0xe1),
        parent_span_id: span_id(0xe0),
        name: "onboarding-queue process".to_owned(),
        kind: SpanKind::Consumer as i32,
        start_time_unix_nano: t0,
        end_time_unix_nano: t0 + 5_000_000,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(LAMBDA, vec![orphan])],
    }
}
