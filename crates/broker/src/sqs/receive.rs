//! `ReceiveMessage`: long polling woken by arrivals, visibility, and the attributes asked for.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::receipts::receipt_handle;
use super::{in_range, queue_name};
use crate::digest::{md5_of_attributes, md5_of_body};
use crate::error::ApiError;
use crate::message::{Attributes, Message};
use crate::state::{Shared, now_ms};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReceiveRequest {
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

/// One waiting receive in its queue's `waiting` count, for as long as it lives.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn start(count: &'a AtomicU64) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn receive_message(
    shared: &Shared,
    req: ReceiveRequest,
) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    let max =
        in_range("MaxNumberOfMessages", req.max_number_of_messages, 1, 10)?.unwrap_or(1) as usize;
    let visibility = in_range("VisibilityTimeout", req.visibility_timeout, 0, 43_200)?;
    let wait = in_range("WaitTimeSeconds", req.wait_time_seconds, 0, 20)?;
    let (wait_secs, notify, waiting) = {
        let state = shared.lock();
        let q = state.queue(&name)?;
        (
            wait.unwrap_or(u64::from(q.settings.receive_wait_secs)),
            q.notify.clone(),
            q.waiting.clone(),
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
        {
            // Counted while it waits (for `/metrics`), also when the client goes away mid-wait.
            let _waiting = Waiting::start(&waiting);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        if shared.lock().queue(&name).is_err() {
            return Err(ApiError::queue_does_not_exist());
        }
    };
    let mut system_names = req.attribute_names;
    system_names.extend(req.message_system_attribute_names);
    let messages: Vec<Value> = received
        .iter()
        .map(|m| {
            render_received(
                &name,
                &shared.owner.account_id,
                m,
                &system_names,
                &req.message_attribute_names,
            )
        })
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

fn render_received(
    queue: &str,
    account_id: &str,
    m: &Message,
    system: &[String],
    user: &[String],
) -> Value {
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
    add("SenderId", account_id.to_owned());
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
}
