//! A broker configured with its own account id answers with it everywhere, through
//! `aws-sdk-sqs` and `aws-sdk-eventbridge`: queue URLs, `QueueArn`, `SenderId`, rule ARNs and the
//! event envelope; a redrive policy or an EventBridge target reaches a queue only by an ARN of
//! that account, so the default account's ARNs no longer name its queues.

mod common;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{code, events, sqs, start_in};
use throughline_broker::{Broker, BrokerConfig, BrokerError};

const ACCOUNT: &str = "123456789012";

fn redrive(arn: &str) -> String {
    serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": 2 }).to_string()
}

#[tokio::test]
async fn the_configured_account_is_in_every_url_and_arn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = BrokerConfig::new(dir.path());
    config.account_id = ACCOUNT.to_owned();
    let handle = start_in(config).await;
    let endpoint = handle.endpoint_url();
    let (sq, eb) = (sqs(&endpoint), events(&endpoint));

    let dlq_url = sq
        .create_queue()
        .queue_name("orders-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert!(
        dlq_url.ends_with(&format!("/{ACCOUNT}/orders-dlq")),
        "{dlq_url}"
    );
    let attributes = sq
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let dlq_arn = attributes.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    assert_eq!(
        dlq_arn,
        format!("arn:aws:sqs:us-east-1:{ACCOUNT}:orders-dlq")
    );

    // The default account's ARN names no queue of this broker.
    let other = sq
        .create_queue()
        .queue_name("orders")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            redrive("arn:aws:sqs:us-east-1:000000000000:orders-dlq"),
        )
        .send()
        .await;
    assert_eq!(code(other), "InvalidAttributeValue");
    let orders_url = sq
        .create_queue()
        .queue_name("orders")
        .attributes(QueueAttributeName::RedrivePolicy, redrive(&dlq_arn))
        .send()
        .await
        .expect("a redrive policy naming this account's queue is taken")
        .queue_url
        .unwrap();
    let policy = sq
        .get_queue_attributes()
        .queue_url(&orders_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap();
    assert!(
        policy.attributes().unwrap()[&QueueAttributeName::RedrivePolicy].contains(&dlq_arn),
        "{policy:?}"
    );
    let other = sq
        .set_queue_attributes()
        .queue_url(&orders_url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            redrive("arn:aws:sqs:eu-west-1:123456789012:orders-dlq"),
        )
        .send()
        .await;
    assert_eq!(code(other), "InvalidAttributeValue", "another region");
    // A queue URL of another account is not this broker's queue.
    let foreign_url = orders_url.replace(ACCOUNT, "000000000000");
    assert_eq!(
        code(
            sq.send_message()
                .queue_url(&foreign_url)
                .message_body("x")
                .send()
                .await
        ),
        "AWS.SimpleQueueService.NonExistentQueue"
    );

    // EventBridge: the rule's ARN and the envelope carry the account; a target of another
    // account is refused, one of this account delivers.
    let rule = eb
        .put_rule()
        .name("paid")
        .event_pattern(r#"{"source":["shop.orders"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        rule.rule_arn(),
        Some(format!("arn:aws:events:us-east-1:{ACCOUNT}:rule/paid").as_str())
    );
    let target = |id: &str, arn: &str| Target::builder().id(id).arn(arn).build().unwrap();
    let refused = eb
        .put_targets()
        .rule("paid")
        .targets(target(
            "default-account",
            "arn:aws:sqs:us-east-1:000000000000:orders",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.failed_entry_count(), 1);
    let failed = &refused.failed_entries()[0];
    assert!(
        failed.error_message().unwrap_or_default().contains(ACCOUNT),
        "{failed:?}"
    );
    let taken = eb
        .put_targets()
        .rule("paid")
        .targets(target(
            "orders",
            &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:orders"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.failed_entry_count(), 0);
    let put = eb
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .source("shop.orders")
                .detail_type("OrderPaid")
                .detail("{}")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count(), 0);
    let received = sq
        .receive_message()
        .queue_url(&orders_url)
        .message_system_attribute_names(MessageSystemAttributeName::SenderId)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let message = &received.messages()[0];
    let envelope: serde_json::Value =
        serde_json::from_str(message.body().unwrap()).expect("the event as JSON");
    assert_eq!(envelope["account"], ACCOUNT);
    assert_eq!(
        message.attributes().unwrap()[&MessageSystemAttributeName::SenderId],
        ACCOUNT
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn an_account_id_that_is_not_12_digits_stops_the_broker_opening() {
    let dir = tempfile::tempdir().expect("temp dir");
    for bad in ["12345", "abcdefghijkl", "1234567890123", ""] {
        let mut config = BrokerConfig::new(dir.path());
        config.account_id = bad.to_owned();
        let err = Broker::open(config).await.expect_err(bad);
        assert!(matches!(err, BrokerError::AccountId(_)), "{bad}: {err}");
        let cause = std::error::Error::source(&err)
            .expect("a cause")
            .to_string();
        assert_eq!(cause, format!("account id {bad:?} is not 12 digits"));
    }
}
