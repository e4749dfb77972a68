//! The process entry point shared by the Lambda binary and `throughline serve onboarding-lambda`:
//! telemetry from `OTEL_*`, the worker from the environment, then the Lambda Runtime API loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{ConfigError, Worker, WorkerConfig, WorkerTelemetry};

/// Why the process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("telemetry configuration")]
    TelemetryConfig(#[from] throughline_telemetry::ConfigError),
    #[error("telemetry")]
    Telemetry(#[from] throughline_telemetry::InitError),
    #[error(transparent)]
    Open(#[from] crate::steps::OpenError),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error("lambda runtime: {0}")]
    Lambda(lambda_runtime::Error),
}

/// Runs the worker as a Lambda process: cold start, then invocations until the runtime stops.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = WorkerConfig::from_env(&env)?;
    let telemetry_config = throughline_telemetry::TelemetryConfig::from_env(env.clone())?;
    let mut builder = throughline_telemetry::Telemetry::builder(telemetry_config)
        .default_service_name("onboarding-lambda")
        .default_service_version(env!("CARGO_PKG_VERSION"))
        .default_service_namespace("customer-onboarding");
    if config.flush {
        // Lambda freezes the environment between invocations: spans leave at the flush that
        // ends each invocation, not from a batch thread that would run frozen. With the flush
        // off (`ONBOARDING_FLUSH=off`) the worker keeps the SDK's batch processor, as a worker
        // without this layer would, and shows what the freeze does to it.
        builder = builder.export_on_flush();
    }
    let telemetry = builder.build()?;
    telemetry.install_global();
    telemetry.install_subscriber()?;
    let telemetry = Arc::new(telemetry);
    let flush_handle = telemetry.clone();
    // One worker thread: the gRPC connection of the metrics exporter makes progress while the
    // invocation thread waits on a flush.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    // Metrics first: the worker's instruments take their meter from the global provider.
    let metrics = {
        let _entered = runtime.enter();
        throughline_telemetry::metrics::install(&env, "onboarding-lambda", Duration::from_secs(60))
    };
    let worker_telemetry = WorkerTelemetry {
        tracer: opentelemetry::global::tracer("onboarding-lambda"),
        meter: opentelemetry::global::meter("onboarding-lambda"),
        flush: Some(Arc::new(move |timeout: Duration| {
            let telemetry = Arc::clone(&flush_handle);
            Box::pin(async move { telemetry.flush_async(timeout).await.is_exported() })
        })),
    };
    runtime.block_on(async move {
        let worker = tokio::task::spawn_blocking(move || Worker::new(config, worker_telemetry))
            .await
            .map_err(|e| RunError::Runtime(std::io::Error::other(e)))??;
        worker.connect_database().await?;
        crate::run(worker, metrics).await.map_err(RunError::Lambda)
    })
}
