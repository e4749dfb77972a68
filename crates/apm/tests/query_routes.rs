//! The APM pages merged into the collector's query API, as `throughline up` serves them: both
//! read their parameters with the one parser, so the same URL means the same thing on each, and
//! a bad id is a 400 naming its parameter on every route that takes one.

mod support;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use support::trace_data::{self, API, TRACE_HEX};
use throughline_collector::QueryServer;
use throughline_store::TraceReader;
use tower::ServiceExt as _;

const MINUTE: u64 = 60 * 1_000_000_000;

fn app(reader: Arc<dyn TraceReader>) -> Router {
    QueryServer::new(Arc::clone(&reader))
        .with_pages(throughline_apm::router(reader))
        .router()
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("the router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[tokio::test]
async fn search_page_and_api_agree_on_a_go_duration_lookback() {
    // The trace started 80 minutes ago: inside 1h30m, outside 1h.
    let (reader, _dir) =
        support::filled_store(vec![trace_data::two_service_trace(now() - 80 * MINUTE)])
            .expect("store");
    let app = app(reader);
    for (lookback, found) in [("1h30m", true), ("1h", false), ("2d", true)] {
        let (status, api) = get(
            &app,
            &format!("/api/traces?service={API}&lookback={lookback}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{lookback}: {api}");
        let api: serde_json::Value = serde_json::from_str(&api).expect("json");
        let api_found = api["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|t| t["traceID"] == TRACE_HEX);
        let (status, page) = get(&app, &format!("/search?service={API}&lookback={lookback}")).await;
        assert_eq!(status, StatusCode::OK, "{lookback}: {page}");
        let page_found = page.contains(&format!("/trace/{TRACE_HEX}"));
        assert_eq!(api_found, found, "/api/traces with lookback={lookback}");
        assert_eq!(page_found, found, "/search with lookback={lookback}");
    }
}

#[tokio::test]
async fn non_ascii_ids_are_a_400_naming_the_parameter_on_every_route() {
    let (reader, _dir) =
        support::filled_store(vec![trace_data::two_service_trace(trace_data::base_time())])
            .expect("store");
    let app = app(reader);
    let e_acute = "%C3%A9";
    let emoji = "%F0%9F%98%80";
    let padded = format!("{}{e_acute}", "0".repeat(30));
    for bad in [e_acute, emoji, padded.as_str()] {
        for (path, param) in [
            (format!("/api/traces/{bad}"), "traceID"),
            (format!("/api/traces?traceID={bad}"), "traceID"),
            (
                format!("/api/throughline/integrity?traceID={bad}"),
                "traceID",
            ),
            (format!("/trace/{bad}"), "traceId"),
            (format!("/trace?id={bad}"), "id"),
            (format!("/trace/{TRACE_HEX}?span={bad}"), "span"),
        ] {
            let (status, body) = get(&app, &path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
            assert!(body.contains(&format!("{param}: ")), "{path}: {body}");
        }
    }
}

#[tokio::test]
async fn limits_over_the_cap_are_refused_saying_the_cap() {
    let (reader, _dir) = support::filled_store(vec![]).expect("store");
    let app = app(reader);
    let (status, body) = get(&app, &format!("/api/traces?service={API}&limit=100000")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("limit: ") && body.contains("1500"), "{body}");
    let (status, body) = get(&app, "/search?limit=100000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("limit: ") && body.contains("1000"), "{body}");
}

#[tokio::test]
async fn flags_other_than_true_or_false_are_refused() {
    let (reader, _dir) = support::filled_store(vec![]).expect("store");
    let app = app(reader);
    let (status, body) = get(&app, "/api/throughline/integrity?incompleteOnly=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("incompleteOnly: "), "{body}");
    let (status, body) = get(&app, "/search?incompleteOnly=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("incompleteOnly: "), "{body}");
}

#[tokio::test]
async fn every_page_answer_carries_the_content_security_policy_and_nosniff() {
    let (reader, _dir) =
        support::filled_store(vec![trace_data::two_service_trace(trace_data::base_time())])
            .expect("store");
    let app = app(reader);
    for path in [
        "/search".to_owned(),
        format!("/trace/{TRACE_HEX}"),
        "/map".to_owned(),
        "/services".to_owned(),
        "/integrity".to_owned(),
        "/static/apm.js".to_owned(),
        "/static/apm.css".to_owned(),
        "/search?limit=nope".to_owned(),
        "/no-such-page".to_owned(),
    ] {
        let response = app
            .clone()
            .oneshot(Request::get(&path).body(Body::empty()).expect("request"))
            .await
            .expect("the router answers");
        let headers = response.headers();
        assert_eq!(
            headers
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok()),
            Some(throughline_apm::CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert!(
            throughline_apm::CONTENT_SECURITY_POLICY.contains("script-src 'self';"),
            "no inline script is allowed"
        );
        assert_eq!(
            headers
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{path}"
        );
    }
}
