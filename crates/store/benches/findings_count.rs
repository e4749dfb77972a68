//! The exact cost of the findings detector at ingest, for an instruction counter: writes the
//! same `FINDINGS_BATCHES` batches (default 300; the `findings` bench's mix, 328 spans each) into
//! a fresh store with the detector on (`FINDINGS_ON=1`) or off, and prints the wall and CPU time.
//! Wall time on a shared machine is noise; run it under callgrind, collecting inside
//! `write_traces` only, and compare the instruction counts:
//!
//! ```text
//! cargo bench -p throughline-store --bench findings_count --no-run
//! B=$(ls -t target/release/deps/findings_count-* | grep -v '\.d$' | head -1)
//! valgrind --tool=callgrind --toggle-collect='*SpanSink*write_traces*' $B
//! FINDINGS_ON=1 valgrind --tool=callgrind --toggle-collect='*SpanSink*write_traces*' $B
//! ```

use std::time::Instant;

use throughline_store::testdata::{QueryLoopTrace, seeds_like_batch};
use throughline_store::*;

fn main() {
    let enabled = std::env::var_os("FINDINGS_ON").is_some();
    let batches: u64 = std::env::var("FINDINGS_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let t0 = 1_700_000_000_000_000_000u64;
    // Built before the store is written to, so the count inside `write_traces` is ingest alone.
    let requests: Vec<ExportTraceServiceRequest> = (0..batches)
        .map(|n| {
            let start = t0 + n * 10_000_000;
            let mut request = seeds_like_batch(n, 64, start);
            for i in 0..8u64 {
                let t = QueryLoopTrace::new(1 << 40 | (n * 8 + i), start + i * 1_000, 7, 9_000);
                request.resource_spans.extend(t.request().resource_spans);
            }
            request
        })
        .collect();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    config.findings.enabled = enabled;
    config.checkpoint_interval_secs = 24 * 3600;
    config.segment_max_bytes = 16 << 30;
    let store = Store::open(config).expect("open the store");
    let started = Instant::now();
    for request in requests {
        store.write_traces(request).expect("write");
    }
    let elapsed = started.elapsed();
    let found = store
        .findings(&FindingQuery {
            end_unix_nanos: u64::MAX,
            ..FindingQuery::default()
        })
        .expect("findings")
        .len();
    println!(
        "detector {}: {batches} batches in {elapsed:?}, {found} findings",
        if enabled { "on" } else { "off" }
    );
}
