//! What the findings detector costs at ingest: the same batches written through
//! `SpanSink::write_traces` into a store with the detector on (pattern extraction and statement
//! normalization per span, detection as traces settle) and into one with it off, in the same run
//! and interleaved (each batch goes to both stores; one write is timed), so both see the same
//! store size and machine load; and `statement::normalize` alone on real statements.
//!
//! ```text
//! cargo bench -p throughline-store --bench findings -- --warm-up-time 1 --measurement-time 5
//! ```
//!
//! A batch is 64 of the seeds' four-span traces (one database span each) and 8 N+1 requests
//! (`QueryLoopTrace`: a server span over 1 + 7 queries), 328 spans, 120 of them database spans,
//! so the detector meets more database spans than a typical service sends.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use throughline_store::testdata::{QueryLoopTrace, seeds_like_batch};
use throughline_store::*;

const SEEDS_TRACES: usize = 64;
const LOOPS: u64 = 8;
const LOOP_QUERIES: u64 = 7;
const SPANS_PER_BATCH: u64 = SEEDS_TRACES as u64 * 4 + LOOPS * (LOOP_QUERIES + 2);

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Batch `n`: fresh trace ids, starting a little after the previous batch.
fn batch(n: u64, t0: u64) -> ExportTraceServiceRequest {
    let start = t0 + n * 10_000_000;
    let mut request = seeds_like_batch(n, SEEDS_TRACES, start);
    for i in 0..LOOPS {
        let t = QueryLoopTrace::new(
            1 << 40 | (n * LOOPS + i),
            start + i * 1_000,
            LOOP_QUERIES,
            9_000,
        );
        request.resource_spans.extend(t.request().resource_spans);
    }
    request
}

fn store(dir: &std::path::Path, enabled: bool) -> Store {
    let mut config = StoreConfig::new(dir);
    // Traces settle on the next write: detection runs inside the measured writes.
    config.settle_secs = 0;
    config.findings.enabled = enabled;
    // No checkpoint or segment rotation during the run: those are the store's own periodic
    // costs, and whichever measurement they fell into would look slower.
    config.checkpoint_interval_secs = 24 * 3600;
    config.segment_max_bytes = 16 << 30;
    Store::open(config).expect("open the store")
}

fn ingest(c: &mut Criterion) {
    let t0 = now_nanos() - 3_600_000_000_000;
    let (dir_on, dir_off) = (
        tempfile::tempdir().expect("a temporary folder"),
        tempfile::tempdir().expect("a temporary folder"),
    );
    let on = store(dir_on.path(), true);
    let off = store(dir_off.path(), false);
    let mut n = 0u64;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(SPANS_PER_BATCH));
    // Each iteration writes the same new batch to both stores and times one of them, so both
    // measurements see stores of the same size. The order is A B B A so that a drift in the
    // machine's load or in the stores' growth weighs on both alike: compare the means.
    for (name, timed, other) in [
        ("without findings", &off, &on),
        ("with findings", &on, &off),
        ("with findings, again", &on, &off),
        ("without findings, again", &off, &on),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    other.write_traces(batch(n, t0)).expect("write");
                    let request = batch(n, t0);
                    let started = Instant::now();
                    timed.write_traces(request).expect("write");
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
    for (store, enabled) in [(&on, true), (&off, false)] {
        store.maintain().expect("settle");
        let found = store
            .findings(&FindingQuery {
                end_unix_nanos: u64::MAX,
                ..FindingQuery::default()
            })
            .expect("findings")
            .len();
        // Each batch holds LOOPS findings when the detector is on: the measured path is the
        // detecting one, not a benchmark of nothing.
        assert_eq!(found == 0, !enabled, "enabled {enabled}: {found} findings");
    }
}

fn normalize(c: &mut Criterion) {
    let statements = [
        "SELECT slot, ad_id FROM placements WHERE video_id = 104",
        "INSERT INTO users (id, email, created_at) VALUES ($1, $2, now()) RETURNING id",
        "SELECT * FROM orders o JOIN items i ON i.order_id = o.id WHERE o.id IN (1, 2, 3, 4) /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/",
        "UPDATE stock SET qty = qty - 1 WHERE sku = 'A-1042'",
    ];
    let mut group = c.benchmark_group("statement");
    group.throughput(Throughput::Elements(statements.len() as u64));
    group.bench_function("normalize", |b| {
        b.iter(|| {
            statements
                .iter()
                .map(|s| statement::normalize(std::hint::black_box(s)).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, normalize);
criterion_main!(benches);
