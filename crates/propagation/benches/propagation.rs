//! traceparent extract and inject: ours against the SDK's `TraceContextPropagator`, same run.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, SpanId, TraceId};
use throughline_propagation::TraceContextPropagator;

/// A carrier that costs the same for both propagators and allocates nothing on `get`.
#[derive(Debug)]
struct Pairs(Vec<(&'static str, &'static str)>);

impl Extractor for Pairs {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

/// An injector that only measures what it receives: both propagators pay for their `String`s.
#[derive(Debug, Default)]
struct Sink(usize);

impl Injector for Sink {
    fn set(&mut self, _key: &str, value: String) {
        self.0 += value.len();
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn bench(c: &mut Criterion) {
    let ours = TraceContextPropagator::new();
    let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let empty = Context::new();

    let only_parent = Pairs(vec![("traceparent", TRACEPARENT)]);
    let with_state = Pairs(vec![
        ("traceparent", TRACEPARENT),
        ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    ]);

    let mut group = c.benchmark_group("traceparent_extract");
    group.bench_function("ours", |b| {
        b.iter(|| ours.extract_with_context(&empty, black_box(&only_parent)))
    });
    group.bench_function("sdk", |b| {
        b.iter(|| sdk.extract_with_context(&empty, black_box(&only_parent)))
    });
    group.finish();

    let mut group = c.benchmark_group("traceparent_tracestate_extract");
    group.bench_function("ours", |b| {
        b.iter(|| ours.extract_with_context(&empty, black_box(&with_state)))
    });
    group.bench_function("sdk", |b| {
        b.iter(|| sdk.extract_with_context(&empty, black_box(&with_state)))
    });
    group.finish();

    let sc = SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
        SpanId::from(0x00f067aa0ba902b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let cx = Context::new().with_remote_span_context(sc);
    let mut group = c.benchmark_group("traceparent_inject");
    group.bench_function("ours", |b| {
        b.iter(|| {
            let mut sink = Sink::default();
            ours.inject_context(black_box(&cx), &mut sink);
            sink.0
        })
    });
    group.bench_function("sdk", |b| {
        b.iter(|| {
            let mut sink = Sink::default();
            sdk.inject_context(black_box(&cx), &mut sink);
            sink.0
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
