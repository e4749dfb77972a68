//! Drives every SQS operation through `aws-sdk-sqs` against an in-process broker on loopback.

mod common;

use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry,
};
use common::{code, sqs, start};
use md5::{Digest, Md5};
use std::collections::BTreeMap;

/// AWS's documented attribute digest, written out independently of the broker's.
fn expected_md5(attributes: &BTreeMap<&str, (&str, &[u8], u8)>) -> String {
    let mut bytes = Vec::new();
    for (name, (kind, value, transport)) in attributes {
        for part in [name.as_bytes(), kind.as_bytes()] {
            bytes.extend((part.len() as u32).to_be_bytes());
            bytes.extend(part);
        }
        bytes.push(*transport);
        bytes.extend((value.len() as u32).to_be_bytes());
        bytes.extend(*value);
    }
    hex::encode(Md5::digest(&bytes))
}

fn string_attr(kind: &str, value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type(kind)
        .string_value(value)
        .build()
        .expect("attribute")
}

async fn create(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attrs: &[(QueueAttributeName, &str)],
) -> String {
    let mut req = client.create_queue().queue_name(name);
    for (k, v) in attrs {
        req = req.attributes(k.clone(), *v);
    }
    req.send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

#[tokio::test]
async fn queue_lifecycle_and_attributes() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let url = create(
        &client,
        "orders",
        &[(QueueAttributeName::VisibilityTimeout, "7")],
    )
    .await;
    assert_eq!(
        url,
        format!("{}/000000000000/orders", broker.handle.endpoint_url())
    );
    // Creating again with the same attributes answers the same URL; different ones are refused.
    assert_eq!(
        create(
            &client,
            "orders",
            &[(QueueAttributeName::VisibilityTimeout, "7")]
        )
        .await,
        url
    );
    let clash = client
        .create_queue()
        .queue_name("orders")
        .attributes(QueueAttributeName::VisibilityTimeout, "9")
        .send()
        .await;
    assert_eq!(code(clash), "QueueAlreadyExists");
    create(&client, "payments", &[]).await;

    let got = client
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(got.queue_url(), Some(url.as_str()));
    let listed = client
        .list_queues()
        .queue_name_prefix("or")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.queue_urls(), std::slice::from_ref(&url));
    let all = client.list_queues().send().await.unwrap();
    assert_eq!(all.queue_urls().len(), 2);

    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DelaySeconds, "2")
        .send()
        .await
        .unwrap();
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "7");
    assert_eq!(attrs[&QueueAttributeName::DelaySeconds], "2");
    assert_eq!(
        attrs[&QueueAttributeName::QueueArn],
        "arn:aws:sqs:us-east-1:000000000000:orders"
    );
    assert_eq!(attrs[&QueueAttributeName::ApproximateNumberOfMessages], "0");
    let bad = client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, "99999")
        .send()
        .await;
    assert_eq!(code(bad), "InvalidAttributeValue");

    client.delete_queue().queue_url(&url).send().await.unwrap();
    let gone = client.get_queue_url().queue_name("orders").send().await;
    assert!(
        gone.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_queue_does_not_exist())
    );
    let send = client
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .send()
        .await;
    assert_eq!(code(send), "AWS.SimpleQueueService.NonExistentQueue");
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn send_receive_delete_with_digests_and_system_attributes() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let url = create(&client, "work", &[]).await;
    let sent = client
        .send_message()
        .queue_url(&url)
        .message_body("héllo wörld")
        .message_attributes(
            "traceparent",
            string_attr(
                "String",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        )
        .message_attributes("count", string_attr("Number", "42"))
        .message_attributes(
            "blob",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![0u8, 1, 2, 255]))
                .build()
                .unwrap(),
        )
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value("Root=1-5759e988-bd862e3fe1be46a994272793")
                .build()
                .unwrap(),
        )
        .message_group_id("g1")
        .send()
        .await
        .unwrap();
    let expected_attrs = expected_md5(&BTreeMap::from([
        ("blob", ("Binary", &[0u8, 1, 2, 255][..], 2u8)),
        ("count", ("Number", &b"42"[..], 1u8)),
        (
            "traceparent",
            (
                "String",
                &b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"[..],
                1u8,
            ),
        ),
    ]));
    assert_eq!(
        sent.md5_of_message_body(),
        Some(hex::encode(Md5::digest("héllo wörld".as_bytes())).as_str())
    );
    assert_eq!(
        sent.md5_of_message_attributes(),
        Some(expected_attrs.as_str())
    );
    assert!(sent.md5_of_message_system_attributes().is_some());

    let received = client
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let [m] = received.messages() else {
        panic!("one message expected: {received:?}")
    };
    assert_eq!(m.message_id(), sent.message_id());
    assert_eq!(m.body(), Some("héllo wörld"));
    assert_eq!(m.md5_of_body(), sent.md5_of_message_body());
    assert_eq!(m.md5_of_message_attributes(), Some(expected_attrs.as_str()));
    let attributes = m.message_attributes().unwrap();
    assert_eq!(
        attributes["blob"]
            .binary_value()
            .map(|b| b.as_ref().to_vec()),
        Some(vec![0, 1, 2, 255])
    );
    assert_eq!(attributes["count"].string_value(), Some("42"));
    let system = m.attributes().unwrap();
    assert_eq!(
        system[&MessageSystemAttributeName::ApproximateReceiveCount],
        "1"
    );
    assert_eq!(
        system[&MessageSystemAttributeName::AwsTraceHeader],
        "Root=1-5759e988-bd862e3fe1be46a994272793"
    );
    assert_eq!(system[&MessageSystemAttributeName::MessageGroupId], "g1");
    assert!(system.contains_key(&MessageSystemAttributeName::SentTimestamp));
    assert!(system.contains_key(&MessageSystemAttributeName::ApproximateFirstReceiveTimestamp));

    // Only the selected attributes come back, with the digest of those.
    client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(m.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let again = client
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("count")
        .send()
        .await
        .unwrap();
    let [m2] = again.messages() else {
        panic!("one message expected")
    };
    assert_eq!(m2.message_attributes().map(|a| a.len()), Some(1));
    assert_eq!(
        m2.md5_of_message_attributes(),
        Some(expected_md5(&BTreeMap::from([("count", ("Number", &b"42"[..], 1u8))])).as_str())
    );
    assert!(m2.attributes().is_none());

    // The first receipt handle is stale now: deleting with it leaves the message in place.
    client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(m.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible],
        "1"
    );
    client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(m2.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    assert_eq!(attrs[&QueueAttributeName::ApproximateNumberOfMessages], "0");
    assert_eq!(
        attrs[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible],
        "0"
    );
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn visibility_timeout_hides_then_returns_the_message() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let url = create(
        &client,
        "vis",
        &[(QueueAttributeName::VisibilityTimeout, "1")],
    )
    .await;
    client
        .send_message()
        .queue_url(&url)
        .message_body("m")
        .send()
        .await
        .unwrap();
    let first = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(first.messages().len(), 1);
    let hidden = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert!(
        hidden.messages().is_empty(),
        "a message must stay hidden during its visibility timeout"
    );
    // A long poll is woken when the visibility timeout ends.
    let back = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(5)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let [m] = back.messages() else {
        panic!("the message comes back after its visibility timeout")
    };
    assert_eq!(
        m.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    // ChangeMessageVisibility on a visible message: not in flight.
    client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(m.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let not_inflight = client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(m.receipt_handle().unwrap())
        .visibility_timeout(5)
        .send()
        .await;
    assert_eq!(
        code(not_inflight),
        "AWS.SimpleQueueService.MessageNotInflight"
    );
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn redrive_moves_a_message_after_max_receive_count() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let dlq = create(&client, "work-dlq", &[]).await;
    let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:work-dlq","maxReceiveCount":"2"}"#;
    let url = create(
        &client,
        "work",
        &[
            (QueueAttributeName::RedrivePolicy, policy),
            (QueueAttributeName::VisibilityTimeout, "0"),
        ],
    )
    .await;
    let sent = client
        .send_message()
        .queue_url(&url)
        .message_body("poison")
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let r = client
            .receive_message()
            .queue_url(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.messages().len(), 1);
    }
    let third = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert!(
        third.messages().is_empty(),
        "the third receive moves the message instead"
    );
    let dead = client
        .receive_message()
        .queue_url(&dlq)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let [m] = dead.messages() else {
        panic!("the message is in the dead-letter queue")
    };
    assert_eq!(m.message_id(), sent.message_id());
    assert_eq!(m.body(), Some("poison"));

    let bad_policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:missing","maxReceiveCount":"2"}"#;
    let bad = client
        .create_queue()
        .queue_name("other")
        .attributes(QueueAttributeName::RedrivePolicy, bad_policy)
        .send()
        .await;
    assert_eq!(code(bad), "InvalidAttributeValue");
    broker.handle.shutdown().await;
}

/// The broker's count of receives long polling `queue`, read from `/metrics`.
async fn receives_waiting(endpoint: &str, queue: &str) -> u64 {
    let text = reqwest::get(format!("{endpoint}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let line = format!("throughline_broker_receives_waiting{{queue=\"{queue}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in /metrics:\n{text}"))
}

/// Proved by ordering, not by time: the 20 s poll is seen waiting before the message is sent,
/// and its answer (with that message) arrives before the answer of a 1 s poll of another queue
/// that started only after the send, which a poll woken only by its own deadline could not do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_answers_when_a_message_arrives() {
    let broker = start().await;
    let endpoint = broker.handle.endpoint_url();
    let client = sqs(&endpoint);
    let url = create(&client, "poll", &[]).await;
    let other = create(&client, "idle", &[]).await;
    let poll = |url: String, wait: i32| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .receive_message()
                .queue_url(&url)
                .wait_time_seconds(wait)
                .send()
                .await
        })
    };
    let mut long = poll(url.clone(), 20);
    while receives_waiting(&endpoint, "poll").await == 0 {
        tokio::task::yield_now().await;
    }
    client
        .send_message()
        .queue_url(&url)
        .message_body("wake")
        .send()
        .await
        .unwrap();
    let mut short = poll(other, 1);
    let first = tokio::select! {
        biased;
        got = &mut long => ("long", got.unwrap().unwrap()),
        got = &mut short => ("short", got.unwrap().unwrap()),
    };
    assert_eq!(
        first.0, "long",
        "the 20 s poll was not woken by the message"
    );
    assert_eq!(
        first.1.messages().first().and_then(|m| m.body()),
        Some("wake")
    );
    assert!(short.await.unwrap().unwrap().messages().is_empty());
    assert_eq!(receives_waiting(&endpoint, "poll").await, 0);
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn delay_seconds_holds_a_message_back() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let url = create(&client, "delayed", &[]).await;
    client
        .send_message()
        .queue_url(&url)
        .message_body("later")
        .delay_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(
        client
            .receive_message()
            .queue_url(&url)
            .send()
            .await
            .unwrap()
            .messages()
            .is_empty()
    );
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesDelayed],
        "1"
    );
    let got = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().first().and_then(|m| m.body()), Some("later"));
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn batches_purge_and_partial_failures() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let url = create(&client, "batch", &[]).await;
    let entry = |id: &str, body: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .unwrap()
    };
    let sent = client
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("a", "1"))
        .entries(entry("b", "2"))
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("bad")
                .message_body("x")
                .delay_seconds(901)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.successful().len(), 2);
    assert_eq!(sent.failed().len(), 1);
    assert_eq!(sent.failed()[0].id(), "bad");
    assert_eq!(sent.failed()[0].code(), "InvalidParameterValue");
    assert!(sent.failed()[0].sender_fault());

    let got = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 2);
    let handles: Vec<&str> = got
        .messages()
        .iter()
        .filter_map(|m| m.receipt_handle())
        .collect();
    let changed = client
        .change_message_visibility_batch()
        .queue_url(&url)
        .entries(
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("x")
                .receipt_handle(handles[0])
                .visibility_timeout(60)
                .build()
                .unwrap(),
        )
        .entries(
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("y")
                .receipt_handle("garbage")
                .visibility_timeout(60)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(changed.successful().len(), 1);
    assert_eq!(changed.failed()[0].code(), "ReceiptHandleIsInvalid");
    let deleted = client
        .delete_message_batch()
        .queue_url(&url)
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("d1")
                .receipt_handle(handles[0])
                .build()
                .unwrap(),
        )
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("d2")
                .receipt_handle(handles[1])
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.successful().len(), 2);

    client
        .send_message()
        .queue_url(&url)
        .message_body("purge me")
        .send()
        .await
        .unwrap();
    client.purge_queue().queue_url(&url).send().await.unwrap();
    assert!(
        client
            .receive_message()
            .queue_url(&url)
            .send()
            .await
            .unwrap()
            .messages()
            .is_empty()
    );
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn validation_errors_carry_aws_codes() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let url = create(&client, "strict", &[]).await;
    let send = || client.send_message().queue_url(&url);

    assert_eq!(
        code(send().message_body("x".repeat(262_145)).send().await),
        "InvalidParameterValue"
    );
    let mut eleven = send().message_body("b");
    for i in 0..11 {
        eleven = eleven.message_attributes(format!("a{i}"), string_attr("String", "v"));
    }
    assert_eq!(code(eleven.send().await), "InvalidParameterValue");
    assert_eq!(
        code(
            send()
                .message_body("b")
                .message_attributes("e", string_attr("String", ""))
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            send()
                .message_body("b")
                .message_attributes("AWS.reserved", string_attr("String", "v"))
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            send()
                .message_body("b")
                .message_attributes("n", string_attr("Number", "nan-ish"))
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(send().message_body("bad\u{0}char").send().await),
        "InvalidMessageContents"
    );
    assert_eq!(
        code(send().message_body("b").delay_seconds(901).send().await),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(11)
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            client
                .receive_message()
                .queue_url(&url)
                .wait_time_seconds(21)
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            client
                .delete_message()
                .queue_url(&url)
                .receipt_handle("nope!")
                .send()
                .await
        ),
        "ReceiptHandleIsInvalid"
    );
    assert_eq!(
        code(client.create_queue().queue_name("bad name").send().await),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            client
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::from("Bogus"))
                .send()
                .await
        ),
        "InvalidAttributeName"
    );

    let batch = client.send_message_batch().queue_url(&url);
    let e = |id: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body("b")
            .build()
            .unwrap()
    };
    let empty = client
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(vec![]))
        .send()
        .await;
    assert!(
        empty
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_empty_batch_request())
    );
    let mut many = batch.clone();
    for i in 0..11 {
        many = many.entries(e(&format!("m{i}")));
    }
    assert!(
        many.send()
            .await
            .err()
            .and_then(|e| e.into_service_error().into())
            .is_some_and(
                |e: aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError| e
                    .is_too_many_entries_in_batch_request()
            )
    );
    assert_eq!(
        code(
            batch
                .clone()
                .entries(e("same"))
                .entries(e("same"))
                .send()
                .await
        ),
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    );
    assert_eq!(
        code(batch.clone().entries(e("has space")).send().await),
        "AWS.SimpleQueueService.InvalidBatchEntryId"
    );
    let big = |id: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body("x".repeat(200_000))
            .build()
            .unwrap()
    };
    assert_eq!(
        code(batch.entries(big("a")).entries(big("b")).send().await),
        "AWS.SimpleQueueService.BatchRequestTooLong"
    );

    // Nothing above corrupted the queue.
    send().message_body("still fine").send().await.unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.messages().first().and_then(|m| m.body()),
        Some("still fine")
    );
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn messages_and_their_visibility_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::start_in(throughline_broker::BrokerConfig::new(dir.path())).await;
    let client = sqs(&handle.endpoint_url());
    let url = create(&client, "durable", &[]).await;
    for body in ["kept", "in-flight"] {
        client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let taken = client
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(600)
        .send()
        .await
        .unwrap();
    assert_eq!(
        taken.messages().first().and_then(|m| m.body()),
        Some("kept")
    );
    handle.shutdown().await;

    let handle = common::start_in(throughline_broker::BrokerConfig::new(dir.path())).await;
    let client = sqs(&handle.endpoint_url());
    let url = client
        .get_queue_url()
        .queue_name("durable")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<_> = got.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(
        bodies,
        ["in-flight"],
        "the received message stays invisible after a restart"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn metrics_page_reports_queue_figures() {
    let broker = start().await;
    let client = sqs(&broker.handle.endpoint_url());
    let url = create(&client, "watched", &[]).await;
    for _ in 0..3 {
        client
            .send_message()
            .queue_url(&url)
            .message_body("m")
            .send()
            .await
            .unwrap();
    }
    let got = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got.messages()[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let text = reqwest::get(format!("{}/metrics", broker.handle.endpoint_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "throughline_broker_messages_visible{queue=\"watched\"} 1",
        "throughline_broker_messages_in_flight{queue=\"watched\"} 1",
        "throughline_broker_messages_sent_total{queue=\"watched\"} 3",
        "throughline_broker_messages_received_total{queue=\"watched\"} 2",
        "throughline_broker_messages_deleted_total{queue=\"watched\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    broker.handle.shutdown().await;
}

#[tokio::test]
async fn a_queue_url_of_another_account_does_not_exist() {
    let broker = start().await;
    let endpoint = broker.handle.endpoint_url();
    let client = sqs(&endpoint);
    create(&client, "mine", &[]).await;
    let foreign = format!("{endpoint}/123456789012/mine");
    assert_eq!(
        code(
            client
                .send_message()
                .queue_url(&foreign)
                .message_body("b")
                .send()
                .await
        ),
        "AWS.SimpleQueueService.NonExistentQueue"
    );
    assert_eq!(
        code(client.receive_message().queue_url(&foreign).send().await),
        "AWS.SimpleQueueService.NonExistentQueue"
    );
    // Our own account's URL still works.
    client
        .send_message()
        .queue_url(format!("{endpoint}/000000000000/mine"))
        .message_body("b")
        .send()
        .await
        .unwrap();
    broker.handle.shutdown().await;
}
