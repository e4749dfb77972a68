//! Stored OTLP metrics on a real directory: queried by name, service and attributes, and the
//! same answers after a crash (the index is rebuilt from the log, sealed segments included).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use throughline_store::*;

const SEC: u64 = 1_000_000_000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

/// One export of the onboarding API: a cumulative counter and a cumulative histogram, both by
/// `customer.type`, as the SDK's periodic reader sends them.
fn onboarding_export(
    start: u64,
    t: u64,
    premium_total: u64,
    standard_total: u64,
) -> ExportMetricsServiceRequest {
    let point = |ctype: &str, v: u64| NumberDataPoint {
        attributes: vec![kv("customer.type", ctype)],
        start_time_unix_nano: start,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsInt(v as i64)),
        ..NumberDataPoint::default()
    };
    let requests = Metric {
        name: "onboarding.requests".into(),
        unit: "{request}".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![
                point("premium", premium_total),
                point("standard", standard_total),
            ],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Metric::default()
    };
    // Every premium onboarding took between 100 and 250 ms.
    let duration = Metric {
        name: "onboarding.duration".into(),
        unit: "ms".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![kv("customer.type", "premium")],
                start_time_unix_nano: start,
                time_unix_nano: t,
                count: premium_total,
                sum: Some(175.0 * premium_total as f64),
                bucket_counts: vec![0, premium_total, 0],
                explicit_bounds: vec![100.0, 250.0],
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Metric::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "onboarding-api")],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![requests, duration],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn query(name: &str, start: u64, end: u64) -> MetricQuery {
    MetricQuery {
        name: name.into(),
        service: Some("onboarding-api".into()),
        attributes: vec![],
        start_unix_nanos: start,
        end_unix_nanos: end,
        step_nanos: 10 * SEC,
    }
}

fn totals(store: &Store, start: u64, end: u64) -> anyhow::Result<Vec<(String, f64)>> {
    Ok(store
        .metric_series(&query("onboarding.requests", start, end))?
        .into_iter()
        .map(|s| (s.attributes["customer.type"].clone(), s.total.value))
        .collect())
}

#[test]
fn metric_series_answer_by_attribute_and_survive_a_crash_and_sealed_segments() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path());
    config.segment_max_bytes = 300;
    let start = now() - 600 * SEC;
    let (from, to) = (start, start + 600 * SEC);
    {
        let store = Store::open(config.clone())?;
        // Six exports ten seconds apart: premium grows by 2, standard by 5 each time.
        for i in 1..=6u64 {
            store.write_metrics(onboarding_export(start, start + i * 10 * SEC, 2 * i, 5 * i))?;
        }
        assert_eq!(
            totals(&store, from, to)?,
            vec![("premium".to_owned(), 12.0), ("standard".to_owned(), 30.0)]
        );
        let mut premium = query("onboarding.requests", from, to);
        premium.attributes = vec![("customer.type".into(), "premium".into())];
        let series = store.metric_series(&premium)?;
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].kind, MetricKind::Counter);
        assert_eq!(series[0].points.len(), 6, "one bucket per export");
        assert!(
            series[0].points.iter().all(|p| p.rate == Some(0.2)),
            "2 per 10 s"
        );

        let durations = store.metric_series(&query("onboarding.duration", from, to))?;
        let total = &durations[0].total;
        assert_eq!(total.value, 12.0);
        assert_eq!(total.p50, Some(175.0));
        assert!(
            total.p99.is_some_and(|p| p > 240.0 && p <= 250.0),
            "{total:?}"
        );
        assert_eq!(
            store.metric_names(Some("onboarding-api")),
            vec![
                "onboarding.duration".to_owned(),
                "onboarding.requests".to_owned()
            ]
        );
        assert!(store.metric_names(Some("shop-api")).is_empty());
        // Dropped without close: what was acknowledged is in the log.
        std::mem::forget(store);
    }
    let files = std::fs::read_dir(dir.path())?.count();
    assert!(files > 2, "the small segments were sealed: {files} files");
    let store = Store::open(config.clone())?;
    assert_eq!(
        totals(&store, from, to)?,
        vec![("premium".to_owned(), 12.0), ("standard".to_owned(), 30.0)],
        "the index is rebuilt from the log with the same deltas"
    );
    // After the restart, the next cumulative export is a delta against the replayed state.
    store.write_metrics(onboarding_export(start, start + 70 * SEC, 14, 35))?;
    assert_eq!(
        totals(&store, from, to)?,
        vec![("premium".to_owned(), 14.0), ("standard".to_owned(), 35.0)]
    );
    Ok(())
}

#[test]
fn a_step_too_small_for_the_window_is_refused_naming_step() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let mut q = query("onboarding.requests", 0, 3600 * SEC);
    q.step_nanos = 1_000_000;
    let err = TraceReader::metric_series(&store, &q).unwrap_err();
    assert!(err.to_string().contains("step"), "{err}");
    Ok(())
}
