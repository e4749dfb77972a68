//! The dashboards over stored OTLP metrics: a system's page shows its functions' invocations,
//! errors and cold starts and its queues' depth (a dead-letter queue marked as such), a time
//! range in the URL, and an unknown system is a 404 page; a service's page lists its own
//! (business) metrics.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use throughline_apm::Dashboard;
use throughline_store::{SpanSink, Store, StoreConfig};
use tower::ServiceExt as _;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn metric(name: &str, attr: (&str, &str), value: i64, counter: bool, t: u64) -> Metric {
    let points = vec![NumberDataPoint {
        attributes: vec![kv(attr.0, attr.1)],
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsInt(value)),
        ..NumberDataPoint::default()
    }];
    Metric {
        name: name.into(),
        data: Some(if counter {
            Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })
        } else {
            Data::Gauge(Gauge {
                data_points: points,
            })
        }),
        ..Metric::default()
    }
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("the router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_system_dashboard_shows_its_functions_and_queues() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(StoreConfig::new(dir.path()))?);
    let t = now() - 5 * 60 * 1_000_000_000;
    let f = ("faas.name", "onboarding-lambda");
    store.write_metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "onboarding-lambda")],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric("faas.invocations", f, 5, true, t),
                    metric("faas.errors", f, 2, true, t),
                    metric("faas.coldstarts", f, 1, true, t),
                    metric(
                        "aws.sqs.approximate_number_of_messages_visible",
                        ("messaging.destination.name", "onboarding-dlq"),
                        3,
                        false,
                        t,
                    ),
                ],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    })?;
    assert_eq!(store.metric_names(None).len(), 4, "stored and indexed");
    let app = throughline_apm::router_with_dashboards(
        store,
        throughline_apm::OtlpEndpoints::default(),
        vec![Dashboard {
            system: "onboarding".into(),
            title: "Onboarding".into(),
            functions: vec!["onboarding-lambda".into()],
            queues: vec!["onboarding-queue".into(), "onboarding-dlq".into()],
            dead_letter_queues: vec!["onboarding-dlq".into()],
            completion: None,
        }],
    );
    let (status, list) = get(&app, "/dashboards").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("href=\"/dashboards/onboarding\""), "{list}");

    let (status, page) = get(&app, "/dashboards/onboarding?lookback=1h").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for expected in [
        "data-testid=\"invocations\">5<",
        "data-testid=\"errors\">2<",
        "data-testid=\"coldstarts\">1<",
        "data-testid=\"visible\">3<",
        "dead letters</span>",
        "<svg",
    ] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
    // A window that ends before the samples shows none of them.
    let end_micros = (t / 1000) - 60_000_000;
    let (_, before) = get(
        &app,
        &format!("/dashboards/onboarding?end={end_micros}&lookback=1h"),
    )
    .await;
    assert!(
        before.contains("data-testid=\"invocations\">0<"),
        "{before}"
    );

    let (status, _) = get(&app, "/dashboards/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, bad) = get(&app, "/dashboards/onboarding?lookback=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad.contains("lookback"), "{bad}");
    Ok(())
}

#[tokio::test]
async fn a_service_page_lists_its_business_metrics_by_attribute() -> anyhow::Result<()> {
    let t = now() - 5 * 60 * 1_000_000_000;
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    let store = Arc::new(Store::open(config)?);
    store.write_traces(support::trace_data::two_service_trace(t))?;
    let api = support::trace_data::API;
    let export = |ctype: &str, n: i64| ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", api)],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![metric(
                    "onboarding.requests",
                    ("customer.type", ctype),
                    n,
                    true,
                    t,
                )],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    };
    store.write_metrics(export("premium", 7))?;
    store.write_metrics(export("standard", 11))?;
    let app = throughline_apm::router(store);
    let (status, page) = get(&app, &format!("/services/{api}?lookback=1h")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let table = page
        .split("data-testid=\"service-metrics\"")
        .nth(1)
        .unwrap_or_default();
    assert!(table.contains("<code>onboarding.requests</code>"), "{page}");
    assert!(
        table.contains("customer.type=premium</td><td>7.000<"),
        "{table}"
    );
    assert!(
        table.contains("customer.type=standard</td><td>11.000<"),
        "{table}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_dashboard_is_a_404_page() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(StoreConfig::new(dir.path()))?);
    let app = throughline_apm::router(store);
    let (status, _) = get(&app, "/dashboards/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}
