//! The process entry point shared by the binary and `throughline serve onboarding-api`: the
//! configuration from the environment map, then the service kit's `run_main` (telemetry from
//! `OTEL_*`, signals, the last flush) around binding and serving until SIGINT or SIGTERM.

use std::collections::HashMap;
use std::time::Duration;

use throughline_service_kit::{ServiceIdentity, ServiceProcess};

use crate::{ApiConfig, ConfigError, ServeError, Telemetry};

/// How often the business metrics are pushed.
const METRICS_INTERVAL: Duration = Duration::from_secs(10);

/// Why the process stopped with an error: a setting, or the process around the service.
pub type RunError = throughline_service_kit::MainError<ConfigError, ServiceError>;

/// Why the service itself stopped with an error: binding its listener, or serving.
pub type ServiceError = throughline_service_kit::HttpServiceError<ServeError>;

/// Runs the API as a process: blocks until a shutdown signal, then flushes telemetry.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = ApiConfig::from_env(&env).map_err(RunError::Config)?;
    let process = ServiceProcess::new(ServiceIdentity {
        name: "onboarding-api",
        version: env!("CARGO_PKG_VERSION"),
        namespace: "customer-onboarding",
    })
    .telemetry(|builder| builder.default_metric_export_interval(METRICS_INTERVAL));
    throughline_service_kit::run_main(env, process, |cx| async move {
        let listener = throughline_service_kit::bind(config.addr).await?;
        // The instruments take their meter from the global provider the telemetry builder's
        // `install_global` set; the last metric export happens when the telemetry shuts down.
        crate::serve(config, Telemetry::global(), listener, cx.shutdown_signal())
            .await
            .map_err(throughline_service_kit::HttpServiceError::Serve)?;
        Ok(())
    })?;
    Ok(())
}
