//! The SQS event a mapping hands to the function (`aws_lambda_events`' shape, so it is the one
//! AWS sends), and what the function's answer means for the batch (`ReportBatchItemFailures`).

use std::collections::{BTreeSet, HashMap};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::Message;

/// Where the records came from, as each record of the event names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    /// The queue's ARN (`eventSourceARN`).
    pub queue_arn: String,
    /// The region (`awsRegion`).
    pub region: String,
}

/// Turns one received SQS message into the record Lambda puts in `Records[]`.
pub fn record_from_message(message: &Message, source: &EventSource) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.md5_of_body = message.md5_of_body().map(str::to_owned);
    record.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
    record.attributes = message
        .attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    record.message_attributes = message
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.data_type = Some(value.data_type().to_owned());
                    attribute.string_value = value.string_value().map(str::to_owned);
                    attribute.binary_value = value.binary_value().map(|blob| base64_data(blob.as_ref()));
                    attribute.string_list_values = value.string_list_values().to_vec();
                    attribute.binary_list_values = value
                        .binary_list_values()
                        .iter()
                        .map(|blob| base64_data(blob.as_ref()))
                        .collect();
                    (name.clone(), attribute)
                })
                .collect::<HashMap<_, _>>()
        })
        .unwrap_or_default();
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(source.queue_arn.clone());
    record.aws_region = Some(source.region.clone());
    record
}

fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

/// The event for a batch of received messages.
pub fn event_from_messages(messages: &[Message], source: &EventSource) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages.iter().map(|m| record_from_message(m, source)).collect();
    event
}

/// What the mapping does with a batch once the function answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Delete every record.
    DeleteAll,
    /// Delete every record but these message ids, which return to the queue.
    DeleteAllBut(BTreeSet<String>),
    /// Delete nothing: the whole batch returns after its visibility timeout.
    RetryAll(BatchFailure),
}

/// Why a whole batch is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchFailure {
    #[error("the function returned an error")]
    FunctionError,
    #[error("the invocation timed out")]
    Timeout,
    #[error("the environment failed: {0}")]
    Environment(String),
    #[error("the function's response is not a valid batch response: {0}")]
    MalformedResponse(String),
}

/// Reads a successful response under `ReportBatchItemFailures`, as Lambda does: `null`, `{}`, or
/// an empty or null `batchItemFailures` is success; each listed `itemIdentifier` returns to the
/// queue; a response that is not JSON, not an object, or names an id that is empty, missing, not
/// a string or not in the batch fails the whole batch.
pub fn outcome_of_response(body: &[u8], batch_ids: &BTreeSet<String>) -> BatchOutcome {
    let malformed = |why: String| BatchOutcome::RetryAll(BatchFailure::MalformedResponse(why));
    if body.iter().all(u8::is_ascii_whitespace) {
        return BatchOutcome::DeleteAll;
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => return malformed(format!("not JSON ({err})")),
    };
    let object = match value {
        serde_json::Value::Null => return BatchOutcome::DeleteAll,
        serde_json::Value::Object(object) => object,
        other => return malformed(format!("a JSON {} where an object belongs", json_kind(&other))),
    };
    let failures = match object.get("batchItemFailures") {
        None | Some(serde_json::Value::Null) => return BatchOutcome::DeleteAll,
        Some(serde_json::Value::Array(failures)) => failures,
        Some(other) => {
            return malformed(format!("batchItemFailures is a JSON {}", json_kind(other)));
        }
    };
    let mut failed = BTreeSet::new();
    for (index, failure) in failures.iter().enumerate() {
        match failure.get("itemIdentifier") {
            Some(serde_json::Value::String(id)) if batch_ids.contains(id) => {
                failed.insert(id.clone());
            }
            Some(serde_json::Value::String(id)) if id.is_empty() => {
                return malformed(format!("batchItemFailures[{index}].itemIdentifier is empty"));
            }
            Some(serde_json::Value::String(id)) => {
                return malformed(format!(
                    "batchItemFailures[{index}].itemIdentifier {id:?} is not a message of this batch"
                ));
            }
            _ => {
                return malformed(format!(
                    "batchItemFailures[{index}].itemIdentifier is missing or not a string"
                ));
            }
        }
    }
    if failed.is_empty() { BatchOutcome::DeleteAll } else { BatchOutcome::DeleteAllBut(failed) }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};

    fn ids() -> BTreeSet<String> {
        ["a", "b", "c"].into_iter().map(String::from).collect()
    }

    #[test]
    fn responses_read_as_lambda_reads_them() {
        let failing = |id: &str| BatchOutcome::DeleteAllBut([id.to_owned()].into());
        let cases: &[(&str, Option<BatchOutcome>)] = &[
            ("", Some(BatchOutcome::DeleteAll)),
            ("null", Some(BatchOutcome::DeleteAll)),
            ("{}", Some(BatchOutcome::DeleteAll)),
            (r#"{"batchItemFailures":null}"#, Some(BatchOutcome::DeleteAll)),
            (r#"{"batchItemFailures":[]}"#, Some(BatchOutcome::DeleteAll)),
            (r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, Some(failing("b"))),
            (
                r#"{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"b"}]}"#,
                Some(failing("b")),
            ),
            // Each of these fails the whole batch.
            ("not json", None),
            (r#""ok""#, None),
            (r#"{"batchItemFailures":{}}"#, None),
            (r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, None),
            (r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#, None),
            (r#"{"batchItemFailures":[{"itemId":"a"}]}"#, None),
            (r#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#, None),
            (r#"{"batchItemFailures":[{"itemIdentifier":7}]}"#, None),
        ];
        for (body, want) in cases {
            let got = outcome_of_response(body.as_bytes(), &ids());
            match want {
                Some(want) => assert_eq!(&got, want, "response {body}"),
                None => assert!(
                    matches!(got, BatchOutcome::RetryAll(BatchFailure::MalformedResponse(_))),
                    "response {body} gave {got:?}"
                ),
            }
        }
    }

    #[test]
    fn a_record_has_lambdas_field_names() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body("hello")
            .md5_of_body("5d41402abc4b2a76b9719d911017c592")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::AwsTraceHeader, "Root=1-5759e988-bd862e3fe1be46a994272793")
            .message_attributes(
                "tenant",
                MessageAttributeValue::builder().data_type("String").string_value("acme").build().unwrap(),
            )
            .message_attributes(
                "blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(b"hi".to_vec()))
                    .build()
                    .unwrap(),
            )
            .build();
        let source = EventSource {
            queue_arn: "arn:aws:sqs:eu-west-1:000000000000:orders".into(),
            region: "eu-west-1".into(),
        };
        let json = serde_json::to_value(event_from_messages(&[message], &source)).unwrap();
        let record = &json["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["receiptHandle"], "rh-1");
        assert_eq!(record["body"], "hello");
        assert_eq!(record["md5OfBody"], "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["attributes"]["AWSTraceHeader"], "Root=1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(record["messageAttributes"]["tenant"]["stringValue"], "acme");
        assert_eq!(record["messageAttributes"]["tenant"]["dataType"], "String");
        assert_eq!(record["messageAttributes"]["blob"]["binaryValue"], "aGk=");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], "arn:aws:sqs:eu-west-1:000000000000:orders");
        assert_eq!(record["awsRegion"], "eu-west-1");
    }
}
