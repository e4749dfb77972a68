//! Queue attributes: `GetQueueAttributes` (stored and computed ones) and `SetQueueAttributes`.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::queue_name;
use crate::error::ApiError;
use crate::queue::Queue;
use crate::state::{Shared, now_ms};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetAttributesRequest {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
}

const QUEUE_ATTRIBUTE_NAMES: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateAgeOfOldestMessage",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "Policy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "RedriveAllowPolicy",
];

pub(super) fn get_queue_attributes(
    shared: &Shared,
    req: GetAttributesRequest,
) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    for wanted in &req.attribute_names {
        if wanted != "All" && !QUEUE_ATTRIBUTE_NAMES.contains(&wanted.as_str()) {
            return Err(ApiError::invalid_attribute_name(format!(
                "Unknown Attribute {wanted}."
            )));
        }
    }
    let state = shared.lock();
    let queue = state.queue(&name)?;
    let all = queue_attributes(shared, queue, now_ms());
    let everything = req.attribute_names.iter().any(|n| n == "All");
    let attributes: BTreeMap<String, String> = all
        .into_iter()
        .filter(|(k, _)| everything || req.attribute_names.contains(k))
        .collect();
    if attributes.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": attributes }))
}

/// Every attribute `GetQueueAttributes` can return for `queue` at `now_ms`.
fn queue_attributes(shared: &Shared, queue: &Queue, now_ms: u64) -> BTreeMap<String, String> {
    let depth = queue.depth(now_ms);
    let s = &queue.settings;
    let mut out: BTreeMap<String, String> = queue.attributes.clone();
    for (k, v) in [
        ("ApproximateNumberOfMessages", depth.visible.to_string()),
        (
            "ApproximateNumberOfMessagesNotVisible",
            depth.in_flight.to_string(),
        ),
        (
            "ApproximateNumberOfMessagesDelayed",
            depth.delayed.to_string(),
        ),
        (
            "ApproximateAgeOfOldestMessage",
            depth.oldest_age_secs.to_string(),
        ),
        ("CreatedTimestamp", queue.created_secs.to_string()),
        ("LastModifiedTimestamp", queue.modified_secs.to_string()),
        ("QueueArn", shared.queue_arn(&queue.name)),
        ("VisibilityTimeout", s.visibility_timeout_secs.to_string()),
        ("MaximumMessageSize", s.max_message_bytes.to_string()),
        ("MessageRetentionPeriod", s.retention_secs.to_string()),
        ("DelaySeconds", s.delay_secs.to_string()),
        (
            "ReceiveMessageWaitTimeSeconds",
            s.receive_wait_secs.to_string(),
        ),
    ] {
        out.insert(k.to_owned(), v);
    }
    out.entry("SqsManagedSseEnabled".into())
        .or_insert_with(|| "false".into());
    out
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SetAttributesRequest {
    queue_url: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

pub(super) async fn set_queue_attributes(
    shared: &Shared,
    req: SetAttributesRequest,
) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    let now = now_ms() / 1000;
    shared
        .change(|s| {
            Ok((
                (),
                vec![s.set_queue_attributes(&name, &req.attributes, now)?],
            ))
        })
        .await?;
    Ok(json!({}))
}
