//! The onboarding Lambda worker of the reference system.
//!
//! A real `lambda_runtime` handler for SQS events: per invocation a SERVER span with `faas.*`
//! attributes, a batch span linking every record, per record a CONSUMER span continuing the
//! producer's trace (or linking to it), and the processing steps of seed 002 as child spans.
//! Failed records are reported in `batchItemFailures`; spans are flushed before each invocation
//! returns. [`run`] is the whole binary; `main.rs` and `throughline serve onboarding-lambda` call it.

pub mod config;
pub mod database;
pub mod entry;
pub mod handler;
pub mod names;
pub mod open;
pub mod outbox;
pub mod step;
pub mod steps;

use std::sync::Arc;

pub use config::{ConfigError, ConsumerContext, DatabaseConfig, WorkerConfig};
pub use handler::{FlushFn, Invocation, Worker, WorkerTelemetry};

/// Serves invocations from the Lambda Runtime API named by `AWS_LAMBDA_RUNTIME_API` until the
/// runtime stops.
/// `metrics`, when given, is flushed before an invocation returns (at most once a second, within
/// 500 ms), so nothing waits long in a frozen environment.
pub async fn run(
    worker: Worker,
    metrics: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
) -> Result<(), lambda_runtime::Error> {
    let worker = Arc::new(worker);
    let last_push = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let (worker, metrics, last_push) = (worker.clone(), metrics.clone(), last_push.clone());
            async move {
                let invocation = Invocation::from(&event.context);
                let response = worker.handle(event.payload, invocation).await;
                if let Some(metrics) = metrics {
                    let due = {
                        // A poisoned lock only means a push panicked; the instant is still usable.
                        let mut last = last_push.lock().unwrap_or_else(|p| p.into_inner());
                        let due = last.elapsed() >= std::time::Duration::from_secs(1);
                        if due {
                            *last = std::time::Instant::now();
                        }
                        due
                    };
                    if due {
                        let flush = tokio::task::spawn_blocking(move || metrics.force_flush());
                        if tokio::time::timeout(std::time::Duration::from_millis(500), flush)
                            .await
                            .is_err()
                        {
                            tracing::warn!("metrics flush did not finish within 500 ms");
                        }
                    }
                }
                Ok::<_, lambda_runtime::Error>(response)
            }
        },
    ))
    .await
}
