//! The webhook receiver continues the caller's trace, answers 202 to a JSON object, 400 naming
//! the body otherwise, and leaves its health route untraced.

use std::sync::Arc;

use throughline_instrument::SharedTracer;
use throughline_telemetry::testing::TestTracing;

#[tokio::test]
async fn a_notification_continues_the_callers_trace() {
    opentelemetry::global::set_text_map_propagator(
        throughline_propagation::TraceContextPropagator::new(),
    );
    let tracing = TestTracing::new();
    let tracer: SharedTracer = Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(
        tracing.tracer("external-service"),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(events_webhook::serve(
        listener,
        tracer,
        None,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = client
        .post(format!("{url}/webhook"))
        .header("traceparent", parent)
        .body(r#"{"placement_id": "p-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let bad = client
        .post(format!("{url}/webhook"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let spans = tracing.spans();
    let server = spans.find_all("POST /webhook");
    assert_eq!(server.len(), 2, "{}", spans.render());
    assert_eq!(
        server[0].span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(server[0].parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(spans.get("GET /health").is_none());
}

#[tokio::test]
async fn a_failing_partner_answers_its_status() {
    let tracing = TestTracing::new();
    let tracer: SharedTracer = Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(
        tracing.tracer("external-service"),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let failing = Some(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    tokio::spawn(events_webhook::serve(
        listener,
        tracer,
        failing,
        std::future::pending(),
    ));
    let answer = reqwest::Client::new()
        .post(format!("{url}/webhook"))
        .body(r#"{"placement_id": "p-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    tracing
        .spans()
        .assert_attribute("POST /webhook", "http.response.status_code", 503_i64);
}
