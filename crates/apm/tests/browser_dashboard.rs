//! A system's dashboard in a real headless chromium, over a store holding ten minutes of the
//! Lambda host's and the broker's metrics: the figures a person looks for are on the page, the
//! time range comes from the URL, and the page logs no console error.
//!
//! `APM_SCREENSHOTS=1 cargo test -p throughline-apm --test browser_dashboard` refreshes
//! `docs/screenshots/dashboard.png`.

mod support;

use std::sync::Arc;

use anyhow::{bail, ensure};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use support::cdp::Browser;
use throughline_apm::Dashboard;
use throughline_store::{SpanSink, Store, StoreConfig};

const SEC: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn number(attr: &KeyValue, t: u64, v: i64) -> Vec<NumberDataPoint> {
    vec![NumberDataPoint {
        attributes: vec![attr.clone()],
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsInt(v)),
        ..NumberDataPoint::default()
    }]
}

fn counter(name: &str, attr: &KeyValue, t: u64, v: i64) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Sum(Sum {
            data_points: number(attr, t, v),
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Metric::default()
    }
}

fn gauge(name: &str, attr: &KeyValue, t: u64, v: i64) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: number(attr, t, v),
        })),
        ..Metric::default()
    }
}

/// One minute of a busy onboarding system: `i` shapes the load.
fn minute(t: u64, i: u64) -> ExportMetricsServiceRequest {
    let f = kv("faas.name", "onboarding-lambda");
    let q = kv("messaging.destination.name", "onboarding-queue");
    let dlq = kv("messaging.destination.name", "onboarding-dlq");
    let n = 20 + (i * 7) % 30;
    let durations = Metric {
        name: "faas.invoke_duration".into(),
        unit: "s".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![f.clone()],
                time_unix_nano: t,
                count: n,
                bucket_counts: vec![0, n / 2, n - n / 2 - 1, 1],
                explicit_bounds: vec![0.05, 0.1, 0.25],
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Metric::default()
    };
    let metrics = vec![
        counter("faas.invocations", &f, t, n as i64),
        counter("faas.errors", &f, t, i.is_multiple_of(4) as i64),
        counter("faas.coldstarts", &f, t, (i == 0) as i64),
        counter("aws.lambda.throttles", &f, t, 0),
        durations,
        gauge(
            "aws.sqs.approximate_number_of_messages_visible",
            &q,
            t,
            ((i * 5) % 17) as i64,
        ),
        gauge(
            "aws.sqs.approximate_age_of_oldest_message",
            &q,
            t,
            ((i * 3) % 11) as i64,
        ),
        gauge(
            "aws.sqs.approximate_number_of_messages_visible",
            &dlq,
            t,
            (i / 4) as i64,
        ),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "onboarding-lambda")],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboarding_dashboard_shows_functions_and_queues() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(StoreConfig::new(dir.path()))?);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    for i in 0..10 {
        store.write_metrics(minute(now - (10 - i) * 60 * SEC, i))?;
    }
    let app = throughline_apm::router_with_dashboards(
        store,
        throughline_apm::OtlpEndpoints::default(),
        vec![Dashboard {
            system: "onboarding".into(),
            title: "onboarding system: Lambda and SQS".into(),
            functions: vec!["onboarding-lambda".into()],
            queues: vec!["onboarding-queue".into(), "onboarding-dlq".into()],
            dead_letter_queues: vec!["onboarding-dlq".into()],
            completion: None,
        }],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let profile = tempfile::tempdir()?;
    let keep = std::env::var_os("APM_SCREENSHOTS").is_some();
    let tmp = tempfile::tempdir()?;
    let shots = if keep {
        throughline_testkit::workspace_root().join("docs/screenshots")
    } else {
        tmp.path().to_owned()
    };
    let problems = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut b = Browser::launch(profile.path())?;
        b.goto(&format!("{base}/dashboards"))?;
        b.click_and_wait("a[href='/dashboards/onboarding']")?;
        ensure!(b.url().ends_with("/dashboards/onboarding"), "{}", b.url());
        b.goto(&format!("{base}/dashboards/onboarding?lookback=15m"))?;
        let text = b.text()?;
        for expected in [
            "onboarding-lambda",
            "Invocations",
            "Cold starts",
            "Duration p95",
            "onboarding-dlq",
            "dead letters",
            "Oldest message",
        ] {
            ensure!(
                text.contains(expected),
                "the dashboard does not show {expected:?}:\n{text}"
            );
        }
        let invocations =
            b.eval("document.querySelector('[data-testid=invocations]').textContent")?;
        // 20 + (i*7 % 30) for i in 0..10: 20,27,34,41,48,25,32,39,46,23 = 335.
        ensure!(invocations == "335", "invocations: {invocations}");
        let svgs = b.eval("document.querySelectorAll('svg').length")?;
        ensure!(svgs.as_u64().is_some_and(|n| n >= 9), "charts: {svgs}");
        b.screenshot(&shots.join("dashboard.png"), 1400.0)?;
        Ok(std::mem::take(&mut b.problems))
    })
    .await??;
    if !problems.is_empty() {
        bail!("the dashboard logged errors: {problems:#?}");
    }
    Ok(())
}
