//! Behaviour of every carrier: round trips (proptest), case handling, SQS limits and fallbacks,
//! EventBridge detail rules.

use std::collections::HashMap;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::MessageAttributeValue;
use http::HeaderMap;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, KeyValue, SpanId, TraceId};
use proptest::prelude::*;
use serde_json::{Value, json};
use throughline_carriers::*;
use throughline_propagation::Propagators;

fn all() -> Propagators {
    Propagators::from_otel_propagators("tracecontext,baggage,xray").unwrap()
}

fn context(
    trace: u128,
    span: u64,
    flags: u8,
    state: &str,
    baggage: &[(String, String)],
) -> Context {
    let sc = SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags),
        true,
        state.parse::<TraceState>().unwrap_or_default(),
    );
    Context::new().with_remote_span_context(sc).with_baggage(
        baggage
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    )
}

fn same(a: &Context, b: &Context) -> bool {
    let (sa, sb) = (a.span(), b.span());
    let same_baggage = a.baggage().len() == b.baggage().len()
        && a.baggage()
            .iter()
            .all(|(k, (v, _))| b.baggage().get(k.as_str()) == Some(v));
    sa.span_context() == sb.span_context() && same_baggage
}

fn record_from_attributes(attributes: &HashMap<String, MessageAttributeValue>) -> SqsMessage {
    // Go through the JSON Lambda delivers, camelCase and all.
    let message_attributes: serde_json::Map<String, Value> = attributes
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({"stringValue": v.string_value(), "dataType": v.data_type()}),
            )
        })
        .collect();
    serde_json::from_value(json!({
        "messageId": "m1",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": message_attributes,
        "eventSource": "aws:sqs",
    }))
    .unwrap()
}

fn ctx_strategy() -> impl Strategy<Value = Context> {
    (
        1u128..,
        1u64..,
        0u8..4,
        prop_oneof![
            Just(String::new()),
            Just("vendor=opaque,other@tenant=x y".to_owned())
        ],
        proptest::collection::vec(("[a-z]{1,8}", "[ -~]{0,12}"), 0..3),
    )
        .prop_map(|(t, s, f, state, baggage)| {
            let mut seen = std::collections::HashSet::new();
            let baggage: Vec<_> = baggage
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .collect();
            context(t, s, f, &state, &baggage)
        })
}

proptest! {
    #[test]
    fn http_round_trip(cx in ctx_strategy()) {
        let mut headers = HeaderMap::new();
        all().inject_context(&cx, &mut HeaderInjector(&mut headers));
        let back = all().extract_with_context(&Context::new(), &HeaderExtractor(&headers));
        prop_assert!(same(&cx, &back));
    }

    #[test]
    fn sqs_send_then_lambda_record_round_trip(cx in ctx_strategy()) {
        let mut attributes = HashMap::new();
        inject_sqs_message_attributes(&all(), &cx, &mut attributes).unwrap();
        for value in attributes.values() {
            prop_assert_eq!(value.data_type(), "String");
            prop_assert!(!value.string_value().unwrap_or_default().is_empty());
        }
        let back = all().extract_with_context(&Context::new(), &SqsMessageAttributesExtractor(&attributes));
        prop_assert!(same(&cx, &back));
        let record = record_from_attributes(&attributes);
        let back = all().extract_with_context(&Context::new(), &LambdaSqsRecordExtractor(&record));
        prop_assert!(same(&cx, &back));
    }

    #[test]
    fn eventbridge_round_trip(cx in ctx_strategy()) {
        let field = EventBridgeTraceField::default();
        let detail = field.inject_detail_json(&all(), &cx, r#"{"order_id":7}"#).unwrap();
        let event: EventBridgeEvent<Value> = serde_json::from_value(json!({
            "version": "0", "id": "e1", "detail-type": "OrderPlaced", "source": "shop",
            "account": "000000000000", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": [], "detail": serde_json::from_str::<Value>(&detail).unwrap(),
        })).unwrap();
        prop_assert_eq!(event.detail["order_id"].as_i64(), Some(7));
        let _guard = Context::new().attach();
        let back = field.extract_event(&all(), &event);
        prop_assert!(same(&cx, &back));
    }
}

#[test]
fn http_duplicated_traceparent_is_rejected_and_names_are_case_insensitive() {
    let mut headers = HeaderMap::new();
    headers.append(
        "TraceParent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    let cx = all().extract_with_context(&Context::new(), &HeaderExtractor(&headers));
    assert_eq!(
        (
            cx.span().span_context().trace_id(),
            cx.span().span_context().span_id()
        ),
        (
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        )
    );
    headers.append(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    let cx = all().extract_with_context(&Context::new(), &HeaderExtractor(&headers));
    assert!(!cx.span().span_context().is_valid());
}

fn caller_attributes(n: usize) -> HashMap<String, MessageAttributeValue> {
    (0..n)
        .map(|i| {
            let v = MessageAttributeValue::builder()
                .data_type("String")
                .string_value("x")
                .build()
                .unwrap();
            (format!("attr{i}"), v)
        })
        .collect()
}

#[test]
fn sqs_limit_of_10_is_a_typed_error_and_changes_nothing() {
    let cx = context(7, 9, 1, "a=b", &[("k".into(), "v".into())]);
    let tc = Propagators::default();
    // traceparent, tracestate and baggage: 3 attributes.
    let mut attributes = caller_attributes(7);
    inject_sqs_message_attributes(&tc, &cx, &mut attributes).unwrap();
    assert_eq!(attributes.len(), 10);

    let mut attributes = caller_attributes(8);
    let err = inject_sqs_message_attributes(&tc, &cx, &mut attributes).unwrap_err();
    assert_eq!((err.caller, err.added), (8, 3));
    assert_eq!(attributes.len(), 8, "nothing is dropped or added");
    assert!(
        err.to_string()
            .starts_with("sqs message attributes: 8 of the caller's plus 3")
    );

    // A caller's own traceparent is replaced, not counted twice.
    let mut attributes = caller_attributes(7);
    attributes.insert(
        "traceparent".into(),
        caller_attributes(1).remove("attr0").unwrap(),
    );
    inject_sqs_message_attributes(&tc, &cx, &mut attributes).unwrap();
    assert_eq!(attributes.len(), 10);
    assert!(
        attributes["traceparent"]
            .string_value()
            .unwrap()
            .starts_with("00-")
    );
}

#[test]
fn sqs_never_writes_an_empty_value() {
    let cx = context(7, 9, 1, "", &[]);
    let mut attributes = HashMap::new();
    inject_sqs_message_attributes(&Propagators::default(), &cx, &mut attributes).unwrap();
    assert_eq!(attributes.keys().collect::<Vec<_>>(), ["traceparent"]);
    let mut attributes = HashMap::new();
    inject_sqs_message_attributes(&Propagators::default(), &Context::new(), &mut attributes)
        .unwrap();
    assert!(attributes.is_empty());
}

#[test]
fn aws_trace_header_attribute_is_the_xray_form() {
    let cx = context(
        0x5759e988bd862e3fe1be46a994272793,
        0x53995c3f42cd8ad8,
        1,
        "",
        &[],
    );
    let attribute = aws_trace_header_attribute(&cx).unwrap();
    assert_eq!(attribute.data_type(), "String");
    assert_eq!(
        attribute.string_value(),
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    );
    assert!(aws_trace_header_attribute(&Context::new()).is_none());
}

#[test]
fn lambda_record_falls_back_to_aws_trace_header() {
    let mut record: SqsMessage = serde_json::from_value(json!({
        "messageId": "m1",
        "attributes": {"AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
        "messageAttributes": {},
    }))
    .unwrap();
    let cx = extract_lambda_sqs_record(&Propagators::default(), &record);
    assert_eq!(
        cx.span().span_context().trace_id(),
        TraceId::from(0x5759e988bd862e3fe1be46a994272793)
    );
    assert!(cx.span().span_context().is_remote());

    // A traceparent in the message attributes wins over AWSTraceHeader.
    record.message_attributes.insert("traceparent".into(), {
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value =
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        attribute.data_type = Some("String".into());
        attribute
    });
    let cx = extract_lambda_sqs_record(&Propagators::default(), &record);
    assert_eq!(
        cx.span().span_context().trace_id(),
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736)
    );
}

#[test]
fn lambda_record_attribute_names_fall_back_to_case_insensitive() {
    let record: SqsMessage = serde_json::from_value(json!({
        "messageAttributes": {"Traceparent": {"stringValue": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "dataType": "String"}},
    }))
    .unwrap();
    let cx = extract_lambda_sqs_record(&Propagators::default(), &record);
    assert_eq!(
        (
            cx.span().span_context().trace_id(),
            cx.span().span_context().span_id()
        ),
        (
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        )
    );
}

#[test]
fn eventbridge_detail_rules() {
    let cx = context(7, 9, 1, "", &[]);
    let field = EventBridgeTraceField::new("trace_ctx");
    let mut detail = json!({"a": 1});
    field
        .inject(&Propagators::default(), &cx, &mut detail)
        .unwrap();
    assert_eq!(
        detail["trace_ctx"]["traceparent"],
        "00-00000000000000000000000000000007-0000000000000009-01"
    );
    let err = field
        .inject(&Propagators::default(), &cx, &mut json!([1]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "eventbridge detail is an array, not a JSON object"
    );
    let err = field
        .inject(
            &Propagators::default(),
            &cx,
            &mut json!({"trace_ctx": "mine"}),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "eventbridge detail field \"trace_ctx\" is already used by a string, not a trace object"
    );
    assert!(matches!(
        field.inject_detail_json(&Propagators::default(), &cx, "{not json"),
        Err(EventBridgeDetailError::Json(_))
    ));
    let _guard = Context::new().attach();
    assert!(
        !field
            .extract(&Propagators::default(), &json!({"trace_ctx": 5}))
            .span()
            .span_context()
            .is_valid()
    );
}
