//! Runs the two examples and checks their spans: one trace from `POST /orders` through the
//! EventBridge event to the worker's CONSUMER span, the health check untraced, and a bad record
//! reported in `batchItemFailures`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::SpanKind;
use throughline_examples::{http_service, sqs_worker};
use throughline_instrument::Invocation;
use throughline_telemetry::testing::TestTracing;
use tower::ServiceExt as _;

fn tracer(tracing: &TestTracing) -> throughline_instrument::SharedTracer {
    Arc::new(BoxedTracer::new(Box::new(tracing.tracer("examples"))))
}

fn record(id: &str, body: String) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(id.to_owned());
    record.body = Some(body);
    record
}

#[tokio::test]
async fn one_trace_goes_from_the_http_request_through_the_event_to_the_worker() {
    opentelemetry::global::set_text_map_propagator(
        throughline_propagation::TraceContextPropagator::new(),
    );
    let tracing = TestTracing::new();
    let (router, shop) = http_service::router(tracer(&tracing), 8080);

    let order = http::Request::post("/orders")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"order_id": "o-7"}"#))
        .unwrap();
    let answer = router.clone().oneshot(order).await.unwrap();
    assert_eq!(answer.status(), 202);
    let traceresponse = answer.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    let health = http::Request::get("/health")
        .body(axum::body::Body::empty())
        .unwrap();
    assert!(
        !router
            .oneshot(health)
            .await
            .unwrap()
            .headers()
            .contains_key("traceresponse")
    );

    // The rule delivers the event, `_trace` in its detail, as the body of an SQS record.
    let detail = shop.events.lock().unwrap()[0].clone();
    let envelope =
        serde_json::json!({"detail-type": "OrderPlaced", "source": "shop", "detail": detail});
    let mut event = SqsEvent::default();
    event.records = vec![
        record("m-1", envelope.to_string()),
        record("m-2", "{}".to_owned()),
    ];
    let worker = sqs_worker::Notifier::new(tracer(&tracing));
    let out = worker.handle(event, Invocation::default()).await;
    let failed: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-2"]);

    let spans = tracing.spans();
    let server = spans.find("POST /orders");
    assert_eq!(
        traceresponse,
        format!(
            "00-{}-{}-01",
            server.span_context.trace_id(),
            server.span_context.span_id()
        )
    );
    spans
        .assert_kind("POST /orders", SpanKind::Server)
        .assert_attribute("POST /orders", "http.route", "/orders")
        .assert_attribute("POST /orders", "http.response.status_code", 202_i64)
        .assert_parent("INSERT orders", "POST /orders")
        .assert_kind("INSERT orders", SpanKind::Client)
        .assert_attribute("INSERT orders", "db.collection.name", "orders")
        .assert_parent("send orders-bus", "POST /orders")
        .assert_attribute("send orders-bus", "messaging.operation.name", "PutEvents")
        .assert_link("batch notifications", "send orders-bus")
        .assert_parent("batch notifications", "notifications");
    // The good record's CONSUMER span continues the request's trace, under the producer span.
    let consumers = spans.find_all("process notifications");
    let continued: Vec<_> = consumers
        .iter()
        .filter(|c| {
            spans
                .parent_of(c)
                .is_some_and(|p| p.name == "send orders-bus")
        })
        .collect();
    assert_eq!(continued.len(), 1, "{}", spans.render());
    assert_eq!(
        continued[0].span_context.trace_id(),
        server.span_context.trace_id()
    );
    let confirmation = spans.find("send order confirmation");
    assert_eq!(
        confirmation.parent_span_id,
        continued[0].span_context.span_id()
    );
    // The bad record's span failed, and is a root of its own (its body carried no context).
    let failed = consumers
        .iter()
        .find(|c| c.span_context.span_id() != continued[0].span_context.span_id())
        .unwrap();
    assert!(matches!(
        failed.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    assert_eq!(
        spans.find_all("GET").len() + spans.find_all("GET /health").len(),
        0
    );
}
