//! Findings through the store: an N+1 trace is found once it settles, a near miss is not, and
//! findings survive a reopen; the database report reads the pool metrics the store keeps.

use std::time::{SystemTime, UNIX_EPOCH};

use throughline_store::testdata::QueryLoopTrace;
use throughline_store::*;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn all(kind: Option<FindingKind>) -> FindingQuery {
    FindingQuery {
        kind,
        end_unix_nanos: u64::MAX,
        ..FindingQuery::default()
    }
}

#[test]
fn an_n_plus_one_is_found_when_its_trace_settles_and_kept_across_a_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 3600;
    let start = now() - 60_000_000_000;
    // 7 queries of 9 ms: found. 4 queries of 20 ms: too few. 6 queries of 8 ms: 48 ms, too short.
    let loop7 = QueryLoopTrace::new(1, start, 7, 9_000);
    let few = QueryLoopTrace::new(2, start + 1000, 4, 20_000);
    let short = QueryLoopTrace::new(3, start + 2000, 6, 8_000);
    {
        let store = Store::open(config.clone())?;
        for t in [&loop7, &few, &short] {
            store.write_traces(t.request())?;
        }
        assert!(store.findings(&all(None))?.is_empty(), "still settling");
        store.close()?;
    }
    config.settle_secs = 0;
    let store = Store::open(config.clone())?;
    let found = store.findings(&all(Some(FindingKind::NPlusOneDb)))?;
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.trace_id, loop7.trace_id);
    assert_eq!(f.parent_span_id, loop7.root_span_id());
    assert_eq!(f.count, 7);
    assert_eq!(
        f.span_ids,
        (0..7).map(|i| loop7.item_span_id(i)).collect::<Vec<_>>()
    );
    assert_eq!(
        f.statement,
        "SELECT slot, ad_id FROM placements WHERE video_id = ?"
    );
    assert_eq!(f.duration_nanos, 63_000_000);
    assert_eq!(f.service, "videos-api");
    assert!(
        store
            .findings(&all(Some(FindingKind::RepeatedHttp)))?
            .is_empty()
    );
    store.close()?;
    let store = Store::open(config)?;
    assert_eq!(store.findings(&all(None))?, found, "kept across a reopen");
    Ok(())
}

#[test]
fn the_detector_can_be_turned_off_and_its_thresholds_set() -> anyhow::Result<()> {
    let start = now() - 60_000_000_000;
    let three = QueryLoopTrace::new(4, start, 3, 2_000);
    for (enabled, min_repeats, want) in [(true, 3, 1), (true, 5, 0), (false, 3, 0)] {
        let dir = tempfile::tempdir()?;
        let mut config = StoreConfig::new(dir.path());
        config.settle_secs = 0;
        config.findings = FindingsConfig {
            enabled,
            min_repeats,
            min_duration_ms: 5,
        };
        let store = Store::open(config)?;
        store.write_traces(three.request())?;
        assert_eq!(
            store.findings(&all(None))?.len(),
            want,
            "{enabled} {min_repeats}"
        );
    }
    Ok(())
}

#[test]
fn the_database_report_reads_pool_metrics_from_the_store() -> anyhow::Result<()> {
    use opentelemetry_proto::tonic::metrics::v1::{
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data,
        number_data_point::Value,
    };
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let at = now();
    let point = |value: i64, state: &str| NumberDataPoint {
        attributes: vec![
            throughline_store::testdata::kv("db.client.connection.pool.name", "orders"),
            throughline_store::testdata::kv("db.client.connection.state", state),
        ],
        time_unix_nano: at,
        value: Some(Value::AsInt(value)),
        ..Default::default()
    };
    store.write_metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(throughline_store::testdata::resource("shop-api")),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "db.client.connection.count".into(),
                    data: Some(Data::Sum(Sum {
                        data_points: vec![point(7, "used"), point(3, "idle")],
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })?;
    let report = store.database(&DatabaseQuery {
        service: Some("shop-api".into()),
        start_unix_nanos: at - 60_000_000_000,
        end_unix_nanos: at + 60_000_000_000,
        slow_query_nanos: 100_000_000,
        max_scanned_spans: throughline_store::database::MAX_SCANNED_SPANS,
    })?;
    assert_eq!(report.pools.len(), 1, "{report:?}");
    assert_eq!(report.pools[0].database, "orders");
    assert_eq!(
        report.pools[0].metrics.as_ref().and_then(|m| m.max_in_use),
        Some(7)
    );
    Ok(())
}

#[test]
fn a_database_report_past_its_span_cap_reads_the_newest_and_says_so() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let start = now() - 60_000_000_000;
    // Three exports of 7 spans (root, list query, 5 items), one second apart.
    let traces: Vec<QueryLoopTrace> = (0..3)
        .map(|i| QueryLoopTrace::new(30 + i, start + i * 1_000_000_000, 5, 1_000))
        .collect();
    for t in &traces {
        store.write_traces(t.request())?;
    }
    let query = |max_scanned_spans| DatabaseQuery {
        service: None,
        start_unix_nanos: start - 1,
        end_unix_nanos: start + 10_000_000_000,
        slow_query_nanos: 100_000_000,
        max_scanned_spans,
    };
    let all = store.database(&query(1_000))?;
    assert!(!all.truncated);
    assert_eq!(all.statements.iter().map(|c| c.calls).sum::<u64>(), 18);
    // A cap of 7 spans reads the newest export whole, then stops.
    let newest = store.database(&query(7))?;
    assert!(newest.truncated);
    assert_eq!(newest.statements.iter().map(|c| c.calls).sum::<u64>(), 6);
    let list = newest
        .statements
        .iter()
        .find(|c| c.statement.starts_with("SELECT id, title FROM videos"))
        .expect("the list query");
    assert_eq!(list.most_recent.trace_id, traces[2].trace_id);
    Ok(())
}
