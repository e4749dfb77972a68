//! `throughline conformance trace-context` as a separate process: the harness protocol, context
//! propagation with a new span id per call, and 400s that name the problem.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use throughline_testkit::{ChildGuard, free_loopback_addr, wait_for_port};

type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// A callback server that records the path and trace headers of every POST.
async fn callback_server() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/{name}",
        post(
            move |axum::extract::Path(name): axum::extract::Path<String>, headers: HeaderMap| {
                let record = record.clone();
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    // The lock is taken and released without an await in between.
                    record.lock().unwrap().push((
                        name,
                        header("traceparent"),
                        header("tracestate"),
                    ));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn start_service() -> (ChildGuard, std::net::SocketAddr) {
    let addr = free_loopback_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args([
            "conformance",
            "trace-context",
            "--listen",
            &addr.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the throughline binary");
    let guard = ChildGuard(child);
    assert!(
        wait_for_port(addr, Duration::from_secs(10)),
        "the conformance service did not listen on {addr}"
    );
    (guard, addr)
}

#[tokio::test]
async fn propagates_the_trace_with_a_new_span_id_per_call() {
    let (_service, addr) = start_service();
    let (callbacks, seen) = callback_server().await;
    let body = serde_json::json!([
        {"url": format!("http://{callbacks}/a"), "arguments": []},
        {"url": format!("http://{callbacks}/b"), "arguments": [{"url": "http://x/", "arguments": []}]},
    ]);
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/test"))
        .header(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-03",
        )
        .header("tracestate", "foo@@bar=1,k=v")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let mut span_ids = Vec::new();
    for (_, traceparent, tracestate) in &seen {
        let traceparent = traceparent.as_deref().expect("a traceparent on every call");
        assert!(
            traceparent.starts_with("00-12345678901234567890123456789012-"),
            "{traceparent}"
        );
        assert!(
            traceparent.ends_with("-03"),
            "sampled and random flags kept: {traceparent}"
        );
        span_ids.push(traceparent[36..52].to_owned());
        assert_eq!(tracestate.as_deref(), Some("foo@@bar=1,k=v"));
    }
    assert_ne!(span_ids[0], span_ids[1]);
    assert!(!span_ids.contains(&"1234567890123456".to_owned()));
}

#[tokio::test]
async fn invalid_traceparent_starts_a_new_trace() {
    let (_service, addr) = start_service();
    let (callbacks, seen) = callback_server().await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/test"))
        .header(
            "traceparent",
            "00-00000000000000000000000000000000-1234567890123456-01",
        )
        .header("tracestate", "foo=1")
        .json(&serde_json::json!([{"url": format!("http://{callbacks}/a"), "arguments": []}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, traceparent, tracestate) = seen.lock().unwrap()[0].clone();
    let traceparent = traceparent.unwrap();
    assert!(
        !traceparent.contains("00000000000000000000000000000000"),
        "{traceparent}"
    );
    assert_eq!(
        tracestate, None,
        "tracestate is dropped with an invalid traceparent"
    );
}

#[tokio::test]
async fn bad_requests_get_a_400_naming_the_problem() {
    let (_service, addr) = start_service();
    let client = reqwest::Client::new();
    let cases = [
        (
            "{not json",
            "request body is not a JSON list of {\"url\", \"arguments\"}",
        ),
        ("[{\"arguments\": []}]", "missing field `url`"),
        (
            "[{\"url\": \"ftp://x/\", \"arguments\": []}]",
            "url \"ftp://x/\" is not an http:// URL",
        ),
    ];
    for (body, expected) in cases {
        let response = client
            .post(format!("http://{addr}/test"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(text.contains(expected), "{body}: {text}");
    }
}
