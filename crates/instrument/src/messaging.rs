//! The PRODUCER spans of SQS sends and EventBridge `PutEvents`, the context injected through the
//! `throughline-carriers` functions.
//!
//! A send span is named `send {destination}` with `messaging.system`, `messaging.operation.type`
//! `send` and `messaging.destination.name`. The operation that ran is known only once the message
//! has left (a sender may batch): [`ActiveSpan`]s from here take it with
//! [`SendReceipt::record`], which sets `messaging.operation.name` (`SendMessage`,
//! `SendMessageBatch`, `PutEvents`), `messaging.message.id` and, for a batch,
//! `messaging.batch.message_count`.
//!
//! ```
//! use std::collections::HashMap;
//! use throughline_instrument::{SendOperation, SendReceipt, SqsProducer};
//! use throughline_telemetry::testing::TestTracing;
//!
//! opentelemetry::global::set_text_map_propagator(
//!     opentelemetry_sdk::propagation::TraceContextPropagator::new(),
//! );
//! let tracing = TestTracing::new();
//! let producer = SqsProducer::new(tracing.tracer("shop"), "orders");
//! let mut attributes = HashMap::new();
//! let span = producer.start_send(&mut attributes, []).expect("room for the trace attributes");
//! assert!(attributes.contains_key("traceparent"));
//! // ... SendMessageBatch with this message and three others ...
//! SendReceipt::new("m-1", SendOperation::SendMessageBatch { message_count: 4 }).record(&span);
//! span.end();
//! tracing.spans().assert_attribute("send orders", "messaging.operation.name", "SendMessageBatch");
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::types::MessageAttributeValue;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{SpanKind, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use throughline_carriers::{
    EventBridgeDetailError, EventBridgeTraceField, SqsAttributeLimitError,
    inject_sqs_message_attributes,
};

use throughline_propagation::XRAY_HEADER;

use crate::SharedTracer;
use crate::span::ActiveSpan;

/// `messaging.system` of SQS (a well-known value of the conventions).
pub const MESSAGING_SYSTEM_SQS: &str = "aws_sqs";
/// `messaging.system` of EventBridge, as the seeds' Python services write it.
pub const MESSAGING_SYSTEM_EVENTBRIDGE: &str = "aws_eventbridge";

/// The call that carried a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOperation {
    /// SQS `SendMessage`: the message alone.
    SendMessage,
    /// SQS `SendMessageBatch` with `message_count` messages in all.
    SendMessageBatch { message_count: usize },
    /// EventBridge `PutEvents` with `entry_count` entries in all.
    PutEvents { entry_count: usize },
}

impl SendOperation {
    /// `messaging.operation.name`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SendMessage => "SendMessage",
            Self::SendMessageBatch { .. } => "SendMessageBatch",
            Self::PutEvents { .. } => "PutEvents",
        }
    }

    /// `messaging.batch.message_count`, for a call that carried several messages.
    pub fn batch_message_count(self) -> Option<usize> {
        match self {
            Self::SendMessage => None,
            Self::SendMessageBatch { message_count } => Some(message_count),
            Self::PutEvents { entry_count } if entry_count > 1 => Some(entry_count),
            Self::PutEvents { .. } => None,
        }
    }
}

/// What a sender learnt when the message left: the id the broker gave it, and the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    pub message_id: String,
    pub operation: SendOperation,
}

impl SendReceipt {
    pub fn new(message_id: impl Into<String>, operation: SendOperation) -> Self {
        Self {
            message_id: message_id.into(),
            operation,
        }
    }

    /// Records the receipt on a send span.
    pub fn record(&self, span: &ActiveSpan) {
        span.set_attribute(KeyValue::new(
            semconv::MESSAGING_OPERATION_NAME,
            self.operation.name(),
        ));
        if !self.message_id.is_empty() {
            span.set_attribute(KeyValue::new(
                semconv::MESSAGING_MESSAGE_ID,
                self.message_id.clone(),
            ));
        }
        if let Some(count) = self.operation.batch_message_count() {
            span.set_attribute(KeyValue::new(
                semconv::MESSAGING_BATCH_MESSAGE_COUNT,
                count as i64,
            ));
        }
    }
}

fn send_span(
    tracer: &BoxedTracer,
    system: &'static str,
    destination: &str,
    extra: impl IntoIterator<Item = KeyValue>,
) -> ActiveSpan {
    let mut attributes = vec![
        KeyValue::new(semconv::MESSAGING_SYSTEM, system),
        KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "send"),
        KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, destination.to_owned()),
    ];
    attributes.extend(extra);
    let builder = tracer
        .span_builder(format!("send {destination}"))
        .with_kind(SpanKind::Producer)
        .with_attributes(attributes);
    ActiveSpan::start(tracer, builder, &Context::current())
}

/// PRODUCER spans of sends to one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsProducer {
    tracer: SharedTracer,
    queue: String,
}

impl SqsProducer {
    /// Sends to `queue` (its name, as spans name it), traced with `tracer`.
    pub fn new<T>(tracer: T, queue: impl Into<String>) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self::shared(Arc::new(BoxedTracer::new(Box::new(tracer))), queue)
    }

    /// Sends to `queue` with a tracer already shared with other helpers.
    pub fn shared(tracer: SharedTracer, queue: impl Into<String>) -> Self {
        Self {
            tracer,
            queue: queue.into(),
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Starts the PRODUCER span of one message under the current context (with `extra`
    /// attributes of the caller's) and injects its context into the message's `attributes`
    /// with the global propagator. When the caller's attributes leave no room for the trace
    /// (SQS takes 10), the span ends failed and the attributes are left as they were.
    pub fn start_send(
        &self,
        attributes: &mut HashMap<String, MessageAttributeValue>,
        extra: impl IntoIterator<Item = KeyValue>,
    ) -> Result<ActiveSpan, SqsAttributeLimitError> {
        let span = send_span(&self.tracer, MESSAGING_SYSTEM_SQS, &self.queue, extra);
        let injected = global::get_text_map_propagator(|p| {
            inject_sqs_message_attributes(p, span.context(), attributes)
        });
        match injected {
            Ok(()) => Ok(span),
            Err(e) => {
                span.fail("attribute_limit", &e);
                Err(e)
            }
        }
    }
}

/// PRODUCER spans of events put on one EventBridge bus, the context carried in `detail`.
#[derive(Debug, Clone)]
pub struct EventBridgeProducer {
    tracer: SharedTracer,
    bus: String,
    field: EventBridgeTraceField,
}

impl EventBridgeProducer {
    /// Puts events on `bus`, the trace in `detail._trace`.
    pub fn new<T>(tracer: T, bus: impl Into<String>) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self::shared(Arc::new(BoxedTracer::new(Box::new(tracer))), bus)
    }

    /// Puts events on `bus` with a tracer already shared with other helpers.
    pub fn shared(tracer: SharedTracer, bus: impl Into<String>) -> Self {
        Self {
            tracer,
            bus: bus.into(),
            field: EventBridgeTraceField::default(),
        }
    }

    /// Carries the trace in `detail[field]` instead of `detail._trace`.
    pub fn trace_field(mut self, field: EventBridgeTraceField) -> Self {
        self.field = field;
        self
    }

    /// Starts the PRODUCER span of one event (`send {bus}`, with the caller's `extra`
    /// attributes) and injects its context into `detail` (which must be a JSON object).
    pub fn start_put(
        &self,
        detail: &mut serde_json::Value,
        extra: impl IntoIterator<Item = KeyValue>,
    ) -> Result<ActiveSpan, EventBridgeDetailError> {
        let span = send_span(&self.tracer, MESSAGING_SYSTEM_EVENTBRIDGE, &self.bus, extra);
        let injected =
            global::get_text_map_propagator(|p| self.field.inject(p, span.context(), detail));
        match injected {
            Ok(()) => Ok(span),
            Err(e) => {
                span.fail("detail", &e);
                Err(e)
            }
        }
    }

    /// The `TraceHeader` of the event's `PutEvents` entry (which EventBridge turns into the
    /// SQS record's `AWSTraceHeader`): the X-Ray header of `span` when the global propagator
    /// writes one (`OTEL_PROPAGATORS` names `xray`), else `None`.
    pub fn trace_header(&self, span: &ActiveSpan) -> Option<String> {
        let mut carrier = HashMap::new();
        global::get_text_map_propagator(|p| p.inject_context(span.context(), &mut carrier));
        carrier.remove(XRAY_HEADER).filter(|v| !v.is_empty())
    }
}
