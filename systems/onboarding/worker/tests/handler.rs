//! The handler in process, with an in-memory span exporter: span shapes, cold start, failures
//! reported in `batchItemFailures`, and no email anywhere on a span.

mod common;

use common::{PRODUCER_TRACE, attr, event, record, setup};
use onboarding_lambda::Invocation;
use opentelemetry::trace::SpanKind;

#[tokio::test]
async fn spans_continue_the_producer_trace_and_report_cold_start_once() {
    let (dir, worker, exporter, _p) = setup(&[]);
    let inv = Invocation {
        request_id: "req-1".into(),
        function_name: "onboarding-lambda".into(),
        ..Default::default()
    };
    let out = worker
        .handle(
            event(vec![
                record(0, "00f067aa0ba902b7"),
                record(1, "00f067aa0ba902b8"),
            ]),
            inv.clone(),
        )
        .await;
    assert!(out.batch_item_failures.is_empty());
    let spans = exporter.get_finished_spans().unwrap();

    let server: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(server.len(), 1);
    assert_eq!(
        attr(server[0], "faas.coldstart"),
        Some(&opentelemetry::Value::Bool(true))
    );
    assert_eq!(
        attr(server[0], "faas.invocation_id")
            .map(|v| v.to_string())
            .as_deref(),
        Some("req-1")
    );

    let consumers: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Consumer && s.name == "process onboarding-queue")
        .collect();
    assert_eq!(consumers.len(), 2);
    for c in &consumers {
        assert_eq!(c.span_context.trace_id().to_string(), PRODUCER_TRACE);
        assert!(
            ["00f067aa0ba902b7", "00f067aa0ba902b8"]
                .contains(&c.parent_span_id.to_string().as_str())
        );
        assert_eq!(
            attr(c, "messaging.system")
                .map(|v| v.to_string())
                .as_deref(),
            Some("aws_sqs")
        );
    }
    let batch = spans
        .iter()
        .find(|s| s.name == "batch onboarding-queue")
        .unwrap();
    assert_eq!(batch.links.len(), 2);
    assert_eq!(
        attr(batch, "messaging.batch.message_count"),
        Some(&opentelemetry::Value::I64(2))
    );
    // Every step is a child span of a record's CONSUMER span, once per record; each
    // compliance check is a child of its record's "compliance checks".
    for c in &consumers {
        let children: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == c.span_context.span_id())
            .map(|s| s.name.as_ref())
            .collect();
        assert_eq!(
            children,
            [
                "validate and enrich customer",
                "compliance checks",
                "INSERT audit_trail",
                "store customer documents",
                "UPDATE customers",
                "send welcome notification",
                "trigger follow-up workflows",
            ],
            "children of {:?}",
            c.span_context.span_id()
        );
        for s in spans
            .iter()
            .filter(|s| s.parent_span_id == c.span_context.span_id())
        {
            assert_eq!(
                s.span_context.trace_id(),
                c.span_context.trace_id(),
                "{}",
                s.name
            );
        }
        let compliance = spans
            .iter()
            .find(|s| s.name == "compliance checks" && s.parent_span_id == c.span_context.span_id())
            .unwrap();
        let checks: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == compliance.span_context.span_id())
            .map(|s| s.name.as_ref())
            .collect();
        assert_eq!(
            checks,
            ["kyc check", "aml check", "sanctions check", "pep check"]
        );
    }
    let steps = spans
        .iter()
        .filter(|s| s.name == "INSERT audit_trail" || s.name == "UPDATE customers");
    for s in steps {
        assert_eq!(s.span_kind, SpanKind::Client, "{}", s.name);
        assert_eq!(
            attr(s, "db.system.name").map(|v| v.to_string()).as_deref(),
            Some("sqlite"),
            "{}",
            s.name
        );
    }
    // The email is in the outbox, never on a span.
    for s in &spans {
        assert!(!s.name.contains("secret.example"));
        for kv in &s.attributes {
            assert!(
                !kv.value.to_string().contains("secret.example"),
                "{} on {}",
                kv.key,
                s.name
            );
        }
    }
    // One outbox line per processed record, addressed to the customer.
    let outbox = std::fs::read_to_string(
        dir.path()
            .join("outbox")
            .join(onboarding_lambda::outbox::OUTBOX_FILE),
    )
    .unwrap();
    let mut to: Vec<String> = outbox
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["to"].to_string())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["\"person0@secret.example\"", "\"person1@secret.example\""]
    );

    exporter.reset();
    worker
        .handle(event(vec![record(2, "00f067aa0ba902b9")]), inv)
        .await;
    let spans = exporter.get_finished_spans().unwrap();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(
        attr(server, "faas.coldstart"),
        Some(&opentelemetry::Value::Bool(false))
    );
}

#[tokio::test]
async fn injected_failures_are_reported_per_record() {
    let (_dir, worker, exporter, _p) = setup(&[("ONBOARDING_FAILURES", "compliance=1")]);
    let out = worker
        .handle(
            event(vec![
                record(0, "00f067aa0ba902b7"),
                record(1, "00f067aa0ba902b8"),
            ]),
            Invocation::default(),
        )
        .await;
    let ids: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["msg-0", "msg-1"]);
    let spans = exporter.get_finished_spans().unwrap();
    let consumer = spans
        .iter()
        .find(|s| s.name == "process onboarding-queue")
        .unwrap();
    assert_eq!(
        attr(consumer, "onboarding.failed_step")
            .map(|v| v.to_string())
            .as_deref(),
        Some("compliance")
    );
    assert!(matches!(
        consumer.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.name == "store customer documents")
            .count(),
        0
    );
}

#[tokio::test]
async fn link_mode_starts_a_new_trace_linked_to_the_producer() {
    let (_dir, worker, exporter, _p) = setup(&[("ONBOARDING_CONSUMER_CONTEXT", "link")]);
    worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b7")]),
            Invocation::default(),
        )
        .await;
    let spans = exporter.get_finished_spans().unwrap();
    let consumer = spans
        .iter()
        .find(|s| s.name == "process onboarding-queue")
        .unwrap();
    assert_ne!(consumer.span_context.trace_id().to_string(), PRODUCER_TRACE);
    assert!(
        consumer
            .links
            .iter()
            .any(|l| l.span_context.trace_id().to_string() == PRODUCER_TRACE)
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_record_fails_that_record_only() {
    let (_dir, worker, _exporter, _p) = setup(&[]);
    let mut bad = record(1, "00f067aa0ba902b8");
    bad.body = Some("not json".into());
    let out = worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b7"), bad]),
            Invocation::default(),
        )
        .await;
    let ids: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["msg-1"]);
}
