//! SQS message attributes as `aws-sdk-sqs` builds them for `SendMessage` / `SendMessageBatch`,
//! and as `ReceiveMessage` returns them.
//!
//! Each propagation field becomes one attribute with `DataType` `String`. SQS rejects an empty
//! string value, so an empty field is never written. SQS allows at most 10 message attributes;
//! when the caller's own attributes plus ours would pass 10, [`inject_sqs_message_attributes`]
//! returns [`SqsAttributeLimitError`] and changes nothing, rather than silently dropping any.
//! The X-Ray form can also go in the `AWSTraceHeader` system attribute
//! ([`aws_trace_header_attribute`]), which does not count towards the 10.
//!
//! Case: SQS attribute names are case-sensitive. We write the names the propagators use
//! (lowercase: `traceparent`, `tracestate`, `baggage`, `x-amzn-trace-id`); on extract an exact
//! match is preferred, then an ASCII case-insensitive one, so a producer that wrote
//! `Traceparent` is still understood.

use std::collections::HashMap;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use throughline_propagation::format_xray_header;

/// SQS accepts at most this many message attributes on one message.
pub const SQS_MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// The `DataType` of every attribute we write.
pub const SQS_STRING_DATA_TYPE: &str = "String";
pub use crate::AWS_TRACE_HEADER;

/// The caller's attributes plus the propagation fields would pass SQS's limit of 10.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "sqs message attributes: {caller} of the caller's plus {added} for trace propagation ({names:?}) pass the limit of 10"
)]
pub struct SqsAttributeLimitError {
    /// How many attributes the caller had set.
    pub caller: usize,
    /// How many new attributes propagation needed.
    pub added: usize,
    /// The propagation fields' names.
    pub names: Vec<String>,
}

/// Collects non-empty propagation fields; the step between a propagator and SQS attributes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SqsAttributeCollector {
    /// The fields, in the order the propagators set them.
    pub fields: Vec<(String, String)>,
}

impl Injector for SqsAttributeCollector {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key.to_owned(), value)),
        }
    }
}

fn string_attribute(value: String) -> Option<MessageAttributeValue> {
    // build() only fails when data_type is missing, and it is always set here.
    MessageAttributeValue::builder()
        .data_type(SQS_STRING_DATA_TYPE)
        .string_value(value)
        .build()
        .ok()
}

/// Injects `cx` into `attributes` (the map `SendMessage::set_message_attributes` and
/// `SendMessageBatchRequestEntry::set_message_attributes` take). A field already present under
/// the same name is replaced. On [`SqsAttributeLimitError`] nothing is changed.
pub fn inject_sqs_message_attributes(
    propagator: &dyn TextMapPropagator,
    cx: &Context,
    attributes: &mut HashMap<String, MessageAttributeValue>,
) -> Result<(), SqsAttributeLimitError> {
    let mut collector = SqsAttributeCollector::default();
    propagator.inject_context(cx, &mut collector);
    let added = collector
        .fields
        .iter()
        .filter(|(k, _)| !attributes.contains_key(k))
        .count();
    if attributes.len() + added > SQS_MAX_MESSAGE_ATTRIBUTES {
        return Err(SqsAttributeLimitError {
            caller: attributes.len(),
            added,
            names: collector.fields.into_iter().map(|(k, _)| k).collect(),
        });
    }
    for (key, value) in collector.fields {
        if let Some(attribute) = string_attribute(value) {
            attributes.insert(key, attribute);
        }
    }
    Ok(())
}

/// The `AWSTraceHeader` system attribute (X-Ray form) for the span in `cx`, or `None` if it
/// has no valid span. Set it with
/// `.message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, value)`.
pub fn aws_trace_header_attribute(cx: &Context) -> Option<MessageSystemAttributeValue> {
    let header = format_xray_header(cx.span().span_context())?;
    // build() only fails when data_type is missing, and it is always set here.
    MessageSystemAttributeValue::builder()
        .data_type(SQS_STRING_DATA_TYPE)
        .string_value(header)
        .build()
        .ok()
}

/// Reads propagation fields from the message attributes of a message `aws-sdk-sqs` received.
/// Only attributes with a non-empty string value count.
#[derive(Debug, Clone, Copy)]
pub struct SqsMessageAttributesExtractor<'a>(pub &'a HashMap<String, MessageAttributeValue>);

impl Extractor for SqsMessageAttributesExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match self.0.get(key) {
            Some(value) => value,
            None => {
                self.0
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(key))?
                    .1
            }
        };
        value.string_value().filter(|v| !v.is_empty())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
