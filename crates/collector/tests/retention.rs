//! `max_disk_bytes` (`throughline collector --max-disk-bytes`) through a running collector: traces
//! exported over OTLP past a small limit, the store's size on `/metrics` held to it, the oldest
//! traces gone from the query API and the newest still there.

mod common;

use std::sync::Arc;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use throughline_collector::{Collector, CollectorConfig};
use throughline_store::{Store, StoreConfig};

const MAX_DISK_BYTES: u64 = 48 * 1024;
const SEGMENT_BYTES: u64 = 8 * 1024;

fn disk_bytes(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("throughline_store_disk_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("/metrics shows throughline_store_disk_bytes")
}

#[tokio::test]
async fn the_store_stays_within_max_disk_bytes_under_otlp_exports() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    config.max_disk_bytes = MAX_DISK_BYTES;
    config.segment_max_bytes = SEGMENT_BYTES;
    let store = Arc::new(Store::open(config).expect("store opens"));
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let running = Collector::start(
        CollectorConfig {
            grpc_addr: loopback,
            http_addr: loopback,
            query_addr: loopback,
            ..CollectorConfig::default()
        },
        store.clone(),
        store,
        None,
    )
    .await
    .expect("collector starts");
    let query = |path: &str| format!("http://{}{path}", running.query_addr);

    let mut client = TraceServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("grpc connects");
    let base = now_nanos() - 60_000 * 1_000_000;
    let mut most_seen = 0;
    for byte in 1..=200u8 {
        client
            .export(two_service_trace(byte, base + u64::from(byte) * 1_000_000))
            .await
            .expect("export succeeds");
        let metrics = reqwest::get(query("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        most_seen = most_seen.max(disk_bytes(&metrics));
    }
    // The limit is checked after each write: at most one write over it, never a segment more.
    assert!(
        most_seen <= MAX_DISK_BYTES + SEGMENT_BYTES,
        "the store grew to {most_seen} bytes over a limit of {MAX_DISK_BYTES}"
    );
    assert!(
        most_seen > MAX_DISK_BYTES / 2,
        "the exports never came near the limit ({most_seen} bytes): the test proves nothing"
    );

    let (status, _) = get_json(&query(&format!("/api/traces/{}", "01".repeat(16)))).await;
    assert_eq!(status, 404, "the oldest trace was not deleted");
    let (status, body) = get_json(&query(&format!("/api/traces/{}", "c8".repeat(16)))).await;
    assert_eq!(status, 200, "the newest trace is gone: {body}");
    running.shutdown().await;
}
