//! The process entry point shared by the binary and `throughline serve nedlia-api`: the
//! configuration from the environment map, then the service kit's `run_main` (telemetry from
//! `OTEL_*`, signals, the last flush) around binding and serving.

use std::collections::HashMap;
use std::sync::Arc;

use throughline_service_kit::{ServiceIdentity, ServiceProcess};

use crate::{ApiConfig, ConfigError, ServeError};

/// The service's name, as the seed gives it.
pub const SERVICE_NAME: &str = "nedlia-api";

/// Why the process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Process(#[from] throughline_service_kit::RunError<ServiceError>),
}

/// Why the service itself stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Bind(#[from] throughline_service_kit::BindError),
}

/// Runs the API as a process until SIGINT or SIGTERM.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = ApiConfig::from_env(&env)?;
    let process = ServiceProcess::new(ServiceIdentity {
        name: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        namespace: "nedlia",
    });
    throughline_service_kit::run_main(env, process, |cx| async move {
        let listener = throughline_service_kit::bind(config.addr).await?;
        let tracer = Arc::new(opentelemetry::global::tracer(SERVICE_NAME));
        crate::serve(config, tracer, listener, cx.shutdown_signal()).await?;
        Ok(())
    })?;
    Ok(())
}
