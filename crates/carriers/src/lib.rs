//! Trace-context carriers: HTTP headers, SQS message attributes, Lambda SQS records, EventBridge
//! detail.
//!
//! Each carrier is an `opentelemetry::propagation::Injector` / `Extractor` pair (plus, where a
//! carrier has rules of its own, a function that applies them: the SQS attribute limit, the
//! `AWSTraceHeader` fallback, the EventBridge `detail` field). Use them with any propagator,
//! normally `throughline_propagation::Propagators` built from `OTEL_PROPAGATORS`. Each module
//! documents how it treats the case of names.
//!
//! Each carrier is behind its own feature, none on by default: `http` ([`headers`]), `sqs`
//! (`sqs`, on `aws-sdk-sqs`), `lambda` (`lambda_sqs`, on `aws_lambda_events`) and `eventbridge`.

/// The SQS system attribute (and Lambda record attribute) that carries the X-Ray header.
pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";

#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "http")]
pub mod headers;
#[cfg(feature = "lambda")]
pub mod lambda_sqs;
#[cfg(feature = "sqs")]
pub mod sqs;

#[cfg(feature = "eventbridge")]
pub use eventbridge::{
    DEFAULT_EVENTBRIDGE_TRACE_FIELD, EventBridgeDetailError, EventBridgeTraceField,
    JsonObjectExtractor, JsonObjectInjector,
};
#[cfg(feature = "http")]
pub use headers::{HeaderExtractor, HeaderInjector};
#[cfg(feature = "lambda")]
pub use lambda_sqs::{LambdaSqsRecordExtractor, extract_lambda_sqs_record};
#[cfg(feature = "sqs")]
pub use sqs::{
    SQS_MAX_MESSAGE_ATTRIBUTES, SqsAttributeCollector, SqsAttributeLimitError,
    SqsMessageAttributesExtractor, aws_trace_header_attribute, inject_sqs_message_attributes,
};
