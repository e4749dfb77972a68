//! The SQS JSON protocol: each `AmazonSQS.<Op>` request parsed, validated as AWS validates it,
//! applied to the state, made durable, and answered in AWS's response shape.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::digest::{md5_of_attributes, md5_of_body};
use crate::error::ApiError;
use crate::message::{Attributes, Message};
use crate::queue::{Queue, valid_queue_name};
use crate::state::{Shared, State, now_ms};
use crate::store::WriteOp;
use crate::validate::{validate_entry_ids, validate_send};

/// Where the request came from, to build queue URLs the client can use.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `http://host:port` as the client addressed the broker.
    pub base_url: String,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_parameter(format!("the request body is not a valid request: {e}"))
    })
}

/// Handles one SQS operation.
pub async fn handle(
    shared: &Shared,
    ctx: &RequestContext,
    operation: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    match operation {
        "CreateQueue" => create_queue(shared, ctx, parse(body)?).await,
        "GetQueueUrl" => get_queue_url(shared, ctx, parse(body)?),
        "ListQueues" => list_queues(shared, ctx, parse(body)?),
        "DeleteQueue" => {
            let req: QueueRequest = parse(body)?;
            let name = queue_name(&req.queue_url)?;
            shared
                .change(|s| Ok(((), vec![s.delete_queue(&name)?])))
                .await?;
            Ok(json!({}))
        }
        "PurgeQueue" => {
            let req: QueueRequest = parse(body)?;
            let name = queue_name(&req.queue_url)?;
            shared
                .change(|s| {
                    s.queue_mut(&name)?.purge();
                    Ok(((), vec![WriteOp::PurgeQueue { name: name.clone() }]))
                })
                .await?;
            Ok(json!({}))
        }
        "GetQueueAttributes" => get_queue_attributes(shared, parse(body)?),
        "SetQueueAttributes" => {
            let req: SetAttributesRequest = parse(body)?;
            let name = queue_name(&req.queue_url)?;
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
        "SendMessage" => send_message(shared, parse(body)?).await,
        "SendMessageBatch" => send_message_batch(shared, parse(body)?).await,
        "ReceiveMessage" => receive_message(shared, parse(body)?).await,
        "DeleteMessage" => {
            let req: DeleteRequest = parse(body)?;
            let name = queue_name(&req.queue_url)?;
            let handle = required(req.receipt_handle, "ReceiptHandle")?;
            shared
                .change(|s| {
                    let op = delete(s, &name, &handle)?;
                    Ok(((), op.into_iter().collect()))
                })
                .await?;
            Ok(json!({}))
        }
        "DeleteMessageBatch" => delete_message_batch(shared, parse(body)?).await,
        "ChangeMessageVisibility" => {
            let req: VisibilityRequest = parse(body)?;
            let name = queue_name(&req.queue_url)?;
            let handle = required(req.receipt_handle, "ReceiptHandle")?;
            let timeout = required(req.visibility_timeout, "VisibilityTimeout")?;
            let now = now_ms();
            shared
                .change(|s| {
                    Ok((
                        (),
                        vec![change_visibility(s, &name, &handle, timeout, now)?],
                    ))
                })
                .await?;
            Ok(json!({}))
        }
        "ChangeMessageVisibilityBatch" => change_visibility_batch(shared, parse(body)?).await,
        other => Err(ApiError::unsupported(format!(
            "the operation AmazonSQS.{other} is not supported by this broker"
        ))),
    }
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::missing_parameter(name))
}

/// The queue name a queue URL names (its last path segment).
pub fn queue_name(url: &Option<String>) -> Result<String, ApiError> {
    let url = url
        .as_deref()
        .ok_or_else(|| ApiError::missing_parameter("QueueUrl"))?;
    let name = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if valid_queue_name(name) {
        Ok(name.to_owned())
    } else {
        Err(ApiError::queue_does_not_exist())
    }
}

fn queue_url(shared: &Shared, ctx: &RequestContext, name: &str) -> String {
    format!("{}/{}/{name}", ctx.base_url, shared.account_id)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueRequest {
    queue_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateQueueRequest {
    queue_name: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

async fn create_queue(
    shared: &Shared,
    ctx: &RequestContext,
    req: CreateQueueRequest,
) -> Result<Value, ApiError> {
    let name = required(req.queue_name, "QueueName")?;
    if name.ends_with(".fifo") {
        return Err(ApiError::invalid_parameter(format!(
            "QueueName {name:?}: fifo queues are not supported by this broker"
        )));
    }
    if !valid_queue_name(&name) {
        return Err(ApiError::invalid_parameter(format!(
            "QueueName {name:?}: can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
        )));
    }
    let now = now_ms() / 1000;
    shared
        .change(|s| {
            let op = s.create_queue(&name, &req.attributes, now)?;
            Ok(((), op.into_iter().collect()))
        })
        .await?;
    Ok(json!({ "QueueUrl": queue_url(shared, ctx, &name) }))
}

fn get_queue_url(
    shared: &Shared,
    ctx: &RequestContext,
    req: CreateQueueRequest,
) -> Result<Value, ApiError> {
    let name = required(req.queue_name, "QueueName")?;
    shared.lock().queue(&name)?;
    Ok(json!({ "QueueUrl": queue_url(shared, ctx, &name) }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueuesRequest {
    queue_name_prefix: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn list_queues(
    shared: &Shared,
    ctx: &RequestContext,
    req: ListQueuesRequest,
) -> Result<Value, ApiError> {
    let max = match req.max_results {
        None => usize::MAX,
        Some(n @ 1..=1000) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid_parameter(format!(
                "MaxResults {n}: must be between 1 and 1000"
            )));
        }
    };
    let prefix = req.queue_name_prefix.unwrap_or_default();
    let after = req.next_token.unwrap_or_default();
    let state = shared.lock();
    let mut names: Vec<&String> = state
        .queues
        .keys()
        .filter(|n| n.starts_with(&prefix) && n.as_str() > after.as_str())
        .collect();
    let mut out = Map::new();
    if names.len() > max && req.max_results.is_some() {
        names.truncate(max);
        if let Some(last) = names.last() {
            out.insert("NextToken".into(), json!(last));
        }
    } else {
        names.truncate(1000);
    }
    let urls: Vec<String> = names.iter().map(|n| queue_url(shared, ctx, n)).collect();
    out.insert("QueueUrls".into(), json!(urls));
    Ok(Value::Object(out))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetAttributesRequest {
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

fn get_queue_attributes(shared: &Shared, req: GetAttributesRequest) -> Result<Value, ApiError> {
    let name = queue_name(&req.queue_url)?;
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
pub fn queue_attributes(shared: &Shared, queue: &Queue, now_ms: u64) -> BTreeMap<String, String> {
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
struct SetAttributesRequest {
    queue_url: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// The fields of one message to send (`SendMessage`, or one `SendMessageBatch` entry).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendEntry {
    pub id: Option<String>,
    pub message_body: Option<String>,
    pub delay_seconds: Option<i64>,
    #[serde(default)]
    pub message_attributes: Attributes,
    #[serde(default)]
    pub message_system_attributes: Attributes,
    pub message_group_id: Option<String>,
    #[allow(dead_code)] // accepted for compatibility; only fifo queues deduplicate
    pub message_deduplication_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendRequest {
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

async fn send_message(shared: &Shared, req: SendRequest) -> Result<Value, ApiError> {
    let name = queue_name(&req.queue_url)?;
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
struct SendBatchRequest {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<SendEntry>,
}

fn failed(id: &str, err: &ApiError) -> Value {
    json!({ "Id": id, "SenderFault": true, "Code": err.code, "Message": err.message })
}

async fn send_message_batch(shared: &Shared, req: SendBatchRequest) -> Result<Value, ApiError> {
    let name = queue_name(&req.queue_url)?;
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveRequest {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
}

fn in_range(name: &str, value: Option<i64>, min: i64, max: i64) -> Result<Option<u64>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(Some(v as u64)),
        Some(v) => Err(ApiError::invalid_parameter(format!(
            "Value {v} for parameter {name} is invalid. Reason: must be between {min} and {max}."
        ))),
    }
}

async fn receive_message(shared: &Shared, req: ReceiveRequest) -> Result<Value, ApiError> {
    let name = queue_name(&req.queue_url)?;
    let max =
        in_range("MaxNumberOfMessages", req.max_number_of_messages, 1, 10)?.unwrap_or(1) as usize;
    let visibility = in_range("VisibilityTimeout", req.visibility_timeout, 0, 43_200)?;
    let wait = in_range("WaitTimeSeconds", req.wait_time_seconds, 0, 20)?;
    let (wait_secs, notify) = {
        let state = shared.lock();
        let q = state.queue(&name)?;
        (
            wait.unwrap_or(u64::from(q.settings.receive_wait_secs)),
            q.notify.clone(),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_secs);
    let received = loop {
        // Registered before looking, so a message that arrives after the look wakes us.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = now_ms();
        let (received, next_due) = shared
            .change(|s| {
                let q = s.queue(&name)?;
                let vis = visibility.unwrap_or(u64::from(q.settings.visibility_timeout_secs));
                let (received, ops) = s.receive(&name, max, vis * 1000, now)?;
                let next_due = s.queue(&name)?.next_due_ms();
                Ok(((received, next_due), ops))
            })
            .await?;
        if !received.is_empty() {
            break received;
        }
        let mut wake = deadline;
        if let Some(due) = next_due {
            let until_due = Duration::from_millis(due.saturating_sub(now));
            wake = wake.min(tokio::time::Instant::now() + until_due);
        }
        if tokio::time::Instant::now() >= deadline {
            break received;
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(wake) => {}
        }
        if shared.lock().queue(&name).is_err() {
            return Err(ApiError::queue_does_not_exist());
        }
    };
    let mut system_names = req.attribute_names;
    system_names.extend(req.message_system_attribute_names);
    let messages: Vec<Value> = received
        .iter()
        .map(|m| render_received(&name, m, &system_names, &req.message_attribute_names))
        .collect();
    if messages.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Messages": messages }))
}

fn wants(names: &[String], name: &str) -> bool {
    names.iter().any(|n| {
        n == "All"
            || n == ".*"
            || n == name
            || n.strip_suffix(".*")
                .is_some_and(|p| name.starts_with(p) && name[p.len()..].starts_with('.'))
    })
}

fn render_received(queue: &str, m: &Message, system: &[String], user: &[String]) -> Value {
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(m.id));
    out.insert("ReceiptHandle".into(), json!(receipt_handle(queue, m)));
    out.insert("MD5OfBody".into(), json!(md5_of_body(&m.body)));
    out.insert("Body".into(), json!(m.body));
    let mut attrs = Map::new();
    let mut add = |k: &str, v: String| {
        if wants(system, k) {
            attrs.insert(k.into(), json!(v));
        }
    };
    add("SenderId", "000000000000".into());
    add("SentTimestamp", m.sent_ms.to_string());
    add("ApproximateReceiveCount", m.receive_count.to_string());
    add(
        "ApproximateFirstReceiveTimestamp",
        m.first_receive_ms.unwrap_or(m.sent_ms).to_string(),
    );
    if let Some(group) = &m.group_id {
        add("MessageGroupId", group.clone());
    }
    if let Some(trace) = m
        .system_attributes
        .get("AWSTraceHeader")
        .and_then(|v| v.string_value.clone())
    {
        add("AWSTraceHeader", trace);
    }
    if !attrs.is_empty() {
        out.insert("Attributes".into(), Value::Object(attrs));
    }
    let selected: Attributes = m
        .attributes
        .iter()
        .filter(|(k, _)| wants(user, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(md5) = md5_of_attributes(&selected) {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
        out.insert("MessageAttributes".into(), json!(selected));
    }
    Value::Object(out)
}

/// A receipt handle names the queue, the message and which receive it came from.
fn receipt_handle(queue: &str, m: &Message) -> String {
    URL_SAFE_NO_PAD.encode(format!("{queue}\n{}\n{}\n{}", m.seq, m.receive_count, m.id))
}

struct Receipt {
    seq: u64,
    receive_count: u32,
    id: String,
}

fn parse_receipt(queue: &str, handle: &str) -> Result<Receipt, ApiError> {
    let invalid = || ApiError::receipt_handle_invalid(handle);
    let bytes = URL_SAFE_NO_PAD.decode(handle).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('\n');
    let (Some(q), Some(seq), Some(count), Some(id), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    if q != queue {
        return Err(invalid());
    }
    Ok(Receipt {
        seq: seq.parse().map_err(|_| invalid())?,
        receive_count: count.parse().map_err(|_| invalid())?,
        id: id.to_owned(),
    })
}

/// Deletes the message a receipt handle names. A handle from an earlier receive, or for a message
/// already gone, deletes nothing and is not an error (as in AWS).
fn delete(state: &mut State, queue: &str, handle: &str) -> Result<Option<WriteOp>, ApiError> {
    let receipt = parse_receipt(queue, handle)?;
    let q = state.queue_mut(queue)?;
    let current = q
        .get(receipt.seq)
        .is_some_and(|m| m.id == receipt.id && m.receive_count == receipt.receive_count);
    if !current {
        return Ok(None);
    }
    q.remove(receipt.seq);
    q.counters.deleted += 1;
    Ok(Some(WriteOp::Delete { seq: receipt.seq }))
}

fn change_visibility(
    state: &mut State,
    queue: &str,
    handle: &str,
    timeout: i64,
    now: u64,
) -> Result<WriteOp, ApiError> {
    let timeout = in_range("VisibilityTimeout", Some(timeout), 0, 43_200)?.unwrap_or_default();
    let receipt = parse_receipt(queue, handle)?;
    let q = state.queue_mut(queue)?;
    let m = q
        .get(receipt.seq)
        .filter(|m| m.id == receipt.id)
        .ok_or_else(|| ApiError::receipt_handle_invalid(handle))?;
    if !m.is_in_flight(now) || m.receive_count != receipt.receive_count {
        return Err(ApiError::message_not_inflight());
    }
    let m = q
        .reschedule(receipt.seq, now + timeout * 1000)
        .ok_or_else(|| ApiError::receipt_handle_invalid(handle))?;
    let op = WriteOp::SetDelivery {
        seq: m.seq,
        available_at_ms: m.available_at_ms,
        receive_count: m.receive_count,
        first_receive_ms: m.first_receive_ms,
    };
    if timeout == 0 {
        q.notify.notify_waiters();
    }
    Ok(op)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VisibilityRequest {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchRequest {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<BatchEntry>,
}

async fn delete_message_batch(shared: &Shared, req: BatchRequest) -> Result<Value, ApiError> {
    batch(shared, req, |s, name, entry, _now| {
        let handle = required(entry.receipt_handle.as_deref(), "ReceiptHandle")?;
        Ok(delete(s, name, handle)?.into_iter().collect())
    })
    .await
}

async fn change_visibility_batch(shared: &Shared, req: BatchRequest) -> Result<Value, ApiError> {
    batch(shared, req, |s, name, entry, now| {
        let handle = required(entry.receipt_handle.as_deref(), "ReceiptHandle")?;
        let timeout = required(entry.visibility_timeout, "VisibilityTimeout")?;
        Ok(vec![change_visibility(s, name, handle, timeout, now)?])
    })
    .await
}

async fn batch(
    shared: &Shared,
    req: BatchRequest,
    each: impl Fn(&mut State, &str, &BatchEntry, u64) -> Result<Vec<WriteOp>, ApiError>,
) -> Result<Value, ApiError> {
    let name = queue_name(&req.queue_url)?;
    validate_entry_ids(req.entries.iter().map(|e| e.id.as_deref()))?;
    let now = now_ms();
    shared
        .change(|s| {
            s.queue(&name)?;
            let mut successful = Vec::new();
            let mut failures = Vec::new();
            let mut ops = Vec::new();
            for entry in &req.entries {
                let id = entry.id.clone().unwrap_or_default();
                match each(s, &name, entry, now) {
                    Ok(more) => {
                        ops.extend(more);
                        successful.push(json!({ "Id": id }));
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
            crate::message::AttributeValue::string("String", &trace),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_name_selection_supports_all_and_prefixes() {
        let names = vec!["trace.*".to_owned(), "exact".to_owned()];
        assert!(wants(&names, "trace.id"));
        assert!(wants(&names, "exact"));
        assert!(!wants(&names, "tracer"));
        assert!(!wants(&names, "other"));
        assert!(wants(&["All".to_owned()], "x"));
        assert!(!wants(&[], "x"));
    }

    #[test]
    fn receipt_handles_round_trip_and_reject_other_queues() {
        let m = event_message(&mut State::default(), "b".into(), None, 0);
        let handle = receipt_handle("q", &m);
        let r = parse_receipt("q", &handle).unwrap();
        assert_eq!(
            (r.seq, r.receive_count, r.id.as_str()),
            (m.seq, 0, m.id.as_str())
        );
        assert_eq!(
            parse_receipt("other", &handle).err().map(|e| e.code),
            Some("ReceiptHandleIsInvalid".to_owned())
        );
        assert!(parse_receipt("q", "not a handle!").is_err());
    }

    #[test]
    fn queue_urls_name_their_queue() {
        assert_eq!(
            queue_name(&Some("http://h:1/000000000000/orders".into())).unwrap(),
            "orders"
        );
        assert_eq!(
            queue_name(&Some("http://h:1/000000000000/bad name".into()))
                .unwrap_err()
                .code,
            "AWS.SimpleQueueService.NonExistentQueue"
        );
        assert_eq!(queue_name(&None).unwrap_err().code, "MissingParameter");
    }
}
