//! Interop for metrics: the Python OpenTelemetry SDK's OTLP metric exporters (gRPC and
//! HTTP/protobuf, cumulative and delta temporality) send business metrics that
//! `/api/throughline/metrics` gives back: counter increases and rates by `customer.type`,
//! histogram percentiles, up-down counters, gauges and exponential histograms.

mod common;

use common::*;

async fn python_metrics(
    c: &TestCollector,
    mode: &str,
    endpoint: String,
    temporality: &str,
    service: &str,
) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_metrics_peer.py");
    let python = tokio::task::spawn_blocking(throughline_testkit::python)
        .await
        .expect("venv set-up");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([mode, &endpoint, temporality, service])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "python metrics peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = c;
}

async fn series(c: &TestCollector, query: &str) -> Vec<serde_json::Value> {
    let (status, body) = get_json(&c.query_url(&format!("/api/throughline/metrics?{query}"))).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// What the peer recorded comes back whatever the protocol and temporality.
async fn assert_business_metrics(c: &TestCollector, service: &str) {
    let requests = series(
        c,
        &format!("name=onboarding.requests&service={service}&lookback=10m"),
    )
    .await;
    let by_type: Vec<(String, f64)> = requests
        .iter()
        .map(|s| {
            (
                s["attributes"]["customer.type"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                s["total"]["value"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(
        by_type,
        vec![("premium".to_owned(), 7.0), ("standard".to_owned(), 10.0)],
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|s| s["kind"] == "counter" && s["unit"] == "{request}")
    );
    assert!(
        requests[0]["total"]["rate"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    );

    let premium = series(
        c,
        &format!(
            "name=onboarding.duration&service={service}&attr.customer.type=premium&lookback=10m"
        ),
    )
    .await;
    assert_eq!(premium.len(), 1, "{premium:?}");
    let total = &premium[0]["total"];
    assert_eq!(total["value"], 7.0, "{total}");
    assert_eq!(total["sum"], 7.0 * 180.0, "{total}");
    // The SDK's default buckets put 180 in (100, 250]; min and max (180) clamp the estimate.
    for q in ["p50", "p95", "p99"] {
        assert_eq!(total[q], 180.0, "{q}: {total}");
    }

    let active = series(
        c,
        &format!("name=onboarding.active&service={service}&lookback=10m"),
    )
    .await;
    assert_eq!(active[0]["kind"], "up_down_counter");
    assert_eq!(active[0]["total"]["value"], 4.0, "{active:?}");

    let lag = series(
        c,
        &format!("name=onboarding.queue.lag&service={service}&lookback=10m"),
    )
    .await;
    assert_eq!(lag[0]["kind"], "gauge");
    assert_eq!(lag[0]["total"]["value"], 42.5);

    let sizes = series(
        c,
        &format!("name=onboarding.step.size&service={service}&lookback=10m"),
    )
    .await;
    let total = &sizes[0]["total"];
    assert_eq!(total["value"], 8.0, "{total}");
    let p50 = total["p50"].as_f64().expect("p50");
    assert!(
        (180.0..=220.0).contains(&p50),
        "exponential buckets at scale 20 are narrow: {total}"
    );

    let (_, names) =
        get_json(&c.query_url(&format!("/api/throughline/metrics/names?service={service}"))).await;
    assert_eq!(
        names["data"],
        serde_json::json!([
            "onboarding.active",
            "onboarding.duration",
            "onboarding.queue.lag",
            "onboarding.requests",
            "onboarding.step.size"
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_metrics_over_grpc_cumulative_come_back_through_the_api() {
    let c = start().await;
    python_metrics(&c, "grpc", c.grpc_url(), "cumulative", "py-onboarding-grpc").await;
    assert_business_metrics(&c, "py-onboarding-grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_metrics_over_http_delta_come_back_through_the_api() {
    let c = start().await;
    python_metrics(&c, "http", c.http_url(""), "delta", "py-onboarding-http").await;
    assert_business_metrics(&c, "py-onboarding-http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_metric_parameters_are_refused_naming_them() {
    let c = start().await;
    for (query, param) in [
        ("service=a", "name"),
        ("name=m&step=soon", "step"),
        ("name=m&lookback=1h&step=1ms", "step"),
        ("name=m&start=abc", "start"),
    ] {
        let (status, body) =
            get_json(&c.query_url(&format!("/api/throughline/metrics?{query}"))).await;
        assert_eq!(status, 400, "{query}: {body}");
        let msg = body["errors"][0]["msg"].as_str().unwrap_or_default();
        assert!(msg.starts_with(param), "{query}: {msg}");
    }
    let (status, body) = get_json(&c.query_url("/api/throughline/metrics?name=nothing.here")).await;
    assert_eq!(
        (status.as_u16(), body["data"].clone()),
        (200, serde_json::json!([]))
    );
}
