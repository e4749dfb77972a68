//! The process entry point shared by the Lambda binary and `throughline serve onboarding-lambda`:
//! the worker's configuration from the environment map, then the service kit's `run_main`
//! (telemetry from `OTEL_*`, signals, the last flush) around the Lambda Runtime API loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use throughline_service_kit::{RuntimeShape, ServiceIdentity, ServiceProcess};

use crate::{ConfigError, Worker, WorkerConfig, WorkerTelemetry};

/// Why the process stopped with an error: a setting, or the process around the service.
pub type RunError = throughline_service_kit::MainError<ConfigError, ServiceError>;

/// Why the worker itself stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Open(#[from] crate::steps::OpenError),
    #[error("the worker's set-up task stopped")]
    SetUp(#[source] tokio::task::JoinError),
    #[error("lambda runtime")]
    Lambda(#[source] lambda_runtime::Error),
}

/// Runs the worker as a Lambda process: cold start, then invocations until the runtime stops.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = WorkerConfig::from_env(&env).map_err(RunError::Config)?;
    let flush = config.flush;
    let process = ServiceProcess::new(ServiceIdentity {
        name: "onboarding-lambda",
        version: env!("CARGO_PKG_VERSION"),
        namespace: "customer-onboarding",
    })
    .telemetry(move |builder| {
        // Lambda freezes the environment between invocations: spans leave at the flush that
        // ends each invocation, not from a batch thread that would run frozen. With the flush
        // off (`ONBOARDING_FLUSH=off`) the worker keeps the SDK's batch processor, as a worker
        // without this layer would, and shows what the freeze does to it.
        let builder = builder.default_metric_export_interval(Duration::from_secs(60));
        if flush {
            builder.export_on_flush()
        } else {
            builder
        }
    })
    // One worker thread: the gRPC connection of the metrics exporter makes progress while the
    // invocation thread waits on a flush.
    .runtime(RuntimeShape::Workers(1))
    // A signal stops the worker at once, as it did before it had handlers (Lambda redelivers
    // the batch in hand); what was already flushed stays flushed.
    .shutdown_grace(Duration::ZERO);
    throughline_service_kit::run_main(env, process, |cx| async move {
        // The worker's instruments take their meter from the global provider the telemetry
        // builder's `install_global` set.
        let metrics = cx.telemetry.meter_provider().cloned();
        let flush_handle = Arc::clone(&cx.telemetry);
        let worker_telemetry = WorkerTelemetry {
            tracer: opentelemetry::global::tracer("onboarding-lambda"),
            meter: opentelemetry::global::meter("onboarding-lambda"),
            flush: Some(Arc::new(move |timeout: Duration| {
                let telemetry = Arc::clone(&flush_handle);
                Box::pin(async move { telemetry.flush_async(timeout).await.is_exported() })
            })),
        };
        let worker = tokio::task::spawn_blocking(move || Worker::new(config, worker_telemetry))
            .await
            .map_err(ServiceError::SetUp)??;
        worker.connect_database().await?;
        crate::run(worker, metrics)
            .await
            .map_err(ServiceError::Lambda)
    })?;
    Ok(())
}
