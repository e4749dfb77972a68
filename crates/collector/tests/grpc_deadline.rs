//! The OTLP/gRPC receiver honours the client's `grpc-timeout`: a call whose deadline passes
//! while the store is still busy is answered `DEADLINE_EXCEEDED` by the collector itself, instead
//! of being served until the server's own request timeout (60 s).

mod common;

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use throughline_collector::{Collector, CollectorConfig};
use throughline_store::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, SpanSink,
    StoreError, WriteReport,
};

/// A store whose trace writes wait until the test lets them through (or 30 s pass), then go to
/// the real store.
struct HeldSink {
    inner: Arc<dyn SpanSink>,
    release: Mutex<mpsc::Receiver<()>>,
    held: Mutex<bool>,
}

impl SpanSink for HeldSink {
    fn write_traces(&self, request: ExportTraceServiceRequest) -> Result<WriteReport, StoreError> {
        let mut held = self.held.lock().expect("not poisoned");
        if *held {
            let released = self
                .release
                .lock()
                .expect("not poisoned")
                .recv_timeout(Duration::from_secs(30));
            *held = released.is_err();
        }
        drop(held);
        self.inner.write_traces(request)
    }
    fn write_logs(&self, request: ExportLogsServiceRequest) -> Result<u64, StoreError> {
        self.inner.write_logs(request)
    }
    fn write_metrics(&self, request: ExportMetricsServiceRequest) -> Result<u64, StoreError> {
        self.inner.write_metrics(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_grpc_timeout_ends_with_deadline_exceeded() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, reader) = open_store(dir.path());
    let (release, released) = mpsc::channel();
    let sink = Arc::new(HeldSink {
        inner: store,
        release: Mutex::new(released),
        held: Mutex::new(true),
    });
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        query_addr: loopback,
        ..CollectorConfig::default()
    };
    // The server's own request timeout (60 s) is far past the client's deadline.
    let running = Collector::start(config, sink, reader, None)
        .await
        .expect("collector starts");
    let mut client = TraceServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connects");

    // The call as gRPC puts it on the wire, with a deadline in `grpc-timeout`, from an HTTP/2
    // client that keeps no timer of its own (tonic's client also stops waiting at its deadline,
    // so it could not tell whether the server did).
    let body = prost::Message::encode_to_vec(&two_service_trace(0x31, now_nanos()));
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&body);
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client");
    let answer = http2
        .post(format!(
            "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            running.grpc_addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(framed)
        .send()
        .await
        .expect("the collector answers within the client's deadline, not the store's pace");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let headers = answer.headers();
    assert_eq!(
        headers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "DEADLINE_EXCEEDED: {headers:?}"
    );
    assert!(
        headers["grpc-message"]
            .to_str()
            .unwrap_or_default()
            .contains("not%20answered%20in%20time"),
        "{headers:?}"
    );

    // tonic's client with a deadline gets DEADLINE_EXCEEDED too (from the server or its timer).
    let mut request = tonic::Request::new(two_service_trace(0x33, now_nanos()));
    request.set_timeout(Duration::from_millis(300));
    let status = tokio::time::timeout(Duration::from_secs(20), client.export(request))
        .await
        .expect("the call ends at its deadline")
        .expect_err("the store is held: the call cannot succeed in time");
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );

    // Let the held write through; a call with a deadline it can meet succeeds.
    release.send(()).expect("the sink waits");
    let mut request = tonic::Request::new(two_service_trace(0x32, now_nanos()));
    request.set_timeout(Duration::from_secs(20));
    client
        .export(request)
        .await
        .expect("a call within its deadline is served");
    running.shutdown().await;
}
