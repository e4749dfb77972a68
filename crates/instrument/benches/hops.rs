//! What the instrumentation costs per hop, against the same work untraced in the same run: an
//! axum request through `HttpServerLayer` (SERVER span, extract, `traceresponse`) and a Lambda
//! batch of ten records through `SqsBatchConsumer` (invocation, batch and ten record spans),
//! each with a sampling SDK provider whose exporter drops everything.

use std::hint::black_box;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use axum::Router;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use throughline_instrument::{HttpServerLayer, Invocation, SqsBatchConsumer};
use tower::ServiceExt as _;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

fn request() -> http::Request<axum::body::Body> {
    http::Request::get("/items/7")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(axum::body::Body::empty())
        .unwrap()
}

fn event() -> SqsEvent {
    let mut event = SqsEvent::default();
    for n in 0..10 {
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value = Some(format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{n:016x}-01"));
        attribute.data_type = Some("String".into());
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("m-{n}"));
        record.body = Some("{}".into());
        record
            .message_attributes
            .insert("traceparent".into(), attribute);
        event.records.push(record);
    }
    event
}

fn hops(c: &mut Criterion) {
    opentelemetry::global::set_text_map_propagator(
        throughline_propagation::TraceContextPropagator::new(),
    );
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(Discard)
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let plain = Router::new().route("/items/{id}", get(|| async { "an item" }));
    let traced = plain
        .clone()
        .layer(HttpServerLayer::new(provider.tracer("bench")).server_port(8080));

    let mut group = c.benchmark_group("http_server");
    group.bench_function("untraced", |b| {
        b.iter(|| {
            runtime
                .block_on(plain.clone().oneshot(black_box(request())))
                .unwrap()
        })
    });
    group.bench_function("traced", |b| {
        b.iter(|| {
            runtime
                .block_on(traced.clone().oneshot(black_box(request())))
                .unwrap()
        })
    });
    group.finish();

    let consumer = SqsBatchConsumer::new(provider.tracer("bench"), "orders");
    let mut group = c.benchmark_group("sqs_batch_of_10");
    group.bench_function("untraced", |b| {
        b.iter(|| {
            let event = event();
            runtime.block_on(async {
                for record in &event.records {
                    black_box(record.body.as_deref());
                }
            })
        })
    });
    group.bench_function("traced", |b| {
        b.iter(|| {
            let event = event();
            runtime.block_on(
                consumer.handle(&event, Invocation::default(), |r| async move {
                    black_box(r.body());
                    Ok(())
                }),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, hops);
criterion_main!(benches);
