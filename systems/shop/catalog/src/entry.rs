//! The process entry point shared by the binary and `throughline serve product-catalog`: the
//! configuration from the environment map, then the service kit's `run_main` around binding and
//! serving until SIGINT or SIGTERM.

use std::collections::HashMap;

use crate::{CatalogConfig, ConfigError, ServeError, Telemetry};

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

/// Runs the catalog as a process: blocks until a shutdown signal, then flushes telemetry.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = CatalogConfig::from_env(&env)?;
    let process = shop_db::process::shop_process(crate::SERVICE_NAME, config.demo.clone());
    throughline_service_kit::run_main(env, process, |cx| async move {
        let listener = throughline_service_kit::bind(config.addr).await?;
        crate::serve(config, Telemetry::global(), listener, cx.shutdown_signal()).await?;
        Ok(())
    })?;
    Ok(())
}
