//! The process entry point shared by the binary and `throughline serve load-generator`: the
//! configuration from the environment map, then the service kit's `run_main` around binding and
//! serving until SIGINT or SIGTERM.

use std::collections::HashMap;

use crate::{ConfigError, LoadgenConfig, ServeError, Telemetry};

/// Why the process stopped with an error: a setting, or the process around the service.
pub type RunError = throughline_service_kit::MainError<ConfigError, ServiceError>;

/// Why the service itself stopped with an error: binding its listener, or serving.
pub type ServiceError = throughline_service_kit::HttpServiceError<ServeError>;

/// Runs the load generator as a process: blocks until a shutdown signal, then flushes telemetry.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = LoadgenConfig::from_env(&env).map_err(RunError::Config)?;
    let process = shop_db::process::shop_process(crate::SERVICE_NAME, config.demo.clone());
    throughline_service_kit::run_main(env, process, |cx| async move {
        let listener = throughline_service_kit::bind(config.addr).await?;
        crate::serve(config, Telemetry::global(), listener, cx.shutdown_signal())
            .await
            .map_err(throughline_service_kit::HttpServiceError::Serve)?;
        Ok(())
    })?;
    Ok(())
}
