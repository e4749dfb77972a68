//! The Jaeger-compatible query API and `/metrics` over a real store: every endpoint in Jaeger's
//! JSON model, errors in Jaeger's error shape, snapshots of the trace JSON and the metrics text.

mod common;

use common::*;
use throughline_store::ExportTraceServiceRequest;

const MS: u64 = 1_000_000;

/// A collector holding the fixture trace (trace id `0a…0a`) and a second one (`0b…0b`), both
/// sent over gRPC.
async fn loaded() -> (TestCollector, u64) {
    let c = start().await;
    let base = now_nanos() - 60_000 * MS;
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(c.grpc_url())
        .await
        .expect("grpc connects");
    for (byte, offset) in [(0x0a, 0), (0x0b, 1000 * MS)] {
        let request: ExportTraceServiceRequest = two_service_trace(byte, base + offset);
        client.export(request).await.expect("export succeeds");
    }
    (c, base)
}

#[tokio::test]
async fn trace_by_id_matches_the_jaeger_snapshot() {
    let (c, base) = loaded().await;
    let (status, mut body) =
        get_json(&c.query_url(&format!("/api/traces/{}", "0a".repeat(16)))).await;
    assert_eq!(status, 200);
    normalise_times(&mut body, base / 1000);
    insta::assert_json_snapshot!("trace_by_id", body);
}

#[tokio::test]
async fn services_and_operations() {
    let (c, _) = loaded().await;
    let (_, body) = get_json(&c.query_url("/api/services")).await;
    assert_eq!(body["data"], serde_json::json!(["shop-api", "shop-worker"]));
    assert_eq!(body["total"], 2);
    assert_eq!(body["errors"], serde_json::Value::Null);

    let (_, body) = get_json(&c.query_url("/api/services/shop-api/operations")).await;
    assert_eq!(
        body["data"],
        serde_json::json!(["POST /orders", "orders publish"])
    );

    let (_, body) =
        get_json(&c.query_url("/api/operations?service=shop-worker&spanKind=consumer")).await;
    assert_eq!(
        body["data"],
        serde_json::json!([{"name": "orders process", "spanKind": "consumer"}])
    );
}

#[tokio::test]
async fn search_by_service_operation_duration_and_tags() {
    let (c, base) = loaded().await;
    let start = (base - 1000 * MS) / 1000;
    let end = (base + 10_000 * MS) / 1000;
    let search = |extra: &str| {
        c.query_url(&format!(
            "/api/traces?service=shop-api&start={start}&end={end}{extra}"
        ))
    };

    let (status, body) = get_json(&search("")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");

    let (_, body) = get_json(&search("&limit=1")).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));

    // The root lasts 40 ms and the whole trace 70 ms: a minimum of 1s matches nothing.
    let (_, body) = get_json(&search("&minDuration=1s")).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{body}");

    let (_, body) = get_json(&search(
        "&operation=POST%20%2Forders&tags=%7B%22http.route%22%3A%22%2Forders%22%7D",
    ))
    .await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");

    let (_, body) = get_json(&search("&tags=%7B%22http.route%22%3A%22%2Fnothing%22%7D")).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{body}");

    let (_, body) = get_json(&c.query_url("/api/traces?service=shop-api&lookback=2h")).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");
}

#[tokio::test]
async fn errors_use_jaegers_shape_and_status() {
    let (c, _) = loaded().await;
    let cases = [
        ("/api/traces?start=1", 400, "service"),
        (
            "/api/traces?service=shop-api&minDuration=fast",
            400,
            "minDuration",
        ),
        (
            "/api/traces?service=shop-api&lookback=forever",
            400,
            "lookback",
        ),
        ("/api/traces?service=shop-api&tags=%5B%5D", 400, "tags"),
        ("/api/traces?service=shop-api&end=yesterday", 400, "end"),
        ("/api/operations", 400, "service"),
        (
            "/api/operations?service=shop-api&spanKind=sideways",
            400,
            "spanKind",
        ),
        ("/api/dependencies?endTs=soon", 400, "endTs"),
        ("/api/traces/not-hex", 400, "traceID"),
        (
            &format!("/api/traces/{}", "cc".repeat(16)),
            404,
            "not found",
        ),
    ];
    for (path, want_status, want_in_message) in cases {
        let (status, body) = get_json(&c.query_url(path)).await;
        assert_eq!(status.as_u16(), want_status, "{path}: {body}");
        assert_eq!(body["data"], serde_json::Value::Null, "{path}");
        assert_eq!(body["errors"][0]["code"], want_status, "{path}");
        let msg = body["errors"][0]["msg"].as_str().expect("msg");
        assert!(msg.contains(want_in_message), "{path}: {msg}");
    }
}

#[tokio::test]
async fn dependencies_come_from_the_service_graph() {
    let (c, base) = loaded().await;
    let end_ms = (base + 60_000 * MS) / MS;
    let (status, body) = get_json(&c.query_url(&format!(
        "/api/dependencies?endTs={end_ms}&lookback=3600000"
    )))
    .await;
    assert_eq!(status, 200, "{body}");
    let links = body["data"].as_array().expect("links");
    assert!(
        links
            .iter()
            .any(|l| l["parent"] == "shop-api" && l["callCount"].as_u64() >= Some(1)),
        "{body}"
    );
}

#[tokio::test]
async fn integrity_endpoint_reports_whole_and_broken_traces() {
    let (c, base) = loaded().await;
    // A trace whose worker half arrived but whose API half did not.
    let mut broken = two_service_trace(0x0c, base + 2000 * MS);
    broken.resource_spans.remove(0);
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(c.grpc_url())
        .await
        .expect("grpc connects");
    client.export(broken).await.expect("export succeeds");

    let (_, body) = get_json(&c.query_url(&format!(
        "/api/throughline/integrity?traceID={}&traceID={}",
        "0a".repeat(16),
        "0c".repeat(16)
    )))
    .await;
    let data = body["data"].as_array().expect("reports");
    assert_eq!(data[0]["integrity"], "whole", "{body}");
    assert_eq!(
        data[0]["services"],
        serde_json::json!(["shop-api", "shop-worker"])
    );
    assert_eq!(data[0]["spanCount"], 4);
    assert_eq!(data[1]["integrity"], "incomplete", "{body}");
    let problems = data[1]["problems"].to_string();
    assert!(
        problems.contains("missing root") && problems.contains("0000000000000002"),
        "{problems}"
    );

    let (_, body) = get_json(&c.query_url("/api/throughline/integrity?lookback=2h")).await;
    let data = body["data"].as_array().expect("reports");
    assert_eq!(data.len(), 3, "{body}");
}

#[tokio::test]
async fn metrics_text_matches_the_snapshot() {
    let (c, _) = loaded().await;
    let text = reqwest::get(c.query_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // The store's size on disk depends on compression and file layout, not on behaviour.
    let stable: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("throughline_store_disk_bytes "))
        .collect();
    insta::assert_snapshot!("metrics", stable.join("\n"));
}

#[tokio::test]
async fn a_search_over_the_span_budget_is_cut_and_says_so() {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use throughline_collector::query::{MAX_SEARCH_SPANS, TRUNCATED_HEADER};
    let c = start().await;
    let base = now_nanos() - 60_000 * MS;
    let per_trace = MAX_SEARCH_SPANS / 3 + 1;
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(c.grpc_url())
        .await
        .expect("grpc connects");
    for t in 1..=4u8 {
        let spans = (1..=per_trace as u64)
            .map(|n| throughline_store::Span {
                trace_id: vec![t; 16],
                span_id: n.to_be_bytes().to_vec(),
                parent_span_id: if n == 1 {
                    Vec::new()
                } else {
                    1u64.to_be_bytes().to_vec()
                },
                name: "big".into(),
                start_time_unix_nano: base + u64::from(t) * MS,
                end_time_unix_nano: base + u64::from(t) * MS + 1000,
                ..Default::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![kv("service.name", "big")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        client.export(request).await.expect("export succeeds");
    }
    let response = reqwest::get(c.query_url(&format!(
        "/api/traces?service=big&start={}&end={}&limit=10",
        (base - 1000 * MS) / 1000,
        (base + 1000 * MS) / 1000
    )))
    .await
    .expect("query API answers");
    assert_eq!(response.status(), 200);
    let header = response
        .headers()
        .get(TRUNCATED_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("the cut is said in a header");
    assert!(header.contains("3 of 4 traces"), "{header}");
    let body: serde_json::Value = response.json().await.expect("json");
    let data = body["data"].as_array().expect("traces");
    assert_eq!(data.len(), 3);
    assert!(
        data[2]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("search cut at")),
        "{}",
        data[2]["warnings"]
    );
}
