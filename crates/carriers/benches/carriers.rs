//! Each carrier's inject then extract with `tracecontext,baggage` (the default propagators),
//! for a sampled span without tracestate or baggage: the common hop. The same-run baseline is the
//! SDK's own `tracecontext,baggage` composite (`opentelemetry_sdk::propagation`), on the same
//! `HeaderMap` carrier and on the SDK's plain `HashMap` carrier.

use std::collections::HashMap;
use std::hint::black_box;

use aws_lambda_events::event::sqs::SqsMessage;
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, SpanId, TraceId};
use throughline_carriers::*;
use throughline_propagation::Propagators;

fn bench(c: &mut Criterion) {
    let propagators = Propagators::default();
    let sc = SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
        SpanId::from(0x00f067aa0ba902b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let cx = Context::new().with_remote_span_context(sc);
    let empty = Context::new();

    let sdk = opentelemetry::propagation::TextMapCompositePropagator::new(vec![
        Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
        Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
    ]);

    let mut group = c.benchmark_group("carrier_inject_extract");
    group.bench_function("baseline_sdk_propagators_headermap", |b| {
        b.iter(|| {
            let mut headers = http::HeaderMap::new();
            sdk.inject_context(black_box(&cx), &mut HeaderInjector(&mut headers));
            sdk.extract_with_context(&empty, &HeaderExtractor(&headers))
        })
    });
    group.bench_function("baseline_sdk_propagators_hashmap", |b| {
        b.iter(|| {
            let mut carrier: HashMap<String, String> = HashMap::new();
            sdk.inject_context(black_box(&cx), &mut carrier);
            sdk.extract_with_context(&empty, &carrier)
        })
    });
    group.bench_function("http_headermap", |b| {
        b.iter(|| {
            let mut headers = http::HeaderMap::new();
            propagators.inject_context(black_box(&cx), &mut HeaderInjector(&mut headers));
            propagators.extract_with_context(&empty, &HeaderExtractor(&headers))
        })
    });
    group.bench_function("sqs_message_attributes", |b| {
        b.iter(|| {
            let mut attributes = HashMap::new();
            inject_sqs_message_attributes(&propagators, black_box(&cx), &mut attributes)
                .expect("one attribute fits");
            propagators.extract_with_context(&empty, &SqsMessageAttributesExtractor(&attributes))
        })
    });
    let mut record = SqsMessage::default();
    group.bench_function("lambda_sqs_record", |b| {
        b.iter(|| {
            // Inject into the record's attributes as Lambda would deliver them, then extract.
            let mut collector = SqsAttributeCollector::default();
            propagators.inject_context(black_box(&cx), &mut collector);
            record.message_attributes.clear();
            for (key, value) in collector.fields {
                let mut attribute = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
                attribute.string_value = Some(value);
                record.message_attributes.insert(key, attribute);
            }
            extract_lambda_sqs_record(&propagators, &record)
        })
    });
    let field = EventBridgeTraceField::default();
    group.bench_function("eventbridge_detail", |b| {
        b.iter(|| {
            let mut detail = serde_json::json!({"order_id": 7});
            field
                .inject(&propagators, black_box(&cx), &mut detail)
                .expect("detail is an object");
            field.extract(&propagators, &detail)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
