//! One batch of 512 spans shaped like the shop's (SERVER, CLIENT and database spans with their
//! attributes) encoded as an OTLP trace export: throughline's encoder, straight from the span
//! data, against the baseline in the same run, opentelemetry-proto's transform then prost (what
//! opentelemetry-otlp's exporters do). Both are given the batch by value and free it.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;
use throughline_telemetry::otlp_encode::{EncodedResource, encode_export};

fn shop_span(i: u64, scope: &InstrumentationScope) -> SpanData {
    let start = SystemTime::now();
    let (name, kind, attributes): (Cow<'static, str>, SpanKind, Vec<KeyValue>) = match i % 3 {
        0 => (
            "GET /products".into(),
            SpanKind::Server,
            vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/products"),
                KeyValue::new("url.path", "/products".to_owned()),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("server.port", 8014_i64),
                KeyValue::new(
                    "user_agent.original",
                    "throughline-load-generator".to_owned(),
                ),
                KeyValue::new("http.response.status_code", 200_i64),
            ],
        ),
        1 => (
            "SELECT products".into(),
            SpanKind::Client,
            vec![
                KeyValue::new("db.system.name", "sqlite"),
                KeyValue::new("db.namespace", "catalog"),
                KeyValue::new(
                    "db.query.text",
                    "SELECT id, name, price_cents FROM products WHERE category = ?1 LIMIT ?2"
                        .to_owned(),
                ),
                KeyValue::new("db.collection.name", "products"),
                KeyValue::new("db.operation.name", "SELECT"),
                KeyValue::new("db.response.returned_rows", 20_i64),
                KeyValue::new("shop.phase", "normal"),
            ],
        ),
        _ => (
            "POST".into(),
            SpanKind::Client,
            vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("server.address", "127.0.0.1"),
                KeyValue::new("server.port", 8016_i64),
                KeyValue::new("url.full", "http://127.0.0.1:8016/orders/create".to_owned()),
                KeyValue::new("http.response.status_code", 201_i64),
            ],
        ),
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(i) << 64 | 0x9c),
            SpanId::from(i + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: SpanId::from(i + 1000),
        parent_span_is_remote: i.is_multiple_of(3),
        span_kind: kind,
        name,
        start_time: start,
        end_time: start + Duration::from_micros(250),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

fn encode(c: &mut Criterion) {
    let scope = InstrumentationScope::builder("throughline-instrument")
        .with_version("0.1.0")
        .build();
    let batch: Vec<SpanData> = (0..512).map(|i| shop_span(i, &scope)).collect();
    let resource = Resource::builder()
        .with_attributes([
            KeyValue::new("service.name", "product-catalog"),
            KeyValue::new("service.namespace", "shop"),
        ])
        .build();
    let ours = EncodedResource::new(&resource);
    let theirs = ResourceAttributesWithSchema::from(&resource);

    let mut group = c.benchmark_group("otlp_trace_export_512_spans");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("baseline_transform_then_prost", |b| {
        b.iter_batched(
            || batch.clone(),
            |batch| {
                let resource_spans = group_spans_by_resource_and_scope(batch, &theirs);
                black_box(ExportTraceServiceRequest { resource_spans }.encode_to_vec())
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("throughline_direct", |b| {
        b.iter_batched(
            || batch.clone(),
            |batch| {
                let body = encode_export(&batch, &ours);
                drop(batch);
                black_box(body)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
