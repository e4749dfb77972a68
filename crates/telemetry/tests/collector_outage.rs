//! A collector that is down when spans are exported (as while `throughline up` restarts it):
//! the exporters retry, so every span arrives once a receiver comes up on the same port about two
//! seconds later, over gRPC and http/protobuf, batched and on flush; a receiver that stays down
//! past the retry bound gives a failed export that names the endpoint.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry::trace::Tracer as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use throughline_telemetry::{FlushOutcome, Telemetry, TelemetryConfig};
use throughline_testkit::free_loopback_addr;

/// The names of the spans a receiver took, over either protocol.
#[derive(Debug, Clone, Default)]
struct Received(Arc<Mutex<BTreeSet<String>>>);

impl Received {
    fn take(&self, request: &ExportTraceServiceRequest) {
        let mut names = self.0.lock().expect("receiver lock");
        for rs in &request.resource_spans {
            for ss in &rs.scope_spans {
                names.extend(ss.spans.iter().map(|s| s.name.clone()));
            }
        }
    }

    fn names(&self) -> BTreeSet<String> {
        self.0.lock().expect("receiver lock").clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take(request.get_ref());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn receive_http(State(received): State<Received>, body: Bytes) -> StatusCode {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            received.take(&request);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Starts a receiver on `addr` after `delay`, on its own runtime thread, as a restarted
/// collector comes back on its port.
fn start_receiver_later(protocol: Protocol, addr: SocketAddr, delay: Duration) -> Received {
    let received = Received::default();
    let state = received.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            match protocol {
                Protocol::Grpc => tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(state))
                    .serve(addr)
                    .await
                    .expect("gRPC receiver serves"),
                Protocol::HttpProtobuf => {
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .expect("bind the receiver's port");
                    let app = Router::new()
                        .route("/v1/traces", post(receive_http))
                        .with_state(state);
                    axum::serve(listener, app)
                        .await
                        .expect("HTTP receiver serves");
                }
            }
        });
    });
    received
}

fn telemetry(
    protocol: Protocol,
    addr: SocketAddr,
    on_flush: bool,
    extra: &[(&str, &str)],
) -> Telemetry {
    let endpoint = format!("http://{addr}");
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.name()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_METRICS_EXPORTER", "none"),
        // Nothing is exported by the timer: only the flush can deliver.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        // Several batches, so a retried batch is not the only one.
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
    ];
    vars.extend_from_slice(extra);
    let config = TelemetryConfig::from_env(vars).expect("valid test configuration");
    let builder = Telemetry::builder(config);
    let builder = if on_flush {
        builder.export_on_flush()
    } else {
        builder
    };
    builder.build().expect("telemetry builds")
}

fn emit(telemetry: &Telemetry, count: usize) -> BTreeSet<String> {
    let tracer = telemetry.tracer("outage-test").expect("the SDK is enabled");
    (0..count)
        .map(|i| {
            let name = format!("span-{i:02}");
            tracer.in_span(name.clone(), |_| {});
            name
        })
        .collect()
}

fn every_span_arrives_after_a_restart(protocol: Protocol, on_flush: bool) {
    let addr = free_loopback_addr();
    let telemetry = telemetry(protocol, addr, on_flush, &[]);
    let sent = emit(&telemetry, 35);
    let received = start_receiver_later(protocol, addr, Duration::from_secs(2));
    // Within the default retry bound (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s) for each batch.
    let outcome = telemetry.flush(Duration::from_secs(40));
    assert!(outcome.is_exported(), "flush outcome: {outcome}");
    assert_eq!(received.names(), sent);
}

#[test]
fn grpc_spans_survive_a_two_second_outage() {
    every_span_arrives_after_a_restart(Protocol::Grpc, false);
}

#[test]
fn http_protobuf_spans_survive_a_two_second_outage() {
    every_span_arrives_after_a_restart(Protocol::HttpProtobuf, false);
}

#[test]
fn grpc_spans_exported_on_flush_survive_a_two_second_outage() {
    every_span_arrives_after_a_restart(Protocol::Grpc, true);
}

#[test]
fn http_protobuf_spans_exported_on_flush_survive_a_two_second_outage() {
    every_span_arrives_after_a_restart(Protocol::HttpProtobuf, true);
}

fn an_outage_past_the_bound_fails_naming_the_endpoint(protocol: Protocol) {
    let addr = free_loopback_addr();
    // The retry bound is the exporter's timeout: one second here, well inside the flush's.
    let telemetry = telemetry(
        protocol,
        addr,
        false,
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")],
    );
    emit(&telemetry, 3);
    let outcome = telemetry.flush(Duration::from_secs(20));
    assert!(
        matches!(outcome, FlushOutcome::Failed(_)),
        "flush outcome: {outcome:?}"
    );
    let message = outcome.to_string();
    assert!(
        message.contains(&format!("http://{addr}")) && message.contains("nothing is listening"),
        "{message}"
    );
}

#[test]
fn grpc_outage_past_the_retry_bound_fails_naming_the_endpoint() {
    an_outage_past_the_bound_fails_naming_the_endpoint(Protocol::Grpc);
}

#[test]
fn http_protobuf_outage_past_the_retry_bound_fails_naming_the_endpoint() {
    an_outage_past_the_bound_fails_naming_the_endpoint(Protocol::HttpProtobuf);
}
