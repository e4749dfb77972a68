//! One evaluation round of 100 rules over a store of a million spans (set `ALERTS_BENCH_SPANS`
//! to change it): 40 span rules (1-hour windows, counted by the ingest tap), 40 span-metric
//! rules (error rate, p95, request rate from the store), 10 whole-trace-share rules and 10
//! flows. Baselines from the same run: the store calls one metric rule makes, and the tap's
//! cost per ingested batch next to the store write itself.
//!
//! `cargo bench -p throughline-alerts --bench evaluate -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use throughline_alerts::{Alerts, Delivery, parse};
use throughline_store::testdata::seeds_like_batch;
use throughline_store::{RedScope, Store, StoreConfig, TraceReader};

const TRACES_PER_BATCH: usize = 1_000;
const SPANS_PER_TRACE: usize = 4;

fn rules() -> String {
    let mut y = String::from("groups:\n");
    let _ = writeln!(y, "  - name: spans\n    rules:");
    for i in 0..40 {
        let service = if i % 2 == 0 { "api" } else { "worker" };
        let filter = match i % 4 {
            0 => "where: 'http.route = /onboard'".to_owned(),
            1 => "status: error".to_owned(),
            2 => "where: 'http.response.status_code >= 500'".to_owned(),
            _ => "kind: consumer".to_owned(),
        };
        let _ = writeln!(
            y,
            "      - {{alert: Spans{i}, spans: {{service: {service}-{}, {filter}}}, window: 1h, above: {}}}",
            i % 8,
            i * 10
        );
    }
    let _ = writeln!(y, "  - name: metrics\n    rules:");
    for i in 0..40 {
        let service = if i % 2 == 0 { "api" } else { "worker" };
        let (metric, above) = match i % 3 {
            0 => ("error_rate", 0.01),
            1 => ("p95", 100.0),
            _ => ("request_rate", 1.0),
        };
        let window = if i % 2 == 0 { "5m" } else { "1h" };
        let _ = writeln!(
            y,
            "      - {{alert: Metric{i}, metric: {metric}, service: {service}-{}, window: {window}, above: {above}}}",
            i % 8
        );
    }
    let _ = writeln!(y, "  - name: traces\n    rules:");
    for i in 0..10 {
        let _ = writeln!(
            y,
            "      - {{alert: Whole{i}, metric: whole_trace_share, window: {}m, below: 0.95}}",
            5 + i
        );
    }
    let _ = writeln!(y, "  - name: flows\n    rules:");
    for i in 0..10 {
        let _ = writeln!(
            y,
            "      - {{alert: Flow{i}, flow: [Spans{}, Metric{}, Spans{}], within: 10m}}",
            i,
            i,
            i + 10
        );
    }
    y
}

fn evaluate(c: &mut Criterion) {
    let spans: usize = std::env::var("ALERTS_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let batches = (spans / (TRACES_PER_BATCH * SPANS_PER_TRACE)).max(1) as u64;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    let store: Arc<Store> = Arc::new(Store::open(config).expect("open the store"));
    let set = parse(&rules()).expect("the bench rules");
    assert_eq!(set.rules.len(), 100);
    let reader: Arc<dyn TraceReader> = store.clone();
    let alerts = Alerts::over_store(set, reader, Delivery::default());
    let sink = alerts.sink(store.clone());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    // The last 50 minutes, newest last, through the tap.
    let span_of_time = 50 * 60 * 1_000_000_000u64;
    let fill = std::time::Instant::now();
    for b in 0..batches {
        let start = now - span_of_time + b * (span_of_time / batches);
        sink.write_traces(seeds_like_batch(b, TRACES_PER_BATCH, start))
            .expect("write a batch");
    }
    store.maintain().expect("settle");
    eprintln!(
        "filled {} spans in {:.1} s",
        batches as usize * TRACES_PER_BATCH * SPANS_PER_TRACE,
        fill.elapsed().as_secs_f64()
    );
    let first = alerts.engine().evaluate_all(now);
    let states = alerts.engine().states();
    let firing = states
        .iter()
        .filter(|s| s.state == throughline_alerts::State::Firing)
        .count();
    eprintln!(
        "first round: {} notices, {firing} of 100 rules firing",
        first.len()
    );
    assert!(firing > 0, "the bench rules see the data");

    let mut group = c.benchmark_group("alerts_100_rules_1m_spans");
    group.sample_size(30);
    group.bench_function("one evaluation round (100 rules)", |b| {
        b.iter(|| alerts.engine().evaluate_all(now))
    });
    group.bench_function("baseline: one store red_series (1h, one service)", |b| {
        b.iter(|| {
            store
                .red_series(
                    "api-0",
                    RedScope::Entry,
                    now - 3_600_000_000_000,
                    now,
                    3_600_000_000_000,
                )
                .expect("red")
        })
    });
    group.bench_function("baseline: one store integrity_series (10m)", |b| {
        b.iter(|| {
            store
                .integrity_series(now - 600_000_000_000, now, 600_000_000_000)
                .expect("integrity")
        })
    });
    let batch = seeds_like_batch(batches + 1, TRACES_PER_BATCH, now - 1_000_000_000);
    group.bench_function("tap: observe one 4000-span batch (40 span rules)", |b| {
        b.iter(|| alerts.tap().observe(&batch))
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
