//! The process entry point of each worker, shared by its binary and `throughline serve
//! nedlia-…`: the configuration from the environment map, then the service kit's `run_main`
//! (telemetry from `OTEL_*` with spans leaving only at the flush that ends each invocation:
//! Lambda freezes the environment in between) around the Lambda Runtime API loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use throughline_service_kit::{RuntimeShape, ServiceIdentity, ServiceProcess};

use crate::{ConfigError, Kind, OpenError, Worker, WorkerConfig, WorkerTelemetry};

/// Why the process stopped with an error: a setting, or the process around the service.
pub type RunError = throughline_service_kit::MainError<ConfigError, ServiceError>;

/// Why the worker itself stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("lambda runtime")]
    Lambda(#[source] lambda_runtime::Error),
}

/// Runs the `kind` worker as a Lambda process.
pub fn run_main(kind: Kind, env: HashMap<String, String>) -> Result<(), RunError> {
    let config = WorkerConfig::from_env(kind, &env).map_err(RunError::Config)?;
    let process = ServiceProcess::new(ServiceIdentity {
        name: kind.service_name(),
        version: env!("CARGO_PKG_VERSION"),
        namespace: "nedlia",
    })
    .telemetry(|builder| builder.export_on_flush())
    .runtime(RuntimeShape::Workers(1))
    // A signal stops the worker at once (Lambda redelivers the batch in hand).
    .shutdown_grace(Duration::ZERO);
    throughline_service_kit::run_main(env, process, |cx| async move {
        let flush_handle = Arc::clone(&cx.telemetry);
        let telemetry = WorkerTelemetry {
            tracer: Arc::new(opentelemetry::global::tracer(kind.service_name())),
            flush: Some(Arc::new(move |timeout: Duration| {
                let telemetry = Arc::clone(&flush_handle);
                Box::pin(async move { telemetry.flush_async(timeout).await.is_exported() })
            })),
        };
        let worker = Worker::new(config, telemetry).await?;
        crate::run(worker).await.map_err(ServiceError::Lambda)
    })?;
    Ok(())
}

/// A binary's `main`: runs the worker with the process environment.
pub fn main_of(kind: Kind) -> std::process::ExitCode {
    match run_main(kind, std::env::vars().collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}: {}",
                kind.service_name(),
                throughline_service_kit::ErrorChain(&e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
