//! Flush against real OTLP endpoints on loopback: a gRPC receiver gets the spans even when the
//! flush is called from a `current_thread` runtime (the batch-processor-plus-tonic trap); an
//! endpoint that accepts TCP but never answers gives `TimedOut`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::Tracer as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use throughline_telemetry::{FlushOutcome, Telemetry, TelemetryConfig};
use throughline_testkit::{free_loopback_addr, wait_for_port};

#[derive(Debug, Default, Clone)]
struct Received {
    authorization: Vec<String>,
    span_names: BTreeSet<String>,
    service_names: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct Receiver(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().expect("receiver lock");
        if let Some(auth) = request.metadata().get("authorization") {
            got.authorization
                .push(auth.to_str().unwrap_or("<binary>").to_owned());
        }
        for rs in &request.get_ref().resource_spans {
            for kv in rs.resource.iter().flat_map(|r| &r.attributes) {
                if kv.key == "service.name"
                    && let Some(AnyValue::StringValue(s)) =
                        kv.value.as_ref().and_then(|v| v.value.clone())
                {
                    got.service_names.insert(s);
                }
            }
            for ss in &rs.scope_spans {
                got.span_names
                    .extend(ss.spans.iter().map(|s| s.name.clone()));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts an OTLP/gRPC trace receiver on its own runtime thread (as a remote collector would be).
fn start_receiver() -> (SocketAddr, Receiver) {
    let addr = free_loopback_addr();
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve(addr),
        )
        .expect("receiver serves");
    });
    assert!(
        wait_for_port(addr, Duration::from_secs(5)),
        "the OTLP receiver did not start on {addr}"
    );
    (addr, receiver)
}

fn grpc_config(endpoint: &str, extra: &[(&str, &str)]) -> TelemetryConfig {
    let mut vars = vec![
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        // Nothing is exported by the timer during the test: only the flush can deliver.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ];
    vars.extend_from_slice(extra);
    TelemetryConfig::from_env(vars).expect("valid test configuration")
}

fn emit_spans(telemetry: &Telemetry) {
    let tracer = telemetry.tracer("flush-test").expect("the SDK is enabled");
    tracer.in_span("invocation", |_| {
        tracer.in_span("sqs-record", |_| {});
    });
}

#[test]
fn flush_from_a_current_thread_runtime_reaches_the_grpc_receiver() {
    let (addr, receiver) = start_receiver();
    let config = grpc_config(
        &format!("http://{addr}"),
        &[
            ("OTEL_SERVICE_NAME", "flush-test"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"),
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    let outcome = rt.block_on(async {
        // Built and flushed on the current_thread runtime's only thread, inside block_on.
        let telemetry = Telemetry::builder(config)
            .build()
            .expect("telemetry builds");
        emit_spans(&telemetry);
        telemetry.flush(Duration::from_secs(5))
    });
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    let got = receiver.0.lock().expect("receiver lock").clone();
    assert_eq!(
        got.span_names,
        BTreeSet::from(["invocation".to_owned(), "sqs-record".to_owned()])
    );
    assert_eq!(got.service_names, BTreeSet::from(["flush-test".to_owned()]));
    assert!(
        got.authorization.iter().all(|a| a == "Bearer abc") && !got.authorization.is_empty(),
        "authorization metadata: {:?}",
        got.authorization
    );
}

#[test]
fn flush_async_on_a_current_thread_runtime_reaches_the_grpc_receiver() {
    let (addr, receiver) = start_receiver();
    let config = grpc_config(&format!("http://{addr}"), &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    let outcome = rt.block_on(async {
        let telemetry = Telemetry::builder(config)
            .build()
            .expect("telemetry builds");
        emit_spans(&telemetry);
        telemetry.flush_async(Duration::from_secs(5)).await
    });
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    assert!(
        receiver
            .0
            .lock()
            .expect("receiver lock")
            .span_names
            .contains("sqs-record")
    );
}

/// A configuration exporting to an endpoint that accepts connections and holds them open without
/// ever writing a byte (with 30 s exporter timeouts), and a current_thread runtime to flush on.
fn black_hole_setup() -> (TelemetryConfig, tokio::runtime::Runtime) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let config = grpc_config(
        &format!("http://{addr}"),
        &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "30000"),
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    (config, rt)
}

#[test]
fn export_on_flush_sends_nothing_before_the_flush_and_everything_at_it() {
    let (addr, receiver) = start_receiver();
    // A batch processor would export on this 1 ms timer; the on-flush pipeline has no timer.
    let config = grpc_config(
        &format!("http://{addr}"),
        &[("OTEL_BSP_SCHEDULE_DELAY", "1")],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    let telemetry = Telemetry::builder(config)
        .export_on_flush()
        .build()
        .expect("telemetry builds");
    emit_spans(&telemetry);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        receiver
            .0
            .lock()
            .expect("receiver lock")
            .span_names
            .is_empty(),
        "spans left before the flush"
    );
    // Awaited on a current_thread runtime: the export runs on the guard's runtime, not this one.
    let outcome = rt.block_on(telemetry.flush_async(Duration::from_secs(5)));
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    assert_eq!(
        receiver.0.lock().expect("receiver lock").span_names,
        BTreeSet::from(["invocation".to_owned(), "sqs-record".to_owned()])
    );
    // The blocking flush works the same from inside block_on.
    let tracer = telemetry.tracer("flush-test").expect("the SDK is enabled");
    tracer.in_span("second-invocation", |_| {});
    let outcome = rt.block_on(async { telemetry.flush(Duration::from_secs(5)) });
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    assert!(
        receiver
            .0
            .lock()
            .expect("receiver lock")
            .span_names
            .contains("second-invocation")
    );
}

#[test]
fn export_on_flush_against_an_endpoint_that_never_answers_times_out() {
    let (config, rt) = black_hole_setup();
    let telemetry = Telemetry::builder(config)
        .export_on_flush()
        .build()
        .expect("telemetry builds");
    emit_spans(&telemetry);
    let flush = rt.block_on(telemetry.flush_async(Duration::from_millis(300)));
    assert!(
        matches!(flush, FlushOutcome::TimedOut),
        "flush outcome: {flush:?}"
    );
    let shutdown = telemetry.shutdown(Duration::from_millis(300));
    assert!(
        matches!(shutdown, FlushOutcome::Exported | FlushOutcome::TimedOut),
        "shutdown outcome: {shutdown:?}"
    );
}

#[test]
fn flush_against_an_endpoint_that_never_answers_times_out() {
    let (config, rt) = black_hole_setup();
    let (flush, shutdown) = rt.block_on(async {
        let telemetry = Telemetry::builder(config)
            .build()
            .expect("telemetry builds");
        emit_spans(&telemetry);
        let flush = telemetry.flush(Duration::from_millis(300));
        let shutdown = telemetry.shutdown(Duration::from_millis(300));
        (flush, shutdown)
    });
    assert!(
        matches!(flush, FlushOutcome::TimedOut),
        "flush outcome: {flush:?}"
    );
    assert!(
        matches!(shutdown, FlushOutcome::TimedOut),
        "shutdown outcome: {shutdown:?}"
    );
}

#[test]
fn flush_against_a_closed_port_reports_the_failure() {
    let addr = free_loopback_addr();
    // Retries off: the first refused connection is the outcome (tests/collector_outage.rs has
    // the retries and their bound).
    let config = grpc_config(
        &format!("http://{addr}"),
        &[("THROUGHLINE_OTLP_RETRIES", "0")],
    );
    let telemetry = Telemetry::builder(config)
        .build()
        .expect("telemetry builds");
    emit_spans(&telemetry);
    let outcome = telemetry.flush(Duration::from_secs(5));
    assert!(
        matches!(outcome, FlushOutcome::Failed(_)),
        "flush outcome: {outcome:?}"
    );
    // The failure names the endpoint and what is wrong with it.
    let message = outcome.to_string();
    assert!(
        message.contains(&format!("http://{addr}")) && message.contains("nothing is listening"),
        "{message}"
    );
}

#[test]
fn a_disabled_sdk_has_no_tracer_and_nothing_to_flush() {
    let config = TelemetryConfig::from_env([("OTEL_SDK_DISABLED", "true")]).expect("valid");
    let telemetry = Telemetry::builder(config)
        .build()
        .expect("telemetry builds");
    assert!(telemetry.tracer("x").is_none());
    assert!(telemetry.flush(Duration::from_millis(10)).is_exported());
}

#[test]
fn dropping_the_guard_inside_a_runtime_exports_what_is_pending() {
    let exporter = throughline_telemetry::testing::InMemorySpanExporter::new();
    let config = TelemetryConfig::from_env([("OTEL_BSP_SCHEDULE_DELAY", "600000")]).expect("valid");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    rt.block_on(async {
        let telemetry = Telemetry::builder(config)
            .span_exporter(exporter.clone())
            .build()
            .expect("telemetry builds");
        emit_spans(&telemetry);
        // Dropped here, inside the async context.
    });
    let tree = exporter.span_tree();
    tree.assert_parent("sqs-record", "invocation");
}
