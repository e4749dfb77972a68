//! The API's SQS sender against the real broker: concurrent sends leave in batches, and every
//! message arrives once with its own body and attributes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use onboarding_api::queue::{MessageQueue, OutgoingMessage, SqsQueue, sqs_client};
use throughline_broker::{Broker, BrokerConfig};
use throughline_instrument::SendOperation;

const MESSAGES: usize = 50;

/// A counter from the broker's `/metrics` page.
async fn broker_counter(endpoint: &str, metric: &str) -> u64 {
    let page = reqwest::get(format!("{endpoint}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    page.lines()
        .find_map(|line| line.strip_prefix(metric)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metric} is not on the broker's metrics page:\n{page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_leave_in_batches_and_each_message_arrives_once_with_its_attributes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::open(BrokerConfig::new(dir.path()))
        .await
        .expect("broker opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let handle = broker.serve(listener).expect("broker serves");
    let endpoint = handle.endpoint_url();
    let client = sqs_client(Some(&endpoint), "us-east-1").await;
    client
        .create_queue()
        .queue_name("onboarding-queue")
        .send()
        .await
        .expect("queue created");
    let queue = SqsQueue::resolve(
        client.clone(),
        "onboarding-queue",
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    .expect("queue resolves");
    let requests_before = broker_counter(
        &endpoint,
        "throughline_broker_storage_requests_committed_total",
    )
    .await;

    let mut sends = tokio::task::JoinSet::new();
    for n in 0..MESSAGES {
        let queue = queue.clone();
        sends.spawn(async move {
            let message = OutgoingMessage {
                body: format!("{{\"customer_id\":\"C-{n}\"}}"),
                attributes: HashMap::from([(
                    "traceparent".to_owned(),
                    format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{n:016x}-01"),
                )]),
            };
            queue.send_message(message).await
        });
    }
    let mut ids = HashSet::new();
    let mut batched = 0;
    while let Some(sent) = sends.join_next().await {
        let receipt = sent.expect("send task").expect("message sent");
        // Each message names the call that carried it, for its PRODUCER span (issue 19.12).
        match receipt.operation {
            SendOperation::SendMessage => {}
            SendOperation::SendMessageBatch { message_count } => {
                assert!((2..=10).contains(&message_count), "{receipt:?}");
                batched += 1;
            }
            SendOperation::PutEvents { .. } => panic!("an SQS send said PutEvents"),
        }
        assert!(ids.insert(receipt.message_id), "message ids are distinct");
    }
    assert!(batched > 0, "no message said it left in a SendMessageBatch");
    assert_eq!(ids.len(), MESSAGES);
    let requests = broker_counter(
        &endpoint,
        "throughline_broker_storage_requests_committed_total",
    )
    .await
        - requests_before;
    assert!(
        requests < MESSAGES as u64,
        "{MESSAGES} concurrent sends took {requests} calls: they were not batched"
    );

    // Every message arrives once, its attribute the one sent with its body.
    let mut seen = HashSet::new();
    while seen.len() < MESSAGES {
        let out = client
            .receive_message()
            .queue_url(queue.url())
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        assert!(
            !messages.is_empty(),
            "only {} of {MESSAGES} arrived",
            seen.len()
        );
        for m in messages {
            let body = m.body.unwrap_or_default();
            let n: usize = body
                .trim_start_matches("{\"customer_id\":\"C-")
                .trim_end_matches("\"}")
                .parse()
                .expect("a body this test sent");
            let traceparent = m
                .message_attributes
                .as_ref()
                .and_then(|a| a.get("traceparent"))
                .and_then(|v| v.string_value.clone());
            assert_eq!(
                traceparent,
                Some(format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{n:016x}-01")),
                "attributes of {body}"
            );
            assert!(seen.insert(n), "message {n} arrived twice");
        }
    }
}
