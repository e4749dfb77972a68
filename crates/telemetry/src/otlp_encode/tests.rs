//! The encoder against opentelemetry-proto's transform and prost's encoding of the same batch,
//! byte for byte.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;

use super::{EncodedResource, encode_export};

/// What opentelemetry-otlp sends for the batch: the transform, then prost.
fn reference(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
    let resource = ResourceAttributesWithSchema::from(resource);
    let resource_spans = group_spans_by_resource_and_scope(batch.to_vec(), &resource);
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn assert_same(batch: &[SpanData], resource: &Resource) {
    let ours = encode_export(batch, &EncodedResource::new(resource));
    let theirs = reference(batch, resource);
    if ours != theirs {
        // Decoded, the difference reads as fields rather than bytes.
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice());
        assert_eq!(
            format!("{decoded:#?}"),
            format!(
                "{:#?}",
                ExportTraceServiceRequest::decode(theirs.as_slice())
            ),
        );
        panic!("same message, different bytes:\n ours {ours:?}\ntheirs {theirs:?}");
    }
}

fn context(trace: u128, span: u64, sampled: bool, remote: bool, state: &str) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = if state.is_empty() {
        TraceState::NONE
    } else {
        TraceState::from_key_value(
            state
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .collect::<Vec<_>>(),
        )
        .expect("a valid tracestate")
    };
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        remote,
        state,
    )
}

fn at(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn span(name: &'static str, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: context(
            0x0af7651916cd43dd8448eb211c80319c,
            0xb7ad6b7169203331,
            true,
            false,
            "",
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(name),
        start_time: at(1_764_720_000_123_456_789),
        end_time: at(1_764_720_000_125_000_000),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

fn every_kind_of_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.request.method", "POST"),
        KeyValue::new("empty.string", ""),
        KeyValue::new("", "an empty key"),
        KeyValue::new("owned", String::from("ünïcødé ✓")),
        KeyValue::new("int.zero", 0_i64),
        KeyValue::new("int.negative", -42_i64),
        KeyValue::new("int.min", i64::MIN),
        KeyValue::new("int.max", i64::MAX),
        KeyValue::new("bool.false", false),
        KeyValue::new("bool.true", true),
        KeyValue::new("double", 3.25_f64),
        KeyValue::new("double.zero", 0.0_f64),
        KeyValue::new("double.nan", f64::NAN),
        KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("ints", Value::Array(Array::I64(vec![0, -1, 300]))),
        KeyValue::new("doubles", Value::Array(Array::F64(vec![0.5, -0.0]))),
        KeyValue::new(
            "strings",
            Value::Array(Array::String(vec![
                StringValue::from("a"),
                StringValue::from(""),
            ])),
        ),
        KeyValue::new("empty.array", Value::Array(Array::I64(Vec::new()))),
        KeyValue::new("long", "x".repeat(300)),
    ]
}

#[test]
fn a_bare_span_encodes_as_prost_encodes_its_transform() {
    let scope = InstrumentationScope::builder("shop").build();
    assert_same(
        &[span("GET /products", &scope)],
        &Resource::builder_empty().build(),
    );
}

#[test]
fn every_field_and_value_kind_encodes_as_prost_encodes_its_transform() {
    let scope = InstrumentationScope::builder("throughline-instrument")
        .with_version("0.1.0")
        .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
        .with_attributes([KeyValue::new("scope.attr", 7_i64)])
        .build();
    let mut full = span("SELECT products", &scope);
    full.span_context = context(u128::MAX, 1, false, false, "vendor=abc,other=x-y");
    full.parent_span_id = SpanId::from(0x00f067aa0ba902b7);
    full.parent_span_is_remote = true;
    full.span_kind = SpanKind::Client;
    full.name = Cow::Owned("owned name ✓".to_owned());
    full.attributes = every_kind_of_value();
    full.dropped_attributes_count = 3;
    full.events.events.push(Event::new(
        "exception",
        at(1_764_720_000_124_000_000),
        every_kind_of_value(),
        1,
    ));
    full.events
        .events
        .push(Event::new("", UNIX_EPOCH, Vec::new(), 0));
    full.events.dropped_count = 2;
    full.links.links.push(Link::new(
        context(7, 8, true, true, "k=v"),
        vec![KeyValue::new("messaging.message.id", "m-1")],
        4,
    ));
    full.links
        .links
        .push(Link::new(context(9, 10, false, false, ""), Vec::new(), 0));
    full.links.dropped_count = 5;
    full.status = Status::error("pool exhausted: 5 of 5 connections busy");

    let mut ok = span("ok", &scope);
    ok.span_kind = SpanKind::Server;
    ok.status = Status::Ok;
    let mut empty_error = span("", &scope);
    empty_error.span_kind = SpanKind::Producer;
    empty_error.status = Status::error("");
    let mut consumer = span("process", &scope);
    consumer.span_kind = SpanKind::Consumer;
    // A time before the epoch is sent as zero, an absent field.
    consumer.start_time = UNIX_EPOCH - Duration::from_secs(1);
    consumer.end_time = UNIX_EPOCH;

    let resource = Resource::builder_empty()
        .with_schema_url(
            [
                KeyValue::new("service.name", "checkout"),
                KeyValue::new("service.instance.id", "i-1"),
                KeyValue::new("process.pid", 4242_i64),
            ],
            "https://opentelemetry.io/schemas/1.37.0",
        )
        .build();
    assert_same(&[full, ok, empty_error, consumer], &resource);
}

#[test]
fn spans_of_interleaved_scopes_are_grouped_in_first_seen_order() {
    let a = InstrumentationScope::builder("a").build();
    let b = InstrumentationScope::builder("b").with_version("2").build();
    let b_other_version = InstrumentationScope::builder("b").with_version("3").build();
    let batch = [
        span("a1", &a),
        span("b1", &b),
        span("a2", &a),
        span("b'1", &b_other_version),
        span("b2", &b),
        span("a3", &a),
    ];
    let resource = Resource::builder_empty()
        .with_attributes([KeyValue::new("service.name", "load-generator")])
        .build();
    assert_same(&batch, &resource);
    let request = ExportTraceServiceRequest::decode(
        encode_export(&batch, &EncodedResource::new(&resource)).as_slice(),
    )
    .expect("our bytes decode");
    let groups: Vec<Vec<String>> = request.resource_spans[0]
        .scope_spans
        .iter()
        .map(|s| s.spans.iter().map(|s| s.name.clone()).collect())
        .collect();
    assert_eq!(
        groups,
        [vec!["a1", "a2", "a3"], vec!["b1", "b2"], vec!["b'1"]]
    );
}

/// A small deterministic generator (xorshift), so the mixed batch is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn a_thousand_mixed_spans_encode_as_prost_encodes_their_transform() {
    let scopes = [
        InstrumentationScope::builder("load-generator").build(),
        InstrumentationScope::builder("throughline-instrument")
            .with_version("0.1.0")
            .build(),
    ];
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let values = every_kind_of_value();
    let kinds = [
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ];
    let batch: Vec<SpanData> = (0..1000)
        .map(|i| {
            let mut s = span("step", &scopes[rng.below(2) as usize]);
            s.span_context = context(
                u128::from(rng.next()) << 64 | u128::from(rng.next()),
                rng.next() | 1,
                rng.below(2) == 0,
                false,
                "",
            );
            if rng.below(4) != 0 {
                s.parent_span_id = SpanId::from(rng.next() | 1);
                s.parent_span_is_remote = rng.below(3) == 0;
            }
            s.span_kind = kinds[rng.below(5) as usize].clone();
            s.name = Cow::Owned(format!("span {i}"));
            let start = 1_764_720_000_000_000_000 + rng.below(1 << 40);
            s.start_time = at(start);
            s.end_time = at(start + rng.below(1 << 30));
            for _ in 0..rng.below(12) {
                s.attributes
                    .push(values[rng.below(values.len() as u64) as usize].clone());
            }
            s.attributes
                .push(KeyValue::new("i", i64::from(i) * 1_000_003));
            if rng.below(10) == 0 {
                s.status = Status::error(format!("failure {i}"));
            } else if rng.below(10) == 0 {
                s.status = Status::Ok;
            }
            if rng.below(8) == 0 {
                s.events
                    .events
                    .push(Event::new("event", at(start + 1), Vec::new(), 0));
            }
            s
        })
        .collect();
    let resource = Resource::builder()
        .with_attributes([KeyValue::new("service.name", "product-catalog")])
        .build();
    assert_same(&batch, &resource);
}
