//! How long the APM pages take over a store of a million spans (set `APM_BENCH_SPANS` to change
//! it), rendered in-process through the router; the baseline is the store call each page makes.
//!
//! `cargo bench -p throughline-apm --bench pages -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use throughline_store::testdata::{TwoServiceTrace, seeds_like_batch};
use throughline_store::{SpanSink, Store, StoreConfig, TraceQuery, TraceReader};
use tower::ServiceExt as _;

const TRACES_PER_BATCH: usize = 1_000;
/// Spans per trace in `seeds_like_batch`.
const SPANS_PER_TRACE: usize = 4;

fn pages(c: &mut Criterion) {
    let spans: usize = std::env::var("APM_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let batches = (spans / (TRACES_PER_BATCH * SPANS_PER_TRACE)).max(1) as u64;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    let store = Store::open(config).expect("open the store");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    // Spread the traces over the last 50 minutes, newest last.
    let span_of_time = 50 * 60 * 1_000_000_000u64;
    let fill = std::time::Instant::now();
    for b in 0..batches {
        let start = now - span_of_time + b * (span_of_time / batches);
        store
            .write_traces(seeds_like_batch(b, TRACES_PER_BATCH, start))
            .expect("write a batch");
    }
    store.maintain().expect("settle");
    eprintln!(
        "filled {} spans in {} traces in {:.1} s",
        batches as usize * TRACES_PER_BATCH * SPANS_PER_TRACE,
        batches as usize * TRACES_PER_BATCH,
        fill.elapsed().as_secs_f64()
    );
    let store: Arc<Store> = Arc::new(store);
    let reader: Arc<dyn TraceReader> = store.clone();
    let router = throughline_apm::router(reader);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let newest = TwoServiceTrace::new((batches - 1) * TRACES_PER_BATCH as u64, 0);
    let trace_id = newest.trace_id;

    let mut group = c.benchmark_group("apm_pages_1m_spans");
    group.sample_size(20);
    let query = TraceQuery {
        start_unix_nanos: now - 3_600_000_000_000,
        end_unix_nanos: now,
        limit: 20,
        ..TraceQuery::default()
    };
    group.bench_function("baseline: store find_traces (limit 20)", |b| {
        b.iter(|| store.find_traces(&query).expect("search"))
    });
    group.bench_function("baseline: store trace (4 spans)", |b| {
        b.iter(|| store.trace(trace_id).expect("trace"))
    });
    for path in [
        "/search".to_owned(),
        "/search?service=worker-3&limit=20".to_owned(),
        "/search?service=api-1&errors=true".to_owned(),
        format!("/trace/{trace_id}"),
        format!("/trace/{trace_id}?span={}", newest.consumer_span_id()),
        "/map".to_owned(),
        "/services".to_owned(),
        "/integrity".to_owned(),
    ] {
        group.bench_function(format!("page {path}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let res = router
                        .clone()
                        .oneshot(Request::get(&path).body(Body::empty()).expect("request"))
                        .await
                        .expect("response");
                    assert_eq!(res.status(), StatusCode::OK, "{path}");
                    axum::body::to_bytes(res.into_body(), usize::MAX)
                        .await
                        .expect("body")
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
