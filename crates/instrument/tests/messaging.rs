//! The producers against the carriers' rules: the SQS 10-attribute limit fails the send span and
//! leaves the caller's attributes alone; the EventBridge producer's context, carried in
//! `detail._trace`, is the parent of the consumer's record span.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use opentelemetry::trace::Status;
use throughline_instrument::{
    EventBridgeProducer, Invocation, RecordCarrier, SqsBatchConsumer, SqsProducer,
};
use throughline_telemetry::testing::TestTracing;

fn w3c() {
    opentelemetry::global::set_text_map_propagator(
        throughline_propagation::TraceContextPropagator::new(),
    );
}

#[test]
fn a_message_with_no_room_for_the_trace_fails_its_send_span_and_keeps_its_attributes() {
    w3c();
    let tracing = TestTracing::new();
    let producer = SqsProducer::new(tracing.tracer("shop"), "orders");
    let mut attributes: HashMap<String, MessageAttributeValue> = (0..10)
        .map(|n| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(n.to_string())
                .build()
                .unwrap();
            (format!("a{n}"), value)
        })
        .collect();
    let before = attributes.clone();
    let error = producer
        .start_send(&mut attributes, [])
        .expect_err("ten attributes leave no room");
    assert_eq!((error.caller, error.added), (10, 1));
    assert_eq!(attributes, before);
    let spans = tracing.spans();
    spans.assert_attribute("send orders", "error.type", "attribute_limit");
    assert!(matches!(
        spans.find("send orders").status,
        Status::Error { .. }
    ));
}

#[tokio::test]
async fn an_eventbridge_event_delivered_through_sqs_continues_the_producers_trace() {
    w3c();
    let tracing = TestTracing::new();
    let producer = EventBridgeProducer::new(tracing.tracer("shop"), "orders-bus");
    let mut detail = serde_json::json!({"order_id": "o-1"});
    let put = producer.start_put(&mut detail, []).expect("an object");
    put.end();
    assert!(detail["_trace"]["traceparent"].is_string(), "{detail}");
    // A detail that is not an object is refused, its span failed.
    let mut not_an_object = serde_json::json!([1, 2]);
    assert!(producer.start_put(&mut not_an_object, []).is_err());

    let mut record = SqsMessage::default();
    record.message_id = Some("m-1".into());
    record.body =
        Some(serde_json::json!({"detail-type": "OrderPlaced", "detail": detail}).to_string());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    let consumer = SqsBatchConsumer::new(tracing.tracer("worker"), "notifications")
        .carrier(RecordCarrier::EventBridgeDetail(Default::default()));
    let response = consumer
        .handle(&event, Invocation::default(), |_| async { Ok(()) })
        .await;
    assert!(response.batch_item_failures.is_empty());
    let spans = tracing.spans();
    let sends = spans.find_all("send orders-bus");
    assert_eq!(sends.len(), 2);
    let record_span = spans.find("process notifications");
    let parent = spans.parent_of(record_span).expect("a parent");
    assert_eq!(parent.name, "send orders-bus");
    assert!(matches!(parent.status, Status::Unset));
    assert!(
        parent
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "messaging.system"
                && kv.value.as_str() == "aws_eventbridge")
    );
    let batch = spans.find("batch notifications");
    assert_eq!(batch.links.len(), 1);
    assert_eq!(
        batch.links[0].span_context.span_id(),
        parent.span_context.span_id()
    );
    // The refused event's span failed.
    assert!(
        sends
            .iter()
            .any(|s| matches!(s.status, Status::Error { .. }))
    );
}
