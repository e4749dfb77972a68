//! The three Lambda workers of the event fan-out (seed 004), each fed `placement.created` by its
//! own EventBridge rule and SQS queue:
//!
//! - **nedlia-file-generator**: `file_generator.generate` (reads the placement and its product,
//!   renders the placement file) then `file_generator.upload_s3` (writes it through
//!   `object_store`, a local directory standing for S3) and records the file's key;
//! - **nedlia-validator**: `validator.validate` checks the placement against the database (video
//!   there, no overlap) and moves its status to `valid` or `invalid`;
//! - **nedlia-notifier**: `notifier.send_notification` POSTs to the external webhook under an
//!   HTTP CLIENT span (the context in `traceparent`) and records when it was notified.
//!
//! The span shape of an invocation (SERVER span, batch span, a CONSUMER span per record whose
//! parent is the API's PRODUCER span, extracted from `detail._trace` with the fall-back to
//! `AWSTraceHeader`, `batchItemFailures`, the bounded flush) is `throughline-instrument`'s
//! [`SqsBatchConsumer`]; this crate holds what each worker does with a record. Failures are
//! injected per worker with `NEDLIA_FAILURE_RATE`.

pub mod config;
pub mod entry;
mod work;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use throughline_carriers::EventBridgeTraceField;
use throughline_instrument::{
    FlushFn, HttpClient, Invocation, RecordCarrier, RecordError, SharedTracer, Spans,
    SqsBatchConsumer, SqsRecord,
};

pub use config::{ConfigError, WorkerConfig};
pub use work::OpenError;

/// Which of the three workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FileGenerator,
    Validator,
    Notifier,
}

impl Kind {
    /// All three, in the seed's order.
    pub const ALL: [Kind; 3] = [Kind::FileGenerator, Kind::Validator, Kind::Notifier];

    /// The service name (`service.name` and the Lambda function name).
    pub fn service_name(self) -> &'static str {
        match self {
            Self::FileGenerator => "nedlia-file-generator",
            Self::Validator => "nedlia-validator",
            Self::Notifier => "nedlia-notifier",
        }
    }

    /// The queue its rule delivers to.
    pub fn default_queue(self) -> &'static str {
        match self {
            Self::FileGenerator => "file-generator-queue",
            Self::Validator => "validator-queue",
            Self::Notifier => "notifier-queue",
        }
    }

    /// The short name `--failures` uses (`file-generator`, `validator`, `notifier`).
    pub fn short_name(self) -> &'static str {
        match self {
            Self::FileGenerator => "file-generator",
            Self::Validator => "validator",
            Self::Notifier => "notifier",
        }
    }
}

/// The tracer and flush a worker reports through.
pub struct WorkerTelemetry {
    pub tracer: SharedTracer,
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

/// One worker: built once at cold start, then called once per invocation.
#[derive(Debug)]
pub struct Worker {
    config: WorkerConfig,
    consumer: SqsBatchConsumer,
    work: work::Work,
}

impl Worker {
    /// Opens the worker's database (one connection: records are processed one at a time) and
    /// output; call it before invocations.
    pub async fn new(config: WorkerConfig, telemetry: WorkerTelemetry) -> Result<Self, OpenError> {
        let tracer = telemetry.tracer;
        let db = events_db::Database::open(&config.database, Arc::clone(&tracer), true, 1).await?;
        let http = HttpClient::shared(
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .map_err(OpenError::HttpClient)?,
            Arc::clone(&tracer),
        );
        let work = work::Work::open(&config, db, Spans::shared(Arc::clone(&tracer)), http)?;
        let mut consumer = SqsBatchConsumer::shared(tracer, config.queue_name.clone())
            .default_function_name(config.kind.service_name())
            .carrier(RecordCarrier::EventBridgeDetail(
                EventBridgeTraceField::default(),
            ));
        if let Some(flush) = telemetry.flush {
            consumer = consumer.flush(flush, config.flush_timeout);
        }
        Ok(Self {
            config,
            consumer,
            work,
        })
    }

    /// The configuration the worker was built with.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Handles one SQS batch; failed records are reported in `batchItemFailures`.
    pub async fn handle(&self, event: SqsEvent, invocation: Invocation) -> SqsBatchResponse {
        self.consumer
            .handle(&event, invocation, |record: SqsRecord<'_>| {
                self.work.process(record.body())
            })
            .await
    }
}

/// Serves invocations from the Lambda Runtime API until the runtime stops.
pub async fn run(worker: Worker) -> Result<(), lambda_runtime::Error> {
    let worker = Arc::new(worker);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let worker = Arc::clone(&worker);
            async move {
                let invocation = Invocation::from(&event.context);
                Ok::<_, lambda_runtime::Error>(worker.handle(event.payload, invocation).await)
            }
        },
    ))
    .await
}

/// A record's failure, for `batchItemFailures` and its span.
fn failed(error_type: &'static str, e: impl std::fmt::Display) -> RecordError {
    RecordError::new(error_type, e)
}
