//! The OTLP/gRPC receiver honours the client's `grpc-timeout`: a tonic client that sets a
//! deadline on its call (tonic sends it as `grpc-timeout` and leaves it to the server) gets
//! `DEADLINE_EXCEEDED` from the collector once it passes, while the store is still busy, instead
//! of waiting for the server's own request timeout.

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

    let mut request = tonic::Request::new(two_service_trace(0x31, now_nanos()));
    request.set_timeout(Duration::from_millis(300));
    let answer = tokio::time::timeout(Duration::from_secs(20), client.export(request))
        .await
        .expect("the collector answers within the client's deadline, not the store's pace");
    let status = answer.expect_err("the store is held: the call cannot succeed in time");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    // The collector's own answer, not a client-side timer's.
    assert!(
        status.message().contains("not answered in time"),
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
