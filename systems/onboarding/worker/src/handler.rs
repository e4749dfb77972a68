//! The SQS batch handler: what onboarding does with one record. The span shape of the
//! invocation (SERVER span, batch span with links, a CONSUMER span per record,
//! `batchItemFailures`, the bounded flush) is `throughline-instrument`'s
//! [`SqsBatchConsumer`].

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
pub use throughline_instrument::{FlushFn, Invocation};
use throughline_instrument::{RecordError, SharedTracer, SqsBatchConsumer, SqsRecord};

use crate::config::WorkerConfig;
use crate::names;
use crate::open::OpenError;
use crate::steps::{CustomerRecord, Processor};

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
    consumer: SqsBatchConsumer,
    processor: Processor,
    metrics: Metrics,
}

impl std::fmt::Debug for Worker {
    /// The configuration only (its URL is redacted): the pool's connect options would show
    /// the database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Opens the worker's resources. Blocking (files): call it before serving invocations.
    pub fn new(config: WorkerConfig, telemetry: WorkerTelemetry) -> Result<Self, OpenError> {
        let tracer: SharedTracer = Arc::new(telemetry.tracer);
        let processor = Processor::open(&config, Arc::clone(&tracer))?;
        let mut consumer = SqsBatchConsumer::shared(tracer, config.queue_name.clone())
            .default_function_name("onboarding-lambda")
            .consumer_context(config.consumer_context)
            .failure_count_attribute(names::BATCH_FAILURES);
        if let (Some(flush), true) = (telemetry.flush, config.flush) {
            consumer = consumer.flush(flush, config.flush_timeout);
        }
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
            consumer,
            processor,
            metrics,
        })
    }

    /// The configuration the worker was built with.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Connects to the database now (PostgreSQL; nothing to do for SQLite), so a cold start
    /// stops on an unreachable one instead of failing the first records.
    pub async fn connect_database(&self) -> Result<(), OpenError> {
        self.processor.connect().await
    }

    /// Handles one SQS batch; never fails as a whole: bad records are reported individually.
    pub async fn handle(&self, event: SqsEvent, invocation: Invocation) -> SqsBatchResponse {
        self.consumer
            .handle(&event, invocation, |record| self.process_record(record))
            .await
    }

    /// Processes one record; its CONSUMER span is the current context.
    async fn process_record(&self, record: SqsRecord<'_>) -> Result<(), RecordError> {
        let started = Instant::now();
        let cx = Context::current();
        let span = cx.span();
        span.set_attribute(KeyValue::new(names::DELIVERY_ATTEMPT, record.attempt));
        let (outcome, customer_type) = match serde_json::from_str::<CustomerRecord>(record.body()) {
            // A body that is not ours: fail it so it ends in the dead-letter queue.
            Err(e) => (
                Err(RecordError::new(
                    "invalid_body",
                    format_args!("message body is not an onboarding record: {e}"),
                )),
                "unknown".to_owned(),
            ),
            Ok(customer) => {
                span.set_attribute(KeyValue::new(
                    names::CUSTOMER_ID,
                    customer.customer_id.clone(),
                ));
                span.set_attribute(KeyValue::new(
                    names::CUSTOMER_TYPE,
                    customer.customer_type.clone(),
                ));
                let outcome = match self.processor.process(&customer, record.attempt).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        span.set_attribute(KeyValue::new(names::FAILED_STEP, e.step()));
                        self.processor
                            .mark_failed(&customer.customer_id, &e.to_string(), record.attempt)
                            .await;
                        Err(RecordError::new(e.step(), &e))
                    }
                };
                (outcome, customer.customer_type)
            }
        };
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
