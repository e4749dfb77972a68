//! JSON log lines carry the current span's `trace_id` and `span_id`, and with
//! `OTEL_LOGS_EXPORTER=otlp` the same events reach an OTLP/gRPC logs receiver with their trace.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use serde_json::Value;
use throughline_telemetry::testing::InMemorySpanExporter;
use throughline_telemetry::{Telemetry, TelemetryConfig};
use throughline_testkit::{free_loopback_addr, wait_for_port};
use tracing_subscriber::fmt::MakeWriter;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("capture lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8 log output")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

#[test]
fn json_lines_carry_the_ids_of_the_span_they_are_in() {
    let exporter = InMemorySpanExporter::new();
    let config = TelemetryConfig::from_env([("OTEL_SERVICE_NAME", "logs-test")]).expect("valid");
    let telemetry = Telemetry::builder(config)
        .span_exporter(exporter.clone())
        .build()
        .expect("telemetry builds");
    let out = Captured::default();
    let filter = telemetry.log_filter().expect("default filter");
    tracing::subscriber::with_default(telemetry.subscriber(filter, out.clone()), || {
        tracing::info!("before any span");
        let span = tracing::info_span!("handle_order", order_id = 7);
        let _entered = span.enter();
        tracing::warn!(attempt = 2, reason = "throttled", "retrying send");
    });
    assert!(telemetry.flush(Duration::from_secs(5)).is_exported());

    let lines = out.lines();
    assert_eq!(lines.len(), 2, "lines: {lines:?}");
    assert_eq!(lines[0]["message"], "before any span");
    assert_eq!(lines[0]["level"], "INFO");
    assert!(
        lines[0].get("trace_id").is_none(),
        "outside a span: {}",
        lines[0]
    );

    let inside = &lines[1];
    assert_eq!(inside["message"], "retrying send");
    assert_eq!(inside["level"], "WARN");
    assert_eq!(inside["span"], "handle_order");
    assert_eq!(inside["fields"]["attempt"], 2);
    assert_eq!(inside["fields"]["reason"], "throttled");

    let tree = exporter.span_tree();
    let span = tree.find("handle_order");
    assert_eq!(inside["trace_id"], span.span_context.trace_id().to_string());
    assert_eq!(inside["span_id"], span.span_context.span_id().to_string());
}

/// A received log record: its body (debug-printed) and its trace id bytes.
type ReceivedLog = (String, Vec<u8>);

#[derive(Debug, Clone, Default)]
struct LogsReceiver(Arc<Mutex<Vec<ReceivedLog>>>);

#[tonic::async_trait]
impl LogsService for LogsReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().expect("receiver lock");
        for rl in &request.get_ref().resource_logs {
            for sl in &rl.scope_logs {
                for record in &sl.log_records {
                    let body = format!("{:?}", record.body);
                    got.push((body, record.trace_id.clone()));
                }
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

fn start_logs_receiver() -> (SocketAddr, LogsReceiver) {
    let addr = free_loopback_addr();
    let receiver = LogsReceiver::default();
    let service = LogsServiceServer::new(receiver.clone());
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
        "the OTLP logs receiver did not start on {addr}"
    );
    (addr, receiver)
}

#[test]
fn otlp_log_export_sends_events_with_their_trace_id() {
    let (addr, receiver) = start_logs_receiver();
    let endpoint = format!("http://{addr}");
    let config = TelemetryConfig::from_env([
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", endpoint.as_str()),
    ])
    .expect("valid");
    let telemetry = Telemetry::builder(config)
        .build()
        .expect("telemetry builds");
    let filter = telemetry.log_filter().expect("default filter");
    let mut trace_id = None;
    tracing::subscriber::with_default(telemetry.subscriber(filter, std::io::sink), || {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let span = tracing::info_span!("job");
        let _entered = span.enter();
        trace_id = Some(span.context().span().span_context().trace_id());
        tracing::info!("exported log line");
    });
    let outcome = telemetry.flush(Duration::from_secs(5));
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    let got = receiver.0.lock().expect("receiver lock").clone();
    let trace_id = trace_id.expect("span context").to_bytes().to_vec();
    assert!(
        got.iter()
            .any(|(body, tid)| body.contains("exported log line") && *tid == trace_id),
        "received: {got:?}"
    );
}
