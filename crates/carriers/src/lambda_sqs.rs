//! The SQS record of a Lambda event, as `aws_lambda_events::event::sqs::SqsMessage` parses it.
//!
//! Lambda delivers message attributes as `messageAttributes.<name>.stringValue` (camelCase, a
//! trap the seeds fell into); `aws_lambda_events` maps that to
//! `message_attributes[name].string_value`. When the record carries no valid trace context in
//! its message attributes, [`extract_lambda_sqs_record`] falls back to the `AWSTraceHeader`
//! system attribute (`attributes["AWSTraceHeader"]`), read with the X-Ray parser, whatever
//! `OTEL_PROPAGATORS` says: it is how SQS itself carries the trace when the producer only set
//! the system attribute.
//!
//! Case: attribute names are matched exactly first, then ASCII case-insensitively.

use aws_lambda_events::event::sqs::SqsMessage;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use throughline_propagation::XRayPropagator;
use throughline_propagation::xray::XRAY_HEADER;

use crate::AWS_TRACE_HEADER;

/// Reads propagation fields from a Lambda SQS record's message attributes; `x-amzn-trace-id`
/// falls back to the `AWSTraceHeader` system attribute.
#[derive(Debug, Clone, Copy)]
pub struct LambdaSqsRecordExtractor<'a>(pub &'a SqsMessage);

impl Extractor for LambdaSqsRecordExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let attributes = &self.0.message_attributes;
        let attribute = attributes.get(key).or_else(|| {
            attributes
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value)
        });
        if let Some(value) = attribute.and_then(|a| a.string_value.as_deref())
            && !value.is_empty()
        {
            return Some(value);
        }
        if key.eq_ignore_ascii_case(XRAY_HEADER) {
            return self.0.attributes.get(AWS_TRACE_HEADER).map(String::as_str);
        }
        None
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .message_attributes
            .keys()
            .map(String::as_str)
            .collect()
    }
}

/// The context a Lambda SQS record carries: what `propagator` extracts from its message
/// attributes, or else the `AWSTraceHeader` system attribute, or else the current context.
pub fn extract_lambda_sqs_record(
    propagator: &dyn TextMapPropagator,
    record: &SqsMessage,
) -> Context {
    let cx = propagator.extract(&LambdaSqsRecordExtractor(record));
    if cx.span().span_context().is_valid() {
        return cx;
    }
    match record
        .attributes
        .get(AWS_TRACE_HEADER)
        .map(|header| XRayPropagator::span_context_from_header(header))
    {
        Some(Ok(span_context)) => cx.with_remote_span_context(span_context),
        _ => cx,
    }
}
