//! Drives the EventBridge operations through `aws-sdk-eventbridge`, delivering to queues read
//! back with `aws-sdk-sqs`.

mod common;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, RuleState, Target};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use common::{events, sqs, start};
use serde_json::{Value, json};

fn event(detail_type: &str, detail: Value) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .source("shop.orders")
        .detail_type(detail_type)
        .detail(detail.to_string())
        .resources("arn:aws:shop:order/1")
        .build()
}

#[tokio::test]
async fn rules_route_matching_events_to_queues() {
    let broker = start().await;
    let endpoint = broker.handle.endpoint_url();
    let (eb, sq) = (events(&endpoint), sqs(&endpoint));
    let paid = sq
        .create_queue()
        .queue_name("paid")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let big = sq
        .create_queue()
        .queue_name("big")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let rule = eb
        .put_rule()
        .name("order-paid")
        .event_pattern(json!({"source": [{"prefix": "shop."}], "detail": {"status": ["PAID"], "_trace": {"traceparent": [{"exists": true}]}}}).to_string())
        .state(RuleState::Enabled)
        .description("paid orders")
        .send()
        .await
        .unwrap();
    assert_eq!(
        rule.rule_arn(),
        Some("arn:aws:events:us-east-1:000000000000:rule/order-paid")
    );
    eb.put_rule()
        .name("big-orders")
        .event_pattern(json!({"detail": {"total": [{"numeric": [">=", 100]}], "status": [{"anything-but": "CANCELLED"}]}}).to_string())
        .send()
        .await
        .unwrap();
    for (rule, id, queue) in [
        ("order-paid", "paid-q", "paid"),
        ("big-orders", "big-q", "big"),
    ] {
        let out = eb
            .put_targets()
            .rule(rule)
            .targets(
                Target::builder()
                    .id(id)
                    .arn(format!("arn:aws:sqs:us-east-1:000000000000:{queue}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_entry_count(), 0);
    }
    let bad_target = eb
        .put_targets()
        .rule("order-paid")
        .targets(
            Target::builder()
                .id("lambda")
                .arn("arn:aws:lambda:us-east-1:000000000000:function:f")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad_target.failed_entry_count(), 1);

    let listed = eb.list_rules().send().await.unwrap();
    let names: Vec<_> = listed.rules().iter().filter_map(|r| r.name()).collect();
    assert_eq!(names, ["big-orders", "order-paid"]);
    let listed = eb.list_rules().name_prefix("order").send().await.unwrap();
    assert_eq!(listed.rules()[0].description(), Some("paid orders"));
    let targets = eb
        .list_targets_by_rule()
        .rule("order-paid")
        .send()
        .await
        .unwrap();
    assert_eq!(targets.targets().len(), 1);

    let trace = json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
    let put = eb
        .put_events()
        .entries(event(
            "OrderPaid",
            json!({"status": "PAID", "total": 150, "_trace": trace}),
        ))
        .entries(event("OrderPaid", json!({"status": "PAID", "total": 5})))
        .entries(
            PutEventsRequestEntry::builder()
                .source("shop.orders")
                .detail_type("OrderPaid")
                .detail(json!({"status": "PAID", "total": 1, "_trace": trace}).to_string())
                .trace_header("Root=1-5759e988-bd862e3fe1be46a994272793")
                .build(),
        )
        .entries(
            PutEventsRequestEntry::builder()
                .source("shop.orders")
                .detail_type("Broken")
                .detail("not json")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count(), 1);
    assert_eq!(put.entries()[3].error_code(), Some("MalformedDetail"));
    let first_id = put.entries()[0].event_id().unwrap().to_owned();

    // "paid" gets the two events with a trace; "big" gets only the one over 100.
    let got = sq
        .receive_message()
        .queue_url(&paid)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 2);
    let envelope: Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert_eq!(envelope["id"], first_id.as_str());
    assert_eq!(envelope["version"], "0");
    assert_eq!(envelope["detail-type"], "OrderPaid");
    assert_eq!(envelope["source"], "shop.orders");
    assert_eq!(envelope["account"], "000000000000");
    assert_eq!(envelope["region"], "us-east-1");
    assert_eq!(envelope["resources"], json!(["arn:aws:shop:order/1"]));
    assert_eq!(envelope["detail"]["_trace"], trace);
    assert!(
        envelope["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 20),
        "{envelope}"
    );
    let traced = got.messages()[1].attributes().unwrap();
    assert_eq!(
        traced[&MessageSystemAttributeName::AwsTraceHeader],
        "Root=1-5759e988-bd862e3fe1be46a994272793"
    );
    let got = sq
        .receive_message()
        .queue_url(&big)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 1);

    // A disabled rule delivers nothing; removing targets and deleting the rule works.
    let err = eb
        .delete_rule()
        .name("big-orders")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.as_service_error()
            .and_then(aws_sdk_eventbridge::error::ProvideErrorMetadata::code),
        Some("ValidationException")
    );
    eb.remove_targets()
        .rule("big-orders")
        .ids("big-q")
        .send()
        .await
        .unwrap();
    eb.delete_rule().name("big-orders").send().await.unwrap();
    eb.put_rule()
        .name("order-paid")
        .event_pattern(json!({"source": ["shop.orders"]}).to_string())
        .state(RuleState::Disabled)
        .send()
        .await
        .unwrap();
    eb.put_events()
        .entries(event("OrderPaid", json!({"status": "PAID"})))
        .send()
        .await
        .unwrap();
    assert!(
        sq.receive_message()
            .queue_url(&paid)
            .send()
            .await
            .unwrap()
            .messages()
            .is_empty()
    );
    assert_eq!(eb.list_rules().send().await.unwrap().rules().len(), 1);
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_carry_eventbridge_codes() {
    let broker = start().await;
    let eb = events(&broker.handle.endpoint_url());
    let code =
        |e: &dyn aws_sdk_eventbridge::error::ProvideErrorMetadata| e.code().map(str::to_owned);
    let bad_pattern = eb
        .put_rule()
        .name("r")
        .event_pattern(r#"{"source": "not-an-array"}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        bad_pattern.as_service_error().and_then(|e| code(e)),
        Some("InvalidEventPatternException".to_owned())
    );
    let missing = eb
        .put_targets()
        .rule("nope")
        .targets(
            Target::builder()
                .id("t")
                .arn("arn:aws:sqs:us-east-1:000000000000:q")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    let too_many = eb
        .put_events()
        .set_entries(Some((0..11).map(|_| event("X", json!({}))).collect()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        too_many.as_service_error().and_then(|e| code(e)),
        Some("ValidationException".to_owned())
    );
    broker.handle.shutdown().await;
}

/// One `Detail` of exactly `len` bytes (a JSON object).
fn detail_of(len: usize) -> String {
    let padding = "x".repeat(len - r#"{"p":""}"#.len());
    format!(r#"{{"p":"{padding}"}}"#)
}

#[tokio::test]
async fn put_events_over_256_kb_is_refused_as_aws_counts_it() {
    let broker = start().await;
    let endpoint = broker.handle.endpoint_url();
    let (eb, sqs) = (events(&endpoint), sqs(&endpoint));
    let url = sqs.create_queue().queue_name("big").send().await.unwrap();
    let url = url.queue_url().unwrap();
    eb.put_rule()
        .name("all")
        .event_pattern(r#"{"source": ["s"]}"#)
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("all")
        .targets(
            Target::builder()
                .id("q")
                .arn("arn:aws:sqs:us-east-1:000000000000:big")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let entry = |detail: String, resource: &str| {
        PutEventsRequestEntry::builder()
            .source("s")
            .detail_type("t")
            .detail(detail)
            .resources(resource)
            .build()
    };
    // Source (1) + DetailType (1) + Resources (3) + Detail: exactly 256 KB is accepted.
    let limit = 256 * 1024;
    let at_limit = eb
        .put_events()
        .entries(entry(detail_of(limit - 5), "arn"))
        .send()
        .await
        .unwrap();
    assert_eq!(at_limit.failed_entry_count(), 0);
    // One byte more (in a resource, which AWS counts too) and the request is refused.
    let over = eb
        .put_events()
        .entries(entry(detail_of(limit - 5), "arn!"))
        .send()
        .await
        .unwrap_err();
    let over = over.as_service_error().expect("a service error");
    assert_eq!(
        aws_sdk_eventbridge::error::ProvideErrorMetadata::code(over),
        Some("ValidationException")
    );
    // The limit is on the request's entries together, as on AWS.
    let split = eb
        .put_events()
        .entries(entry(detail_of(limit / 2), "a"))
        .entries(entry(detail_of(limit / 2), "b"))
        .send()
        .await;
    assert!(split.is_err(), "two halves plus their fields exceed 256 KB");
    // Only the accepted event was delivered.
    let got = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 1);
    broker.handle.shutdown().await;
}
