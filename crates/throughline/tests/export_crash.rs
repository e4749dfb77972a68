//! The forwarding collector as a process: spans acknowledged while the upstream is down are
//! kept in the persistent queue across `kill -9` and a restart, and every one of them reaches the
//! upstream (the official opentelemetry-proto Python upstream) once it is back; duplicates are
//! counted and reported. CI-bounded: about 10 s of load and outage, not minutes.

mod collector_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../collector/tests/common/upstream.rs"]
mod upstream;

use collector_common::{now_nanos, span_keys, start_collector_with};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::json;
use throughline_store::testdata::seeds_like_batch;

const TRACES_PER_BATCH: usize = 32;
const SENDERS: u64 = 4;
/// Acknowledged spans wanted before the kill (tens of thousands), or this much load time.
const TARGET_SPANS: u64 = 30_000;
const LOAD_TIME: Duration = Duration::from_secs(8);
/// How long the upstream stays down after the restart.
const OUTAGE_AFTER_RESTART: Duration = Duration::from_secs(3);

#[test]
fn every_acknowledged_span_reaches_the_upstream_across_kill_9_and_an_outage() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let up = upstream::Upstream::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = up.grpc_url();
    let flags = [
        "--export-otlp",
        url.as_str(),
        "--export-retry-initial-ms",
        "50",
        "--export-retry-max-ms",
        "500",
    ];
    let (mut child, addrs) = start_collector_with(dir.path(), &flags);

    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let start = now_nanos();
    let target = format!("http://{}", addrs.grpc);
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let acknowledged = Arc::clone(&acknowledged);
            let target = target.clone();
            runtime.spawn(async move {
                let mut client = TraceServiceClient::connect(target)
                    .await
                    .expect("gRPC connects");
                for round in 0u64.. {
                    let batch = round * SENDERS + sender;
                    match client
                        .export(seeds_like_batch(batch, TRACES_PER_BATCH, start))
                        .await
                    {
                        Ok(_) => acknowledged.lock().expect("not poisoned").push(batch),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let spans_per_batch = span_keys(0, TRACES_PER_BATCH, start).len() as u64;
    let began = Instant::now();
    let mut upstream_down = false;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let acked = acknowledged.lock().expect("not poisoned").len() as u64 * spans_per_batch;
        // The upstream goes down a third of the way in: the rest piles up in the queue.
        if !upstream_down && acked >= TARGET_SPANS / 3 {
            runtime.block_on(up.control(json!({"mode": "unavailable", "times": -1})));
            upstream_down = true;
        }
        if acked >= TARGET_SPANS || began.elapsed() > LOAD_TIME {
            break;
        }
    }
    child.kill9();
    for sender in senders {
        runtime.block_on(sender).expect("sender task ends");
    }
    let acknowledged = acknowledged.lock().expect("not poisoned").clone();
    let keys: Vec<String> = acknowledged
        .iter()
        .flat_map(|&b| span_keys(b, TRACES_PER_BATCH, start))
        .collect();
    let before = runtime.block_on(up.stats());
    eprintln!(
        "{} spans acknowledged before kill -9; {} had reached the upstream",
        keys.len(),
        before.spans
    );
    assert!(upstream_down, "the upstream went down mid-stream");
    assert!(
        (before.spans as usize) < keys.len(),
        "part of the acknowledged spans was only in the queue at the kill"
    );

    // Restart on the same data directory; the upstream stays down a while, then comes back.
    let (_child, _addrs) = start_collector_with(dir.path(), &flags);
    std::thread::sleep(OUTAGE_AFTER_RESTART);
    runtime.block_on(up.control(json!({"mode": "ok"})));
    let stats =
        runtime.block_on(up.wait_for(Duration::from_secs(60), |s| s.spans as usize >= keys.len()));
    let missing = runtime.block_on(up.missing(&keys));
    eprintln!(
        "upstream: {} distinct spans, {} duplicates, {} refused requests during the outage",
        stats.spans, stats.duplicates, stats.refused
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged spans never reached the upstream, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert!(
        stats.refused > 0,
        "the forwarder retried against the outage"
    );
}
