//! Span start+end through throughline's set-up against the raw SDK in the same run: same sampler
//! (parentbased_always_on), same batch processor settings, an exporter that does nothing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use throughline_telemetry::{Telemetry, TelemetryConfig};

#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn raw_sdk(config: &TelemetryConfig) -> SdkTracerProvider {
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(config.batch.schedule_delay)
        .with_max_queue_size(config.batch.max_queue_size)
        .with_max_export_batch_size(config.batch.max_export_batch_size)
        .build();
    SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_span_processor(
            BatchSpanProcessor::builder(NoopExporter)
                .with_batch_config(batch)
                .build(),
        )
        .build()
}

fn span_start_end(c: &mut Criterion) {
    let config = TelemetryConfig::from_env([("OTEL_SERVICE_NAME", "bench")]).expect("valid");
    let raw = raw_sdk(&config);
    let ours = Telemetry::builder(config)
        .span_exporter(NoopExporter)
        .build()
        .expect("telemetry builds");

    let raw_tracer = raw.tracer("bench");
    let our_tracer = ours.tracer("bench").expect("enabled");

    let mut group = c.benchmark_group("span_start_end");
    group.bench_function("raw_sdk", |b| {
        b.iter(|| {
            let mut span = raw_tracer.start(black_box("operation"));
            span.end();
        })
    });
    group.bench_function("throughline", |b| {
        b.iter(|| {
            let mut span = our_tracer.start(black_box("operation"));
            span.end();
        })
    });
    group.bench_function("raw_sdk_child", |b| {
        b.iter(|| raw_tracer.in_span("parent", |_| raw_tracer.in_span("child", |_| {})))
    });
    group.bench_function("throughline_child", |b| {
        b.iter(|| our_tracer.in_span("parent", |_| our_tracer.in_span("child", |_| {})))
    });
    group.finish();
    let _ = ours.shutdown(Duration::from_secs(1));
    let _ = raw.shutdown();
}

criterion_group!(benches, span_start_end);
criterion_main!(benches);
