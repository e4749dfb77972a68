//! Trace-context carriers: HTTP headers, SQS message attributes, Lambda SQS records, EventBridge
//! detail.
//!
//! Each carrier is an `opentelemetry::propagation::Injector` / `Extractor` pair (plus, where a
//! carrier has rules of its own, a function that applies them: the SQS attribute limit, the
//! `AWSTraceHeader` fallback, the EventBridge `detail` field). Use them with any propagator,
//! normally `throughline_propagation::Propagators` built from `OTEL_PROPAGATORS`. Each module
//! documents how it treats the case of names.

pub mod eventbridge;
pub mod headers;
pub mod lambda_sqs;
pub mod sqs;

pub use eventbridge::{
    DEFAULT_EVENTBRIDGE_TRACE_FIELD, EventBridgeDetailError, EventBridgeTraceField,
    JsonObjectExtractor, JsonObjectInjector,
};
pub use headers::{HeaderExtractor, HeaderInjector};
pub use lambda_sqs::{LambdaSqsRecordExtractor, extract_lambda_sqs_record};
pub use sqs::{
    AWS_TRACE_HEADER, SQS_MAX_MESSAGE_ATTRIBUTES, SqsAttributeCollector, SqsAttributeLimitError,
    SqsMessageAttributesExtractor, aws_trace_header_attribute, inject_sqs_message_attributes,
};
