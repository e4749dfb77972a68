//! The Lambda flush: one invocation's spans (an invocation span, a batch span and ten records of
//! fifteen spans each, 152 in all) ended and then flushed over OTLP/gRPC to a receiver on
//! loopback that decodes every request. "on_flush" is the worker's pipeline
//! (`export_on_flush` + `flush_async`); the baseline is the SDK's batch span processor behind the
//! same bounded flush (`Telemetry::flush`), as the worker flushed before.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use throughline_telemetry::{Telemetry, TelemetryConfig};
use throughline_testkit::{free_loopback_addr, wait_for_port};

const RECORDS: usize = 10;
const STEPS_PER_RECORD: usize = 14;

#[derive(Debug, Default)]
struct Receiver;

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        std::hint::black_box(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on its own one-thread runtime, as a collector process would be.
fn start_receiver() -> SocketAddr {
    let addr = free_loopback_addr();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver))
                .serve(addr),
        )
        .expect("receiver serves");
    });
    assert!(wait_for_port(addr, Duration::from_secs(5)), "receiver up");
    addr
}

fn telemetry(addr: SocketAddr, on_flush: bool) -> Telemetry {
    let endpoint = format!("http://{addr}");
    let config = TelemetryConfig::from_env([
        ("OTEL_SERVICE_NAME", "flush-bench"),
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Only the flush exports: the batch processor's timer never fires during a sample.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .expect("valid configuration");
    let builder = Telemetry::builder(config);
    let builder = if on_flush {
        builder.export_on_flush()
    } else {
        builder
    };
    builder.build().expect("telemetry builds")
}

/// Ends one invocation's worth of spans, shaped like the onboarding worker's.
fn invocation(telemetry: &Telemetry) {
    let tracer = telemetry.tracer("flush-bench").expect("enabled");
    tracer.in_span("onboarding-lambda", |_| {
        tracer.in_span("batch onboarding-queue", |_| {
            for record in 0..RECORDS {
                tracer.in_span("process onboarding-queue", |_| {
                    for step in 0..STEPS_PER_RECORD {
                        let mut span = tracer.start("step");
                        span.set_attribute(KeyValue::new("onboarding.step", step as i64));
                        span.set_attribute(KeyValue::new("customer.id", format!("C-{record}")));
                        span.end();
                    }
                });
            }
        });
    });
}

fn flush(c: &mut Criterion) {
    let addr = start_receiver();
    let on_flush = telemetry(addr, true);
    let batched = telemetry(addr, false);
    let caller = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("caller runtime");

    let mut group = c.benchmark_group("lambda_flush_152_spans");
    group.bench_function("batch_processor_flush", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                invocation(&batched);
                let started = Instant::now();
                assert!(batched.flush(Duration::from_secs(5)).is_exported());
                spent += started.elapsed();
            }
            spent
        })
    });
    group.bench_function("on_flush", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                invocation(&on_flush);
                let started = Instant::now();
                let outcome = caller.block_on(on_flush.flush_async(Duration::from_secs(5)));
                assert!(outcome.is_exported());
                spent += started.elapsed();
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, flush);
criterion_main!(benches);
