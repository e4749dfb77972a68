//! The worker under the frozen Lambda host, without and with its flush: the host freezes the
//! environment (SIGSTOP) between invocations, so spans still queued in the SDK's batch processor
//! never leave; the flush before each invocation returns is what gets them out.

mod onboarding_common;

use std::time::{Duration, Instant};

use onboarding_common::{System, customer_status, onboard, spans, trace};
use serde_json::json;

const RECORDS: usize = 20;

/// Sends `RECORDS` customers, waits until the worker completed them all, then counts how many of
/// their traces hold the worker's CONSUMER span after `observe`.
async fn consumer_spans_seen(system: &System, observe: Duration) -> usize {
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    for n in 0..RECORDS {
        let body = json!({"customer_id": format!("F-{n}"), "email": format!("f{n}@example.com"), "name": "Flush Co", "type": "standard"});
        let (status, answer) = onboard(&client, system.api, &body).await;
        assert_eq!(status, 200, "{answer}");
        accepted.push((
            answer["customer_id"].as_str().unwrap_or("").to_owned(),
            answer["trace_id"].as_str().unwrap_or("").to_owned(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (customer, _) in &accepted {
        while customer_status(&client, system.api, customer)
            .await
            .as_deref()
            != Some("completed")
        {
            assert!(
                Instant::now() < deadline,
                "the worker did not complete {customer}; logs:\n{}",
                system.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Every record is processed; give the spans time to arrive (or not).
    let deadline = Instant::now() + observe;
    loop {
        let mut seen = 0;
        let mut api_seen = 0;
        for (_, trace_id) in &accepted {
            if let Some(t) = trace(&client, system.query, trace_id).await {
                let s = spans(&t);
                seen += usize::from(
                    s.iter()
                        .any(|s| s.service == "onboarding-lambda" && s.kind == "consumer"),
                );
                api_seen += usize::from(
                    s.iter()
                        .any(|s| s.service == "onboarding-api" && s.kind == "producer"),
                );
            }
        }
        if Instant::now() >= deadline || (seen == RECORDS && api_seen == RECORDS) {
            assert_eq!(api_seen, RECORDS, "the API's spans arrive either way");
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flush_a_frozen_worker_loses_its_spans_and_with_it_none_are_lost() {
    // Without the flush: the SDK's batch processor would export after its 5 s schedule delay,
    // but the environment is frozen by then, so nothing arrives while we watch (7 s).
    let without = System::up(&[], &[("ONBOARDING_FLUSH", "off")]);
    let lost_case = consumer_spans_seen(&without, Duration::from_secs(7)).await;
    drop(without);
    assert_eq!(
        lost_case, 0,
        "without the flush, spans of a frozen worker never leave it"
    );

    // With the flush (the default): every record's CONSUMER span arrives.
    let with = System::up(&[], &[]);
    let flushed = consumer_spans_seen(&with, Duration::from_secs(15)).await;
    assert_eq!(flushed, RECORDS, "with the flush, no span is lost");
}
