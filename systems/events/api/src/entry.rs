//! The process entry point shared by the binary and `throughline serve nedlia-api`: the
//! configuration from the environment map, then the service kit's `run_main` (telemetry from
//! `OTEL_*`, signals, the last flush) around binding and serving.

use std::collections::HashMap;
use std::sync::Arc;

use throughline_service_kit::{ServiceIdentity, ServiceProcess};

use crate::{ApiConfig, ConfigError, ServeError};

/// The service's name, as the seed gives it.
pub const SERVICE_NAME: &str = "nedlia-api";

/// Why the process stopped with an error: a setting, or the process around the service.
pub type RunError = throughline_service_kit::MainError<ConfigError, ServiceError>;

/// Why the service itself stopped with an error: binding its listener, or serving.
pub type ServiceError = throughline_service_kit::HttpServiceError<ServeError>;

/// Runs the API as a process until SIGINT or SIGTERM.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = ApiConfig::from_env(&env).map_err(RunError::Config)?;
    let process = ServiceProcess::new(ServiceIdentity {
        name: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        namespace: "nedlia",
    });
    throughline_service_kit::run_main(env, process, |cx| async move {
        let listener = throughline_service_kit::bind(config.addr).await?;
        let tracer = Arc::new(opentelemetry::global::tracer(SERVICE_NAME));
        crate::serve(config, tracer, listener, cx.shutdown_signal())
            .await
            .map_err(throughline_service_kit::HttpServiceError::Serve)?;
        Ok(())
    })?;
    Ok(())
}
