//! One batch of 512 spans shaped like the shop's (SERVER, CLIENT and database spans with their
//! attributes) encoded as an OTLP trace export: throughline's encoder, straight from the span
//! data, against the baseline in the same run, opentelemetry-proto's transform then prost (what
//! opentelemetry-otlp's exporters do). Both are given the batch by value and free it.
//!
//! The same for 512 log records shaped like the checkout's `order_created` (a body, four
//! attributes, the trace context), encoded by reference as the log exporters are given them.

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogProcessor, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;
use throughline_telemetry::otlp_encode::logs::encode_logs_export;
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

/// Keeps every emitted record, as the batch log processor's queue does.
#[derive(Debug, Clone, Default)]
struct Keep(Arc<Mutex<Vec<(SdkLogRecord, InstrumentationScope)>>>);

impl LogProcessor for Keep {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let mut kept = self.0.lock().expect("not poisoned");
        kept.push((record.clone(), scope.clone()));
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn encode_logs(c: &mut Criterion) {
    let keep = Keep::default();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(keep.clone())
        .build();
    let logger = provider.logger("throughline-telemetry");
    for i in 0..512_u64 {
        let mut record = logger.create_log_record();
        record.set_event_name("order_created");
        record.set_target("checkout::orders");
        record.set_timestamp(SystemTime::now());
        record.set_severity_number(Severity::Info);
        record.set_severity_text("INFO");
        record.set_body(AnyValue::from("order_created"));
        record.add_attribute("order.id", format!("ord-{i:06}"));
        record.add_attribute("order.total", 129.5);
        record.add_attribute("user.id", format!("user-{}", i % 97));
        record.add_attribute("checkout.items", 3_i64);
        record.set_trace_context(
            TraceId::from(u128::from(i) << 64 | 0x9c),
            SpanId::from(i + 1),
            Some(TraceFlags::SAMPLED),
        );
        logger.emit(record);
    }
    let kept = keep.0.lock().expect("not poisoned").clone();
    let refs: Vec<_> = kept.iter().map(|(r, s)| (r, s)).collect();
    let resource = Resource::builder()
        .with_attributes([
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.namespace", "shop"),
        ])
        .build();
    let ours = EncodedResource::new(&resource);
    let theirs = ResourceAttributesWithSchema::from(&resource);

    let mut group = c.benchmark_group("otlp_logs_export_512_records");
    group.throughput(Throughput::Elements(refs.len() as u64));
    group.bench_function("baseline_transform_then_prost", |b| {
        b.iter(|| {
            let resource_logs = group_logs_by_resource_and_scope(&LogBatch::new(&refs), &theirs);
            black_box(ExportLogsServiceRequest { resource_logs }.encode_to_vec())
        })
    });
    group.bench_function("throughline_direct", |b| {
        b.iter(|| black_box(encode_logs_export(&LogBatch::new(&refs), &ours)))
    });
    group.finish();
}

criterion_group!(benches, encode, encode_logs);
criterion_main!(benches);
