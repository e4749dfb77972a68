//! Tail sampling as a process: spans acknowledged while their traces wait for a decision are in
//! the durable spool, so a `kill -9` before the decision loses none of them — after a restart on
//! the same data directory they are decided and every kept one reaches the upstream (the
//! official opentelemetry-proto Python upstream) and the store.

mod collector_common;

use std::time::Duration;

#[path = "../../collector/tests/common/upstream.rs"]
mod upstream;

use collector_common::{now_nanos, span_keys, start_collector_with};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use throughline_store::testdata::seeds_like_batch;

const BATCHES: u64 = 40;
const TRACES_PER_BATCH: usize = 16;

#[test]
fn spans_acknowledged_before_their_decision_survive_kill_9() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let up = upstream::Upstream::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = up.grpc_url();
    // Ratio 1: every trace is kept, so every acknowledged span must arrive. A minute's decision
    // wait: nothing is decided before the kill.
    let flags = |wait: &'static str| {
        vec![
            "--export-otlp".to_owned(),
            url.clone(),
            "--export-retry-initial-ms".to_owned(),
            "50".to_owned(),
            "--tail-sampling-ratio".to_owned(),
            "1".to_owned(),
            "--tail-sampling-wait-ms".to_owned(),
            wait.to_owned(),
        ]
    };
    let first = flags("60000");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (mut child, addrs) = start_collector_with(dir.path(), &first);
    let start = now_nanos();
    let target = format!("http://{}", addrs.grpc);
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(target)
            .await
            .expect("gRPC connects");
        for batch in 0..BATCHES {
            client
                .export(seeds_like_batch(batch, TRACES_PER_BATCH, start))
                .await
                .expect("the collector acknowledges");
        }
    });
    let keys: Vec<String> = (0..BATCHES)
        .flat_map(|b| span_keys(b, TRACES_PER_BATCH, start))
        .collect();
    let before = runtime.block_on(up.stats());
    assert_eq!(
        before.spans, 0,
        "nothing is forwarded before its trace is decided"
    );
    child.kill9();

    // Restart with a short wait: the spool's spans are decided and released.
    let second = flags("200");
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let (_child, addrs) = start_collector_with(dir.path(), &second);
    let stats =
        runtime.block_on(up.wait_for(Duration::from_secs(60), |s| s.spans as usize >= keys.len()));
    let missing = runtime.block_on(up.missing(&keys));
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged spans never reached the upstream, e.g. {:?}",
        missing.len(),
        keys.len(),
        &missing[..missing.len().min(3)]
    );
    assert_eq!(stats.duplicates, 0, "each span released once");
    // And the store has them: the trace of the first span, through the query API.
    let trace_hex = &keys[0][..32];
    let body: serde_json::Value = runtime
        .block_on(async {
            reqwest::get(format!("http://{}/api/traces/{trace_hex}", addrs.query))
                .await?
                .json()
                .await
        })
        .expect("the query API answers");
    let spans = body["data"][0]["spans"].as_array().map_or(0, Vec::len);
    let expected = keys.iter().filter(|k| k.starts_with(trace_hex)).count();
    assert_eq!(spans, expected, "the stored trace is whole: {body}");
}
