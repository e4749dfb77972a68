//! Rules on stored OTLP metrics, through the store's metric index: onboarding's built-in queue
//! age and Lambda throttle rules fire on the metrics the broker and the Lambda host export
//! (a gauge and a cumulative counter), and stay quiet without them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use throughline_alerts::{Alerts, Delivery, State, builtin, parse};
use throughline_store::{ExportMetricsServiceRequest, SpanSink, Store, StoreConfig};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn text(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn point(start: u64, t: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn export(service: &str, metric: Metric) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![metric],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn onboardings_queue_age_and_throttle_rules_read_stored_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<Store> = Arc::new(Store::open(StoreConfig::new(dir.path())).unwrap());
    let alerts = Alerts::over_store(
        parse(builtin::ONBOARDING).unwrap(),
        store.clone(),
        Delivery::default(),
    );
    let t = now();
    let start = t - 120_000_000_000;
    alerts.engine().evaluate_all(t);
    let st = alerts.engine().states();
    // Rules 1 and 2: throttles and queue age; no data yet, no error, nothing fires.
    for i in [1, 2] {
        assert_eq!(st[i].state, State::Inactive);
        assert_eq!(st[i].value, None, "{i}");
        assert_eq!(st[i].error, None, "{i}");
    }

    let queue = vec![text("messaging.destination.name", "onboarding-queue")];
    let age = Metric {
        name: "aws.sqs.approximate_age_of_oldest_message".into(),
        unit: "s".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![
                point(0, t - 60_000_000_000, 120.0, queue.clone()),
                point(0, t - 10_000_000_000, 420.0, queue.clone()),
            ],
        })),
        ..Default::default()
    };
    store
        .write_metrics(export("throughline-broker", age))
        .unwrap();
    let throttles = Metric {
        name: "aws.lambda.throttles".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![
                point(start, t - 90_000_000_000, 0.0, Vec::new()),
                point(start, t - 5_000_000_000, 3.0, Vec::new()),
            ],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    store
        .write_metrics(export("onboarding-lambda", throttles))
        .unwrap();

    alerts.engine().evaluate_all(t);
    let st = alerts.engine().states();
    assert_eq!(
        st[2].value,
        Some(420.0),
        "the oldest message's age at its worst"
    );
    assert_eq!(st[2].state, State::Firing);
    assert_eq!(st[1].value, Some(3.0), "three throttles in the window");
    assert_eq!(st[1].state, State::Firing);
    let statuses = alerts.statuses();
    assert_eq!(
        statuses[2].annotations["summary"],
        "the oldest onboarding message waited 420 s (over 5 minutes)"
    );
}
