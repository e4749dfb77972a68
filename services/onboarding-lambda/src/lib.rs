//! The onboarding Lambda worker of the reference system.
//!
//! A real `lambda_runtime` handler for SQS events: per invocation a SERVER span with `faas.*`
//! attributes, a batch span linking every record, per record a CONSUMER span continuing the
//! producer's trace (or linking to it), and the processing steps of seed 002 as child spans.
//! Failed records are reported in `batchItemFailures`; spans are flushed before each invocation
//! returns. [`run`] is the whole binary; `main.rs` and `throughline serve onboarding-lambda` call it.

pub mod config;
pub mod entry;
pub mod handler;
pub mod names;
pub mod steps;

use std::sync::Arc;

pub use config::{ConfigError, ConsumerContext, WorkerConfig};
pub use handler::{FlushFn, Invocation, Worker, WorkerTelemetry};

/// Serves invocations from the Lambda Runtime API named by `AWS_LAMBDA_RUNTIME_API` until the
/// runtime stops.
pub async fn run(worker: Worker) -> Result<(), lambda_runtime::Error> {
    let worker = Arc::new(worker);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let worker = worker.clone();
            async move {
                let invocation = Invocation::from(&event.context);
                Ok::<_, lambda_runtime::Error>(worker.handle(event.payload, invocation).await)
            }
        },
    ))
    .await
}
