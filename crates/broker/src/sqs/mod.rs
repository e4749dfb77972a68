//! The SQS JSON protocol: each `AmazonSQS.<Op>` request parsed, validated as AWS validates it,
//! applied to the state, made durable, and answered in AWS's response shape. One module per
//! operation group: [`queues`], [`attributes`], [`send`], [`receive`], [`receipts`] (delete and
//! visibility), with the input checks in [`validate`].

mod attributes;
mod queues;
mod receipts;
mod receive;
mod send;
mod validate;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::queue::valid_queue_name;
use crate::state::Shared;

pub use send::event_message;

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
        "CreateQueue" => queues::create_queue(shared, ctx, parse(body)?).await,
        "GetQueueUrl" => queues::get_queue_url(shared, ctx, parse(body)?),
        "ListQueues" => queues::list_queues(shared, ctx, parse(body)?),
        "DeleteQueue" => queues::delete_queue(shared, parse(body)?).await,
        "PurgeQueue" => queues::purge_queue(shared, parse(body)?).await,
        "GetQueueAttributes" => attributes::get_queue_attributes(shared, parse(body)?),
        "SetQueueAttributes" => attributes::set_queue_attributes(shared, parse(body)?).await,
        "SendMessage" => send::send_message(shared, parse(body)?).await,
        "SendMessageBatch" => send::send_message_batch(shared, parse(body)?).await,
        "ReceiveMessage" => receive::receive_message(shared, parse(body)?).await,
        "DeleteMessage" => receipts::delete_message(shared, parse(body)?).await,
        "DeleteMessageBatch" => receipts::delete_message_batch(shared, parse(body)?).await,
        "ChangeMessageVisibility" => {
            receipts::change_message_visibility(shared, parse(body)?).await
        }
        "ChangeMessageVisibilityBatch" => {
            receipts::change_visibility_batch(shared, parse(body)?).await
        }
        other => Err(ApiError::unsupported(format!(
            "the operation AmazonSQS.{other} is not supported by this broker"
        ))),
    }
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::missing_parameter(name))
}

/// The queue name a queue URL of this broker's account names (its last path segment).
fn queue_name(shared: &Shared, url: &Option<String>) -> Result<String, ApiError> {
    queue_name_in(&shared.owner.account_id, url)
}

/// The queue `url` names (`…/ACCOUNT/NAME`, or a bare `NAME`). As on AWS, a queue of another
/// account does not exist here: an account segment other than `account` is `NonExistentQueue`.
fn queue_name_in(account: &str, url: &Option<String>) -> Result<String, ApiError> {
    let url = url
        .as_deref()
        .ok_or_else(|| ApiError::missing_parameter("QueueUrl"))?;
    let path = url.split_once("://").map_or(url, |(_, rest)| {
        rest.split_once('/').map_or("", |(_, path)| path)
    });
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (name, foreign) = match segments.as_slice() {
        [name] => (*name, false),
        [owner, name] => (*name, *owner != account),
        _ => ("", true),
    };
    if valid_queue_name(name) && !foreign {
        Ok(name.to_owned())
    } else {
        Err(ApiError::queue_does_not_exist())
    }
}

fn queue_url(shared: &Shared, ctx: &RequestContext, name: &str) -> String {
    format!("{}/{}/{name}", ctx.base_url, shared.owner.account_id)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueRequest {
    queue_url: Option<String>,
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

fn failed(id: &str, err: &ApiError) -> Value {
    json!({ "Id": id, "SenderFault": true, "Code": err.code, "Message": err.message })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "000000000000";

    #[test]
    fn queue_urls_name_their_queue() {
        assert_eq!(
            queue_name_in(ACCOUNT, &Some("http://h:1/000000000000/orders".into())).unwrap(),
            "orders"
        );
        assert_eq!(
            queue_name_in(ACCOUNT, &Some("http://h:1/000000000000/bad name".into()))
                .unwrap_err()
                .code,
            "AWS.SimpleQueueService.NonExistentQueue"
        );
        assert_eq!(
            queue_name_in(ACCOUNT, &None).unwrap_err().code,
            "MissingParameter"
        );
        assert_eq!(
            queue_name_in(ACCOUNT, &Some("orders".into())).unwrap(),
            "orders"
        );
        for foreign in [
            "http://h:1/123456789012/orders",
            "http://h:1/123456789012/000000000000/orders",
            "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
        ] {
            assert_eq!(
                queue_name_in(ACCOUNT, &Some(foreign.into()))
                    .unwrap_err()
                    .code,
                "AWS.SimpleQueueService.NonExistentQueue",
                "{foreign}"
            );
        }
    }
}
