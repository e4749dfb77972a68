//! Errors as AWS returns them, and the one place they become HTTP responses.
//!
//! SQS (a query-compatible JSON service) answers `{"__type": "com.amazonaws.sqs#Shape", "message"}`
//! with an `x-amzn-query-error: <query code>;Sender` header, from which the SDKs take the error code
//! they surface. EventBridge answers `{"__type": "Code", "message"}`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

/// An error that the client caused or that the broker hit, in AWS's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// The value of `__type`.
    pub type_name: String,
    /// The code the SDKs surface (query-compatible code for SQS, the shape name for EventBridge).
    pub code: String,
    /// Whether to send `x-amzn-query-error` (SQS only).
    pub query_compatible: bool,
    pub message: String,
}

impl ApiError {
    fn sqs(shape: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            type_name: format!("com.amazonaws.sqs#{shape}"),
            code: code.to_owned(),
            query_compatible: true,
            message: message.into(),
        }
    }

    pub fn queue_does_not_exist() -> Self {
        Self::sqs(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        )
    }
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::sqs("InvalidParameterValue", "InvalidParameterValue", message)
    }
    pub fn missing_parameter(name: &str) -> Self {
        Self::sqs(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {name}."),
        )
    }
    pub fn invalid_attribute_name(message: impl Into<String>) -> Self {
        Self::sqs("InvalidAttributeName", "InvalidAttributeName", message)
    }
    pub fn invalid_attribute_value(message: impl Into<String>) -> Self {
        Self::sqs("InvalidAttributeValue", "InvalidAttributeValue", message)
    }
    pub fn invalid_message_contents(message: impl Into<String>) -> Self {
        Self::sqs("InvalidMessageContents", "InvalidMessageContents", message)
    }
    pub fn queue_name_exists(name: &str) -> Self {
        Self::sqs(
            "QueueNameExists",
            "QueueAlreadyExists",
            format!(
                "A queue already exists with the same name and a different value for attribute(s): {name}"
            ),
        )
    }
    pub fn receipt_handle_invalid(handle: &str) -> Self {
        Self::sqs(
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    }
    pub fn message_not_inflight() -> Self {
        Self::sqs(
            "MessageNotInflight",
            "AWS.SimpleQueueService.MessageNotInflight",
            "The message referred to isn't in flight.",
        )
    }
    pub fn empty_batch() -> Self {
        Self::sqs(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "There should be at least one entry in the request.",
        )
    }
    pub fn too_many_entries(count: usize) -> Self {
        Self::sqs(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!("Maximum number of entries per request are 10. You have sent {count}."),
        )
    }
    pub fn batch_ids_not_distinct(id: &str) -> Self {
        Self::sqs(
            "BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            format!("Id {id} repeated."),
        )
    }
    pub fn invalid_batch_entry_id(id: &str) -> Self {
        Self::sqs(
            "InvalidBatchEntryId",
            "AWS.SimpleQueueService.InvalidBatchEntryId",
            format!(
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long. Got: {id:?}"
            ),
        )
    }
    pub fn batch_too_long(bytes: usize, max: usize) -> Self {
        Self::sqs(
            "BatchRequestTooLong",
            "AWS.SimpleQueueService.BatchRequestTooLong",
            format!(
                "Batch requests cannot be longer than {max} bytes. You have sent {bytes} bytes."
            ),
        )
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::sqs(
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            message,
        )
    }

    /// An EventBridge error (`__type` is the bare shape name).
    pub fn events(code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            type_name: code.to_owned(),
            code: code.to_owned(),
            query_compatible: false,
            message: message.into(),
        }
    }

    /// A request the broker cannot read at all (bad JSON, bad headers, unknown operation).
    pub fn malformed(code: &str, message: impl Into<String>) -> Self {
        Self::events(code, message)
    }

    /// A request body over the broker's limit (before any operation could read it).
    pub fn request_too_large(max_bytes: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            type_name: "RequestEntityTooLarge".to_owned(),
            code: "RequestEntityTooLarge".to_owned(),
            query_compatible: false,
            message: throughline_service_kit::too_large_message(max_bytes),
        }
    }

    /// A failure inside the broker (the disk); never caused by the client, details stay in logs.
    pub fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            type_name: "InternalFailure".to_owned(),
            code: "InternalFailure".to_owned(),
            query_compatible: false,
            message: "the broker could not store the change; see its log".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.type_name, "message": self.message });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        if self.query_compatible {
            let fault = if self.status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            if let Ok(value) = HeaderValue::from_str(&format!("{};{fault}", self.code)) {
                headers.insert("x-amzn-query-error", value);
            }
        }
        response
    }
}
