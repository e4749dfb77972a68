//! The SQS batch handler: an invocation SERVER span, a batch span linking every record, and per
//! record a CONSUMER span continuing the producer's trace; failed records go to
//! `batchItemFailures`; spans are flushed, bounded, before the invocation returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::{FutureExt, Link, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::config::{ConsumerContext, WorkerConfig};
use crate::names;
use crate::steps::{CustomerRecord, OpenError, Processor};

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

/// The tracer, meter and flush the worker reports through.
pub struct WorkerTelemetry {
    pub tracer: BoxedTracer,
    pub meter: Meter,
    /// `None` when there is nothing to flush (no SDK installed).
    pub flush: Option<FlushFn>,
}

impl std::fmt::Debug for WorkerTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerTelemetry")
            .field("flush", &self.flush.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Metrics {
    requests: Counter<u64>,
    success: Counter<u64>,
    duration: Histogram<f64>,
}

/// The worker: built once at cold start, then called once per invocation.
pub struct Worker {
    config: WorkerConfig,
    processor: Processor,
    metrics: Metrics,
    flush: Option<FlushFn>,
    cold: AtomicBool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Opens the worker's resources. Blocking (files): call it before serving invocations.
    pub fn new(config: WorkerConfig, telemetry: WorkerTelemetry) -> Result<Self, OpenError> {
        let processor = Processor::open(&config, telemetry.tracer)?;
        let meter = telemetry.meter;
        let metrics = Metrics {
            requests: meter
                .u64_counter(names::METRIC_PROCESSING_REQUESTS)
                .with_description("records processed by customer type and outcome")
                .build(),
            success: meter
                .u64_counter(names::METRIC_PROCESSING_SUCCESS)
                .with_description("records processed successfully")
                .build(),
            duration: meter
                .f64_histogram(names::METRIC_PROCESSING_DURATION)
                .with_unit("s")
                .with_description("processing time of a record by customer type")
                .build(),
        };
        Ok(Self {
            config,
            processor,
            metrics,
            flush: telemetry.flush,
            cold: AtomicBool::new(true),
        })
    }

    /// Connects to the database now (PostgreSQL; nothing to do for SQLite), so a cold start
    /// stops on an unreachable one instead of failing the first records.
    pub async fn connect_database(&self) -> Result<(), OpenError> {
        self.processor.connect().await
    }

    /// Handles one SQS batch; never fails as a whole: bad records are reported individually.
    pub async fn handle(&self, event: SqsEvent, invocation: Invocation) -> SqsBatchResponse {
        let coldstart = self.cold.swap(false, Ordering::Relaxed);
        let queue = self.config.queue_name.clone();
        let function_name = if invocation.function_name.is_empty() {
            "onboarding-lambda".to_owned()
        } else {
            invocation.function_name.clone()
        };
        let mut server_attributes = vec![
            KeyValue::new(semconv::FAAS_TRIGGER, "pubsub"),
            KeyValue::new(semconv::FAAS_INVOCATION_ID, invocation.request_id.clone()),
            KeyValue::new(semconv::FAAS_COLDSTART, coldstart),
            KeyValue::new(semconv::MESSAGING_SYSTEM, "aws_sqs"),
        ];
        if !invocation.function_arn.is_empty() {
            server_attributes.push(KeyValue::new(
                semconv::CLOUD_RESOURCE_ID,
                invocation.function_arn.clone(),
            ));
        }
        let server = self
            .processor
            .tracer
            .span_builder(function_name)
            .with_kind(SpanKind::Server)
            .with_attributes(server_attributes)
            .start_with_context(&self.processor.tracer, &Context::new());
        let inv_cx = Context::new().with_span(server);

        let producers: Vec<Context> = event
            .records
            .iter()
            .map(|r| {
                global::get_text_map_propagator(|p| {
                    throughline_carriers::extract_lambda_sqs_record(p, r)
                })
            })
            .collect();
        let links: Vec<Link> = producers
            .iter()
            .map(|c| c.span().span_context().clone())
            .filter(|sc| sc.is_valid())
            .map(Link::with_context)
            .collect();
        let batch = self
            .processor
            .tracer
            .span_builder(format!("batch {queue}"))
            .with_kind(SpanKind::Consumer)
            .with_links(links)
            .with_attributes([
                KeyValue::new(semconv::MESSAGING_SYSTEM, "aws_sqs"),
                KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, queue.clone()),
                KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "process"),
                KeyValue::new(
                    semconv::MESSAGING_BATCH_MESSAGE_COUNT,
                    event.records.len() as i64,
                ),
            ])
            .start_with_context(&self.processor.tracer, &inv_cx);
        let batch_cx = inv_cx.with_span(batch);

        let mut failures = Vec::new();
        for (record, producer) in event.records.iter().zip(producers) {
            if let Err(step) = self.process_record(record, producer, &batch_cx).await {
                let id = record.message_id.clone().unwrap_or_default();
                tracing::warn!(message_id = %id, failed_step = step, "record failed; reported in batchItemFailures");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
        }

        batch_cx
            .span()
            .set_attribute(KeyValue::new(names::BATCH_FAILURES, failures.len() as i64));
        batch_cx.span().end();
        if !failures.is_empty() {
            inv_cx.span().set_status(Status::error(format!(
                "{} of {} records failed",
                failures.len(),
                event.records.len()
            )));
        }
        inv_cx.span().end();
        self.flush_spans().await;

        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    /// Flushes within the configured bound.
    async fn flush_spans(&self) {
        let (Some(flush), true) = (self.flush.as_ref(), self.config.flush) else {
            return;
        };
        let started = Instant::now();
        let exported = flush(self.config.flush_timeout).await;
        let flush_us = started.elapsed().as_micros() as u64;
        if exported {
            tracing::info!(flush_us, "spans flushed");
        } else {
            tracing::warn!(flush_us, "span flush did not complete");
        }
    }

    /// Processes one record under its CONSUMER span; `Err(step)` names the step that failed.
    async fn process_record(
        &self,
        record: &SqsMessage,
        producer: Context,
        batch_cx: &Context,
    ) -> Result<(), &'static str> {
        let started = Instant::now();
        let attempt: i64 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let producer_sc = producer.span().span_context().clone();
        let mut links = vec![Link::with_context(batch_cx.span().span_context().clone())];
        let parent = match self.config.consumer_context {
            ConsumerContext::Parent if producer_sc.is_valid() => producer,
            _ => {
                if producer_sc.is_valid() {
                    links.push(Link::with_context(producer_sc));
                }
                Context::new()
            }
        };
        let mut attributes = vec![
            KeyValue::new(semconv::MESSAGING_SYSTEM, "aws_sqs"),
            KeyValue::new(
                semconv::MESSAGING_DESTINATION_NAME,
                self.config.queue_name.clone(),
            ),
            KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "process"),
            KeyValue::new(semconv::MESSAGING_OPERATION_NAME, "process"),
            KeyValue::new(names::DELIVERY_ATTEMPT, attempt),
        ];
        if let Some(id) = &record.message_id {
            attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.clone()));
        }
        let span = self
            .processor
            .tracer
            .span_builder(format!("process {}", self.config.queue_name))
            .with_kind(SpanKind::Consumer)
            .with_links(links)
            .with_attributes(attributes)
            .start_with_context(&self.processor.tracer, &parent);
        let cx = parent.with_span(span);

        let parsed: Result<CustomerRecord, _> =
            serde_json::from_str(record.body.as_deref().unwrap_or(""));
        let (outcome, customer_type) = match parsed {
            Err(e) => {
                // A body that is not ours: fail it so it ends in the dead-letter queue.
                cx.span()
                    .set_attribute(KeyValue::new(semconv::ERROR_TYPE, "invalid_body"));
                cx.span().set_status(Status::error(format!(
                    "message body is not an onboarding record: {e}"
                )));
                (Err("body"), "unknown".to_owned())
            }
            Ok(customer) => {
                cx.span().set_attribute(KeyValue::new(
                    names::CUSTOMER_ID,
                    customer.customer_id.clone(),
                ));
                cx.span().set_attribute(KeyValue::new(
                    names::CUSTOMER_TYPE,
                    customer.customer_type.clone(),
                ));
                let result = self
                    .processor
                    .process(&cx, &customer, attempt)
                    .with_context(cx.clone())
                    .await;
                let outcome = match result {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        cx.span()
                            .set_attribute(KeyValue::new(names::FAILED_STEP, e.step()));
                        cx.span()
                            .set_attribute(KeyValue::new(semconv::ERROR_TYPE, e.step()));
                        cx.span().set_status(Status::error(e.to_string()));
                        self.processor
                            .mark_failed(&customer.customer_id, &e.to_string(), attempt)
                            .await;
                        Err(e.step())
                    }
                };
                (outcome, customer.customer_type)
            }
        };
        cx.span().end();
        let type_attr = KeyValue::new(names::CUSTOMER_TYPE, customer_type);
        let outcome_name = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        self.metrics.requests.add(
            1,
            &[
                type_attr.clone(),
                KeyValue::new(names::OUTCOME, outcome_name),
            ],
        );
        if outcome.is_ok() {
            self.metrics
                .success
                .add(1, std::slice::from_ref(&type_attr));
        }
        self.metrics
            .duration
            .record(started.elapsed().as_secs_f64(), &[type_attr]);
        outcome
    }
}
