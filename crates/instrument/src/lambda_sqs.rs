//! The Lambda SQS batch consumer: the span shape of one invocation, generic over the business
//! handler of a record.
//!
//! Per invocation: a SERVER span named after the function with `faas.trigger` `pubsub`,
//! `faas.invocation_id`, `faas.coldstart` (true once per environment) and `cloud.resource_id`;
//! under it a `batch {queue}` CONSUMER span linking every record's producer, with
//! `messaging.batch.message_count`; per record a `process {queue}` CONSUMER span, child of the
//! record's producer ([`ConsumerContext::Parent`]) or the root of a new trace linked to it
//! ([`ConsumerContext::Link`]), always linked to the batch span. The handler runs inside the
//! record's span; a record it fails goes to `batchItemFailures`, and its span gets `error.type`
//! and an error status. Spans are flushed, within a bound, before the response is returned: a
//! frozen environment exports nothing.
//!
//! Where the producer's context is found: in the message attributes (with the `AWSTraceHeader`
//! fallback, [`RecordCarrier::MessageAttributes`]), or in `detail._trace` of an EventBridge
//! envelope that a rule delivered as the body ([`RecordCarrier::EventBridgeDetail`]).
//!
//! ```
//! use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
//! use throughline_instrument::{Invocation, RecordError, SqsBatchConsumer, SqsRecord};
//! use throughline_telemetry::testing::TestTracing;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let tracing = TestTracing::new();
//! let consumer = SqsBatchConsumer::new(tracing.tracer("worker"), "orders").default_function_name("worker");
//! let mut event = SqsEvent::default();
//! for (id, body) in [("m-1", "7"), ("m-2", "not a number")] {
//!     let mut record = SqsMessage::default();
//!     record.message_id = Some(id.into());
//!     record.body = Some(body.into());
//!     event.records.push(record);
//! }
//! let response = consumer
//!     .handle(&event, Invocation::default(), |record: SqsRecord<'_>| async move {
//!         record.body().parse::<u32>().map(|_| ()).map_err(|e| RecordError::new("body", e))
//!     })
//!     .await;
//! assert_eq!(response.batch_item_failures[0].item_identifier, "m-2");
//! let spans = tracing.spans();
//! spans.assert_parent("batch orders", "worker");
//! assert_eq!(spans.find_all("process orders").len(), 2);
//! # });
//! ```

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use throughline_carriers::{EventBridgeTraceField, extract_lambda_sqs_record};

use crate::SharedTracer;
use crate::messaging::MESSAGING_SYSTEM_SQS;
use crate::span::ActiveSpan;

/// How a record's CONSUMER span relates to the producer's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumerContext {
    /// The producer's span is the parent: one trace from the producer to the consumer.
    #[default]
    Parent,
    /// A new trace with a link to the producer's span, as the messaging conventions allow.
    Link,
}

/// Where a record carries its producer's context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecordCarrier {
    /// The SQS message attributes (or the `AWSTraceHeader` system attribute).
    #[default]
    MessageAttributes,
    /// The `detail` of an EventBridge event delivered as the record's body (field `_trace`
    /// unless told otherwise); the message attributes when the body holds no trace.
    EventBridgeDetail(EventBridgeTraceField),
}

/// What the Lambda runtime says about one invocation (from `lambda_runtime::Context`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    pub function_arn: String,
    pub function_name: String,
    pub function_version: String,
    pub memory_mb: i64,
}

impl From<&lambda_runtime::Context> for Invocation {
    fn from(cx: &lambda_runtime::Context) -> Self {
        Self {
            request_id: cx.request_id.clone(),
            function_arn: cx.invoked_function_arn.clone(),
            function_name: cx.env_config.function_name.clone(),
            function_version: cx.env_config.version.clone(),
            memory_mb: i64::from(cx.env_config.memory),
        }
    }
}

/// Flushes the span pipeline within a bound; resolves to whether everything was exported.
/// Awaited on the invocation's runtime, so it must not block the thread it is polled on.
pub type FlushFn =
    Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Why the handler failed a record: `error.type` on its span, and the status message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub error_type: Cow<'static, str>,
    pub message: String,
}

impl RecordError {
    pub fn new(error_type: impl Into<Cow<'static, str>>, message: impl Display) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.to_string(),
        }
    }
}

/// One record as the handler sees it; its CONSUMER span is the current context.
#[derive(Debug, Clone, Copy)]
pub struct SqsRecord<'a> {
    pub message: &'a SqsMessage,
    /// The delivery this is of the message (SQS `ApproximateReceiveCount`, 1 when absent).
    pub attempt: i64,
}

impl<'a> SqsRecord<'a> {
    /// The body, empty when the record has none.
    pub fn body(&self) -> &'a str {
        self.message.body.as_deref().unwrap_or("")
    }
}

/// The batch consumer of one queue (see the module docs). Build it once per environment.
pub struct SqsBatchConsumer {
    tracer: SharedTracer,
    queue: String,
    default_function_name: String,
    consumer_context: ConsumerContext,
    carrier: RecordCarrier,
    failure_count_key: Option<Key>,
    flush: Option<FlushFn>,
    flush_timeout: Duration,
    cold: AtomicBool,
}

impl std::fmt::Debug for SqsBatchConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsBatchConsumer")
            .field("queue", &self.queue)
            .field("consumer_context", &self.consumer_context)
            .field("carrier", &self.carrier)
            .field("flush", &self.flush.is_some())
            .field("flush_timeout", &self.flush_timeout)
            .finish_non_exhaustive()
    }
}

impl SqsBatchConsumer {
    /// Consumes `queue` (its name, as spans name it), traced with `tracer`; no flush.
    pub fn new<T>(tracer: T, queue: impl Into<String>) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self::shared(Arc::new(BoxedTracer::new(Box::new(tracer))), queue)
    }

    /// Consumes `queue` with a tracer already shared with other helpers.
    pub fn shared(tracer: SharedTracer, queue: impl Into<String>) -> Self {
        let queue = queue.into();
        Self {
            tracer,
            default_function_name: queue.clone(),
            queue,
            consumer_context: ConsumerContext::Parent,
            carrier: RecordCarrier::MessageAttributes,
            failure_count_key: None,
            flush: None,
            flush_timeout: Duration::from_secs(2),
            cold: AtomicBool::new(true),
        }
    }

    /// The invocation span's name when the runtime gives no function name (outside Lambda).
    pub fn default_function_name(mut self, name: impl Into<String>) -> Self {
        self.default_function_name = name.into();
        self
    }

    /// Parent or link (see [`ConsumerContext`]).
    pub fn consumer_context(mut self, consumer_context: ConsumerContext) -> Self {
        self.consumer_context = consumer_context;
        self
    }

    /// Where records carry their producer's context.
    pub fn carrier(mut self, carrier: RecordCarrier) -> Self {
        self.carrier = carrier;
        self
    }

    /// Records the number of failed records on the batch span under `key`.
    pub fn failure_count_attribute(mut self, key: impl Into<Key>) -> Self {
        self.failure_count_key = Some(key.into());
        self
    }

    /// Flushes spans with `flush` before each invocation returns, waiting at most `timeout`.
    pub fn flush(mut self, flush: FlushFn, timeout: Duration) -> Self {
        self.flush = Some(flush);
        self.flush_timeout = timeout;
        self
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Handles one SQS batch, calling `handler` for each record in order under its CONSUMER
    /// span; never fails as a whole: failed records are reported in `batchItemFailures`.
    pub async fn handle<'a, H, F>(
        &self,
        event: &'a SqsEvent,
        invocation: Invocation,
        mut handler: H,
    ) -> SqsBatchResponse
    where
        H: FnMut(SqsRecord<'a>) -> F,
        F: Future<Output = Result<(), RecordError>>,
    {
        let invocation_span = self.invocation_span(&invocation);
        let producers: Vec<Context> = event.records.iter().map(|r| self.extract(r)).collect();
        let batch = self.batch_span(&producers, invocation_span.context());

        let mut failures = Vec::new();
        for (message, producer) in event.records.iter().zip(producers) {
            let record = SqsRecord {
                message,
                attempt: message
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
            };
            let span = self.record_span(&record, producer, &batch);
            let outcome = span.run(handler(record)).await;
            if let Err(e) = outcome {
                span.fail(e.error_type.clone(), &e.message);
                let id = message.message_id.clone().unwrap_or_default();
                tracing::warn!(message_id = %id, error_type = %e.error_type, "record failed; reported in batchItemFailures");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
            span.end();
        }

        if let Some(key) = &self.failure_count_key {
            batch.set_attribute(KeyValue::new(key.clone(), failures.len() as i64));
        }
        batch.end();
        if !failures.is_empty() {
            invocation_span.fail_status(format!(
                "{} of {} records failed",
                failures.len(),
                event.records.len()
            ));
        }
        invocation_span.end();
        self.flush_spans().await;

        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    fn invocation_span(&self, invocation: &Invocation) -> ActiveSpan {
        let coldstart = self.cold.swap(false, Ordering::Relaxed);
        let name = if invocation.function_name.is_empty() {
            self.default_function_name.clone()
        } else {
            invocation.function_name.clone()
        };
        let mut attributes = vec![
            KeyValue::new(semconv::FAAS_TRIGGER, "pubsub"),
            KeyValue::new(semconv::FAAS_INVOCATION_ID, invocation.request_id.clone()),
            KeyValue::new(semconv::FAAS_COLDSTART, coldstart),
            KeyValue::new(semconv::MESSAGING_SYSTEM, MESSAGING_SYSTEM_SQS),
        ];
        if !invocation.function_arn.is_empty() {
            attributes.push(KeyValue::new(
                semconv::CLOUD_RESOURCE_ID,
                invocation.function_arn.clone(),
            ));
        }
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        // An invocation starts its own trace: the records' producers are linked, not parents.
        ActiveSpan::start(&self.tracer, builder, &Context::new())
    }

    fn extract(&self, record: &SqsMessage) -> Context {
        global::get_text_map_propagator(|p| {
            if let RecordCarrier::EventBridgeDetail(field) = &self.carrier
                && let Some(body) = record.body.as_deref()
                && let Ok(envelope) = serde_json::from_str::<serde_json::Value>(body)
                && let Some(detail) = envelope.get("detail")
            {
                let cx = field.extract(p, detail);
                if cx.span().span_context().is_valid() {
                    return cx;
                }
            }
            extract_lambda_sqs_record(p, record)
        })
    }

    fn batch_span(&self, producers: &[Context], parent: &Context) -> ActiveSpan {
        let links: Vec<Link> = producers
            .iter()
            .map(|c| c.span().span_context().clone())
            .filter(|sc| sc.is_valid())
            .map(Link::with_context)
            .collect();
        let builder = self
            .tracer
            .span_builder(format!("batch {}", self.queue))
            .with_kind(SpanKind::Consumer)
            .with_links(links)
            .with_attributes([
                KeyValue::new(semconv::MESSAGING_SYSTEM, MESSAGING_SYSTEM_SQS),
                KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, self.queue.clone()),
                KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "process"),
                KeyValue::new(
                    semconv::MESSAGING_BATCH_MESSAGE_COUNT,
                    producers.len() as i64,
                ),
            ]);
        ActiveSpan::start(&self.tracer, builder, parent)
    }

    fn record_span(
        &self,
        record: &SqsRecord<'_>,
        producer: Context,
        batch: &ActiveSpan,
    ) -> ActiveSpan {
        let producer_sc = producer.span().span_context().clone();
        let mut links = vec![Link::with_context(
            batch.context().span().span_context().clone(),
        )];
        let parent = match self.consumer_context {
            ConsumerContext::Parent if producer_sc.is_valid() => producer,
            _ => {
                if producer_sc.is_valid() {
                    links.push(Link::with_context(producer_sc));
                }
                Context::new()
            }
        };
        let mut attributes = vec![
            KeyValue::new(semconv::MESSAGING_SYSTEM, MESSAGING_SYSTEM_SQS),
            KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, self.queue.clone()),
            KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "process"),
            KeyValue::new(semconv::MESSAGING_OPERATION_NAME, "process"),
        ];
        if let Some(id) = &record.message.message_id {
            attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.clone()));
        }
        let builder = self
            .tracer
            .span_builder(format!("process {}", self.queue))
            .with_kind(SpanKind::Consumer)
            .with_links(links)
            .with_attributes(attributes);
        ActiveSpan::start(&self.tracer, builder, &parent)
    }

    /// Flushes within the configured bound.
    async fn flush_spans(&self) {
        let Some(flush) = self.flush.as_ref() else {
            return;
        };
        let started = Instant::now();
        let exported = flush(self.flush_timeout).await;
        let flush_us = started.elapsed().as_micros() as u64;
        if exported {
            tracing::info!(flush_us, "spans flushed");
        } else {
            tracing::warn!(flush_us, "span flush did not complete");
        }
    }
}
