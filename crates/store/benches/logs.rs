//! Log benchmark (criterion): durable log ingest against span ingest in the same run, as records
//! (or spans) per second, 512 per export either way; then a log search by trace id in a store
//! holding 1,000,000 log records (100,000 traces, 10 records each, sealed segments and head), with
//! its p50/p99 over 1,000 random ids printed before criterion's own measurement.
//!
//! ```text
//! cargo bench -p throughline-store --bench logs
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use throughline_store::testdata::{mix64, seeds_like_batch, seeds_like_logs, trace_id};
use throughline_store::*;

const PER_EXPORT: u64 = 512;
const SEARCH_RECORDS: u64 = 1_000_000;
const RECORDS_PER_SEARCH_EXPORT: u64 = 500;
const RECORDS_PER_TRACE: u64 = 10;

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn ingest(c: &mut Criterion) {
    let base = now_nanos() - 3_600_000_000_000;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(PER_EXPORT));
    group.measurement_time(Duration::from_secs(8));

    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open(StoreConfig::new(dir.path())).expect("store");
    let mut n = 0u64;
    group.bench_function("logs (records/s, durable)", |b| {
        b.iter_batched(
            || {
                n += 1;
                seeds_like_logs("api", n * 64, 64, PER_EXPORT, base + n * 1_000_000_000)
            },
            |request| store.write_logs(request).expect("write logs"),
            BatchSize::SmallInput,
        )
    });
    drop(store);

    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open(StoreConfig::new(dir.path())).expect("store");
    let mut n = 0u64;
    group.bench_function("spans (spans/s, durable)", |b| {
        b.iter_batched(
            || {
                n += 1;
                seeds_like_batch(n, (PER_EXPORT / 4) as usize, base + n * 10_000_000)
            },
            |request| store.write_traces(request).expect("write traces"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn search(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut config = StoreConfig::new(dir.path());
    // Several sealed segments besides the head, as a store that has run for a while.
    config.segment_max_bytes = 16 << 20;
    let store = Store::open(config).expect("store");
    let exports = SEARCH_RECORDS / RECORDS_PER_SEARCH_EXPORT;
    let traces_per_export = RECORDS_PER_SEARCH_EXPORT / RECORDS_PER_TRACE;
    let base = now_nanos() - 6 * 3_600_000_000_000;
    let started = Instant::now();
    for e in 0..exports {
        let request = seeds_like_logs(
            &format!("api-{}", e % 8),
            e * traces_per_export,
            traces_per_export,
            RECORDS_PER_SEARCH_EXPORT,
            base + e * 1_000_000_000,
        );
        store.write_logs(request).expect("write logs");
        store.maintain().expect("upkeep");
    }
    let traces = exports * traces_per_export;
    assert_eq!(store.log_records(), SEARCH_RECORDS);
    println!(
        "filled {SEARCH_RECORDS} log records ({traces} traces) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let query = |n: u64| LogQuery {
        trace_id: Some(trace_id(n)),
        start_unix_nanos: 0,
        end_unix_nanos: u64::MAX,
        limit: 100,
        ..Default::default()
    };
    let mut times = Vec::with_capacity(1000);
    for q in 0..1000u64 {
        let n = mix64(q ^ 0x10C5) % traces;
        let started = Instant::now();
        let found = store.search_logs(&query(n)).expect("search");
        times.push(started.elapsed());
        assert_eq!(found.len() as u64, RECORDS_PER_TRACE, "trace {n}");
    }
    times.sort();
    println!(
        "log search by trace id at {SEARCH_RECORDS} records (1000 random ids): p50 {:?} p99 {:?} max {:?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default()
    );
    let mut group = c.benchmark_group("search");
    let mut q = 0u64;
    group.bench_function("logs by trace id at 1M records", |b| {
        b.iter(|| {
            q += 1;
            store
                .search_logs(&query(mix64(q) % traces))
                .expect("search")
        })
    });
    group.bench_function(
        "logs by service and severity at 1M records (limit 100)",
        |b| {
            b.iter(|| {
                store
                    .search_logs(&LogQuery {
                        service: Some("api-3".into()),
                        min_severity: Some(Severity::Error),
                        start_unix_nanos: 0,
                        end_unix_nanos: u64::MAX,
                        limit: 100,
                        ..Default::default()
                    })
                    .expect("search")
            })
        },
    );
    group.finish();
}

criterion_group!(benches, ingest, search);
criterion_main!(benches);
