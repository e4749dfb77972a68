//! Queue lifecycle: `CreateQueue`, `GetQueueUrl`, `ListQueues`, `DeleteQueue`, `PurgeQueue`.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use super::{QueueRequest, RequestContext, queue_name, queue_url, required};
use crate::error::ApiError;
use crate::queue::valid_queue_name;
use crate::state::{Shared, now_ms};
use crate::store::WriteOp;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateQueueRequest {
    queue_name: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

pub(super) async fn create_queue(
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

pub(super) fn get_queue_url(
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
pub(super) struct ListQueuesRequest {
    queue_name_prefix: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub(super) fn list_queues(
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

pub(super) async fn delete_queue(shared: &Shared, req: QueueRequest) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    shared
        .change(|s| Ok(((), vec![s.delete_queue(&name)?])))
        .await?;
    Ok(json!({}))
}

pub(super) async fn purge_queue(shared: &Shared, req: QueueRequest) -> Result<Value, ApiError> {
    let name = queue_name(shared, &req.queue_url)?;
    shared
        .change(|s| {
            s.queue_mut(&name)?.purge();
            Ok(((), vec![WriteOp::PurgeQueue { name: name.clone() }]))
        })
        .await?;
    Ok(json!({}))
}
