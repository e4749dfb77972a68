//! Interop: the Python OpenTelemetry SDK's OTLP exporters (gRPC and HTTP/protobuf, both gzip)
//! and the Rust `opentelemetry-otlp` exporters (gRPC and HTTP/protobuf) send a trace crossing two
//! services, each protocol to each of the two OTLP ports; the query API returns it whole, with the
//! consumer's parent as `CHILD_OF` and its link as `FOLLOWS_FROM`.

mod common;

use common::*;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use throughline_telemetry::{Telemetry, TelemetryConfig};

/// Checks the two-service trace: three spans, the consumer in the worker's process with its
/// producer as both parent and link.
async fn assert_crossing_trace(
    c: &TestCollector,
    trace_id: &str,
    producer_span_id: &str,
    api: &str,
    worker: &str,
) {
    let (status, body) = get_json(&c.query_url(&format!("/api/traces/{trace_id}"))).await;
    assert_eq!(status, 200, "{body}");
    let trace = &body["data"][0];
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 3, "{body}");
    let consumer = spans
        .iter()
        .find(|s| {
            s["operationName"]
                .as_str()
                .is_some_and(|n| n.ends_with("process"))
        })
        .expect("consumer");
    assert_eq!(
        trace["processes"][consumer["processID"].as_str().expect("pid")]["serviceName"],
        worker
    );
    let refs = consumer["references"].as_array().expect("references");
    assert!(
        refs.iter()
            .any(|r| r["refType"] == "CHILD_OF" && r["spanID"] == producer_span_id),
        "{refs:?}"
    );
    assert!(
        refs.iter()
            .any(|r| r["refType"] == "FOLLOWS_FROM" && r["spanID"] == producer_span_id),
        "{refs:?}"
    );
    let root = spans
        .iter()
        .find(|s| s["references"].as_array().is_some_and(Vec::is_empty))
        .expect("root");
    assert_eq!(
        trace["processes"][root["processID"].as_str().expect("pid")]["serviceName"],
        api
    );

    let (_, integrity) =
        get_json(&c.query_url(&format!("/api/throughline/integrity?traceID={trace_id}"))).await;
    assert_eq!(integrity["data"][0]["integrity"], "whole", "{integrity}");
}

async fn python_peer(c: &TestCollector, mode: &str, endpoint: String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_peer.py");
    let python = tokio::task::spawn_blocking(throughline_testkit::python)
        .await
        .expect("venv set-up");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([mode, &endpoint])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "python peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let trace_id = lines.next().expect("trace id printed").to_owned();
    let producer = lines.next().expect("producer span id printed").to_owned();
    assert_crossing_trace(
        c,
        &trace_id,
        &producer,
        &format!("py-api-{mode}"),
        &format!("py-worker-{mode}"),
    )
    .await;
}

/// Which OTLP port an exporter is pointed at.
#[derive(Clone, Copy)]
enum Port {
    Grpc,
    Http,
}

fn base_url(c: &TestCollector, port: Port) -> String {
    match port {
        Port::Grpc => format!("http://{}", c.running.grpc_addr),
        Port::Http => format!("http://{}", c.running.http_addr),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_grpc_exporter_on_the_grpc_port() {
    let c = start().await;
    python_peer(&c, "grpc", base_url(&c, Port::Grpc)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_grpc_exporter_on_the_http_port() {
    let c = start().await;
    python_peer(&c, "grpc", base_url(&c, Port::Http)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_http_protobuf_exporter_on_the_http_port() {
    let c = start().await;
    python_peer(&c, "http", base_url(&c, Port::Http)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_http_protobuf_exporter_on_the_grpc_port() {
    let c = start().await;
    python_peer(&c, "http", base_url(&c, Port::Grpc)).await;
}

/// The Rust exporter's two protocols.
#[derive(Clone, Copy)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// The project's own exporter set-up (`throughline-telemetry` from `OTEL_*`), as a service
/// configured by the standard variables builds it.
fn rust_telemetry(service: &'static str, protocol: Protocol, base: &str) -> Telemetry {
    let protocol = match protocol {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
    };
    let config = TelemetryConfig::from_env([
        ("OTEL_SERVICE_NAME", service),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", base),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
    ])
    .expect("telemetry config");
    Telemetry::builder(config)
        .build()
        .expect("telemetry builds")
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_grpc_exporter_on_the_grpc_port() {
    rust_exporter(Protocol::Grpc, Port::Grpc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_grpc_exporter_on_the_http_port() {
    rust_exporter(Protocol::Grpc, Port::Http).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_http_protobuf_exporter_on_the_http_port() {
    rust_exporter(Protocol::HttpProtobuf, Port::Http).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_http_protobuf_exporter_on_the_grpc_port() {
    rust_exporter(Protocol::HttpProtobuf, Port::Grpc).await;
}

async fn rust_exporter(protocol: Protocol, port: Port) {
    let c = start().await;
    let base = base_url(&c, port);
    let api = rust_telemetry("rs-api", protocol, &base);
    let worker = rust_telemetry("rs-worker", protocol, &base);
    let api_tracer = api.tracer("interop-api").expect("traces on");
    let worker_tracer = worker.tracer("interop-worker").expect("traces on");

    let root = api_tracer
        .span_builder("GET /rs")
        .with_kind(SpanKind::Server)
        .start(&api_tracer);
    let root_cx = Context::current_with_span(root);
    let mut producer = api_tracer
        .span_builder("rs publish")
        .with_kind(SpanKind::Producer)
        .start_with_context(&api_tracer, &root_cx);
    let producer_sc = opentelemetry::trace::Span::span_context(&producer).clone();
    opentelemetry::trace::Span::end(&mut producer);
    let remote_parent = Context::new().with_remote_span_context(producer_sc.clone());
    let mut consumer = worker_tracer
        .span_builder("rs process")
        .with_kind(SpanKind::Consumer)
        .with_links(vec![Link::new(
            producer_sc.clone(),
            vec![KeyValue::new("messaging.operation.type", "process")],
            0,
        )])
        .start_with_context(&worker_tracer, &remote_parent);
    opentelemetry::trace::Span::end(&mut consumer);
    root_cx.span().end();

    // The batch processors export from their own threads; flushing blocks until they have.
    tokio::task::spawn_blocking(move || {
        let timeout = std::time::Duration::from_secs(10);
        let api = api.shutdown(timeout);
        assert!(api.is_exported(), "api spans not exported: {api:?}");
        let worker = worker.shutdown(timeout);
        assert!(
            worker.is_exported(),
            "worker spans not exported: {worker:?}"
        );
    })
    .await
    .expect("flush");
    assert_crossing_trace(
        &c,
        &producer_sc.trace_id().to_string(),
        &producer_sc.span_id().to_string(),
        "rs-api",
        "rs-worker",
    )
    .await;
}
