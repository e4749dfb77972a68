//! Receipt handles and what they allow: `DeleteMessage`, `ChangeMessageVisibility` and their
//! batch forms.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::validate::validate_entry_ids;
use super::{failed, in_range, queue_name, required};
use crate::error::ApiError;
use crate::message::Message;
use crate::state::{Shared, State, now_ms};
use crate::store::WriteOp;

/// A receipt handle names the queue, the message and which receive it came from.
pub(super) fn receipt_handle(queue: &str, m: &Message) -> String {
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
pub(super) struct DeleteRequest {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct VisibilityRequest {
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
pub(super) struct BatchRequest {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<BatchEntry>,
}

pub(super) async fn delete_message_batch(
    shared: &Shared,
    req: BatchRequest,
) -> Result<Value, ApiError> {
    batch(shared, req, |s, name, entry, _now| {
        let handle = required(entry.receipt_handle.as_deref(), "ReceiptHandle")?;
        Ok(delete(s, name, handle)?.into_iter().collect())
    })
    .await
}

pub(super) async fn change_visibility_batch(
    shared: &Shared,
    req: BatchRequest,
) -> Result<Value, ApiError> {
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
    let name = queue_name(shared, &req.queue_url)?;
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

pub(super) async fn delete_message(shared: &Shared, req: DeleteRequest) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    let handle = required(req.receipt_handle, "ReceiptHandle")?;
    shared
        .change(|s| {
            let op = delete(s, &name, &handle)?;
            Ok(((), op.into_iter().collect()))
        })
        .await?;
    Ok(json!({}))
}

pub(super) async fn change_message_visibility(
    shared: &Shared,
    req: VisibilityRequest,
) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqs::event_message;

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
}
