//! Sending: `SendMessage`, `SendMessageBatch`, and the message EventBridge puts on a target queue.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::validate::{SendEntry, validate_entry_ids, validate_send};
use super::{failed, queue_name};
use crate::digest::{md5_of_attributes, md5_of_body};
use crate::error::ApiError;
use crate::message::{AttributeValue, Attributes, Message};
use crate::state::{Shared, State, now_ms};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendRequest {
    queue_url: Option<String>,
    #[serde(flatten)]
    entry: SendEntry,
}

/// Validates `entry` against `queue` and builds the message to store.
fn build_message(
    state: &mut State,
    queue: &str,
    entry: SendEntry,
    now: u64,
) -> Result<Message, ApiError> {
    let settings = state.queue(queue)?.settings.clone();
    let body = validate_send(&entry, &settings)?;
    let delay = entry
        .delay_seconds
        .map_or(settings.delay_secs, |d| d as u32);
    Ok(Message {
        seq: state.next_seq(),
        id: uuid::Uuid::new_v4().to_string(),
        body,
        attributes: entry.message_attributes,
        system_attributes: entry.message_system_attributes,
        group_id: entry.message_group_id,
        sent_ms: now,
        available_at_ms: now + u64::from(delay) * 1000,
        receive_count: 0,
        first_receive_ms: None,
    })
}

fn send_result(message: &Message) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(message.id));
    out.insert("MD5OfMessageBody".into(), json!(md5_of_body(&message.body)));
    if let Some(md5) = md5_of_attributes(&message.attributes) {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    if let Some(md5) = md5_of_attributes(&message.system_attributes) {
        out.insert("MD5OfMessageSystemAttributes".into(), json!(md5));
    }
    out
}

pub(super) async fn send_message(shared: &Shared, req: SendRequest) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    let now = now_ms();
    shared
        .change(|s| {
            let message = build_message(s, &name, req.entry, now)?;
            let result = send_result(&message);
            let op = s.enqueue(&name, message)?;
            Ok((Value::Object(result), vec![op]))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendBatchRequest {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<SendEntry>,
}

pub(super) async fn send_message_batch(
    shared: &Shared,
    req: SendBatchRequest,
) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    validate_entry_ids(req.entries.iter().map(|e| e.id.as_deref()))?;
    let total: usize = req
        .entries
        .iter()
        .map(|e| {
            e.message_body.as_ref().map_or(0, String::len)
                + e.message_attributes
                    .iter()
                    .map(|(k, v)| k.len() + v.size_bytes())
                    .sum::<usize>()
        })
        .sum();
    let now = now_ms();
    shared
        .change(|s| {
            let max = s.queue(&name)?.settings.max_message_bytes as usize;
            if total > max {
                return Err(ApiError::batch_too_long(total, max));
            }
            let mut successful = Vec::new();
            let mut failures = Vec::new();
            let mut ops = Vec::new();
            for entry in req.entries {
                let id = entry.id.clone().unwrap_or_default();
                match build_message(s, &name, entry, now) {
                    Ok(message) => {
                        let mut result = send_result(&message);
                        result.insert("Id".into(), json!(id));
                        successful.push(Value::Object(result));
                        ops.push(s.enqueue(&name, message)?);
                    }
                    Err(err) => failures.push(failed(&id, &err)),
                }
            }
            Ok((json!({ "Successful": successful, "Failed": failures }), ops))
        })
        .await
}

/// Used by EventBridge to put an event on a target queue, with an optional trace header.
pub fn event_message(
    state: &mut State,
    body: String,
    trace_header: Option<String>,
    now: u64,
) -> Message {
    let mut system_attributes = Attributes::new();
    if let Some(trace) = trace_header {
        system_attributes.insert(
            "AWSTraceHeader".into(),
            AttributeValue::string("String", &trace),
        );
    }
    Message {
        seq: state.next_seq(),
        id: uuid::Uuid::new_v4().to_string(),
        body,
        attributes: Attributes::new(),
        system_attributes,
        group_id: None,
        sent_ms: now,
        available_at_ms: now,
        receive_count: 0,
        first_receive_ms: None,
    }
}
