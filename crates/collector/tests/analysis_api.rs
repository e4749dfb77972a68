//! Throughline's analysis endpoints over real OTLP: N+1 and near-miss traces sent over gRPC, then
//! `/api/throughline/findings`, `/database` and `/errors` read back.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{Status, status};
use throughline_store::ExportMetricsServiceRequest;
use throughline_store::testdata::{QueryLoopTrace, export};

const MS: u64 = 1_000_000;

/// A collector holding an N+1 trace (7 × 9 ms), two near misses (4 × 20 ms; 6 × 8 ms = 48 ms)
/// and a slow query that found its pool exhausted and failed.
async fn loaded() -> (TestCollector, QueryLoopTrace) {
    let c = start().await;
    let base = now_nanos() - 60_000 * MS;
    let mut client = TraceServiceClient::connect(c.grpc_url())
        .await
        .expect("grpc connects");
    let n_plus_one = QueryLoopTrace::new(1, base, 7, 9_000);
    for t in [
        &n_plus_one,
        &QueryLoopTrace::new(2, base + MS, 4, 20_000),
        &QueryLoopTrace::new(3, base + 2 * MS, 6, 8_000),
    ] {
        client.export(t.request()).await.expect("export succeeds");
    }
    let mut slow = QueryLoopTrace::new(4, base + 3 * MS, 0, 150_000).spans();
    let query = &mut slow[0];
    query.attributes.extend([
        kv("db.slow_query", "true"),
        kv("db.missing_index", "idx_videos_title"),
        kv_int("db.rows_scanned", 10_000),
        kv("db.connection.pool.exhausted", "true"),
        kv_int("db.connection.pool.size", 20),
        kv_int("db.connection.pool.wait_time_ms", 5000),
    ]);
    query.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "pool timed out".into(),
    });
    client
        .export(export("videos-api", slow))
        .await
        .expect("export succeeds");
    // The pool's own metrics: 20 of 20 connections in use.
    let mut metrics = MetricsServiceClient::connect(c.grpc_url())
        .await
        .expect("grpc connects");
    let point = |value: i64, state: Option<&str>| NumberDataPoint {
        attributes: [Some(kv("db.client.connection.pool.name", "videos"))]
            .into_iter()
            .chain([state.map(|s| kv("db.client.connection.state", s))])
            .flatten()
            .collect(),
        time_unix_nano: now_nanos(),
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    };
    let gauge = |name: &str, points| Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    };
    metrics
        .export(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(throughline_store::testdata::resource("videos-api")),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        gauge("db.client.connection.count", vec![point(20, Some("used"))]),
                        gauge("db.client.connection.max", vec![point(20, None)]),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .await
        .expect("metrics export succeeds");
    (c, n_plus_one)
}

#[tokio::test]
async fn findings_list_the_n_plus_one_and_not_the_near_misses() {
    let (c, n_plus_one) = loaded().await;
    let (status, body) = get_json(
        &c.query_url("/api/throughline/findings?service=videos-api&lookback=1h&kind=n_plus_one_db"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().expect("a list");
    assert_eq!(data.len(), 1, "{body}");
    let f = &data[0];
    assert_eq!(f["kind"], "n_plus_one_db");
    assert_eq!(f["traceID"], n_plus_one.trace_id.to_string());
    assert_eq!(f["parentSpanID"], n_plus_one.root_span_id().to_string());
    assert_eq!(f["count"], 7);
    assert_eq!(f["spanIDs"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        f["statement"],
        "SELECT slot, ad_id FROM placements WHERE video_id = ?"
    );
    assert_eq!(f["durationMs"], 63.0);
    assert_eq!(f["service"], "videos-api");

    let (_, body) = get_json(&c.query_url("/api/throughline/findings?kind=repeated_http")).await;
    assert_eq!(body["data"], serde_json::json!([]));
    let (_, body) = get_json(&c.query_url("/api/throughline/findings?service=other")).await;
    assert_eq!(body["data"], serde_json::json!([]));

    let (status, body) = get_json(&c.query_url("/api/throughline/findings?kind=n_plus_two")).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .starts_with("kind:"),
        "{body}"
    );
}

#[tokio::test]
async fn the_database_report_ranks_classes_and_lists_slow_queries_and_pools() {
    let (c, _) = loaded().await;
    let (status, body) =
        get_json(&c.query_url("/api/throughline/database?service=videos-api&lookback=1h")).await;
    assert_eq!(status, 200, "{body}");
    let report = &body["data"][0];
    assert_eq!(report["slowQueryThresholdMs"], 100.0);
    let statements = report["statements"].as_array().expect("statements");
    // 7 + 4 + 6 per-item queries: 63 + 80 + 48 = 191 ms, the most time.
    let top = &statements[0];
    assert_eq!(
        top["statement"],
        "SELECT slot, ad_id FROM placements WHERE video_id = ?"
    );
    assert_eq!(top["calls"], 17);
    assert_eq!(top["totalMs"], 191.0);
    assert_eq!(top["dbSystem"], "postgresql");
    assert_eq!(top["database"], "videos");
    assert_eq!(top["tables"], serde_json::json!(["placements"]));
    assert_eq!(top["callers"], serde_json::json!(["videos-api"]));
    assert_eq!(top["p50Ms"], 9.0);
    assert_eq!(top["p99Ms"], 20.0);
    assert_eq!(top["errors"], 0);
    let list = statements
        .iter()
        .find(|s| s["statement"] == "SELECT id, title FROM videos LIMIT ?")
        .expect("the list query is a class");
    assert_eq!(list["calls"], 4);
    assert_eq!(list["errors"], 1);
    assert_eq!(list["slowest"]["durationMs"], 150.0);
    let slow = report["slowQueries"].as_array().expect("slow queries");
    assert_eq!(slow.len(), 1, "{body}");
    assert_eq!(
        slow[0]["attributes"]["db.missing_index"],
        "idx_videos_title"
    );
    assert_eq!(slow[0]["attributes"]["db.rows_scanned"], "10000");
    assert_eq!(slow[0]["error"], true);
    let pools = report["pools"].as_array().expect("pools");
    assert_eq!(
        pools.len(),
        1,
        "one pool, named `videos` by the spans and by the metrics"
    );
    assert_eq!(pools[0]["exhausted"], 1);
    assert_eq!(pools[0]["maxPoolSize"], 20);
    assert_eq!(pools[0]["maxWaitMs"], 5000.0);
    assert_eq!(pools[0]["metrics"]["maxInUse"], 20, "{body}");
    assert_eq!(pools[0]["metrics"]["pointsAtLimit"], 1, "{body}");
    let services = report["services"].as_array().expect("services");
    assert_eq!(services[0]["service"], "videos-api");
    assert_eq!(services[0]["entryCalls"], 4);
    // At 20 ms the second trace's five queries are slow too.
    let (_, body) = get_json(
        &c.query_url("/api/throughline/database?service=videos-api&lookback=1h&slowQueryMs=20"),
    )
    .await;
    assert_eq!(
        body["data"][0]["slowQueries"].as_array().map(Vec::len),
        Some(6)
    );

    let (status, body) = get_json(&c.query_url("/api/throughline/database?slowQueryMs=soon")).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .starts_with("slowQueryMs:")
    );
}

#[tokio::test]
async fn errors_are_grouped_by_service_and_message() {
    let (c, _) = loaded().await;
    let (status, body) =
        get_json(&c.query_url("/api/throughline/errors?service=videos-api&lookback=1h")).await;
    assert_eq!(status, 200, "{body}");
    let groups = body["data"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{body}");
    assert_eq!(groups[0]["message"], "pool timed out");
    assert_eq!(groups[0]["count"], 1);
    assert_eq!(groups[0]["spanNames"], serde_json::json!(["SELECT videos"]));
    assert_eq!(groups[0]["recent"].as_array().map(Vec::len), Some(1));
}
