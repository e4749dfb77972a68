//! The process entry point shared by the binary and `throughline serve onboarding-api`:
//! telemetry from `OTEL_*`, configuration from the environment, serve until SIGINT or SIGTERM.

use std::collections::HashMap;
use std::time::Duration;

use crate::{ApiConfig, ConfigError, ServeError, Telemetry};

/// How often the business metrics are pushed.
const METRICS_INTERVAL: Duration = Duration::from_secs(10);

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
    Serve(#[from] ServeError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the API as a process: blocks until a shutdown signal, then flushes telemetry.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let config = ApiConfig::from_env(&env)?;
    let telemetry_config = throughline_telemetry::TelemetryConfig::from_env(env.clone())?;
    let telemetry = throughline_telemetry::Telemetry::builder(telemetry_config)
        .default_service_name("onboarding-api")
        .default_service_version(env!("CARGO_PKG_VERSION"))
        .default_service_namespace("customer-onboarding")
        .build()?;
    telemetry.install_global();
    telemetry.install_subscriber()?;
    let runtime = tokio::runtime::Runtime::new().map_err(RunError::Runtime)?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| RunError::Bind {
                addr: config.addr,
                source,
            })?;
        // Metrics first: the instruments take their meter from the global provider.
        let metrics =
            throughline_telemetry::metrics::install(&env, "onboarding-api", METRICS_INTERVAL);
        let served = crate::serve(config, Telemetry::global(), listener, shutdown_signal()).await;
        if let Some(metrics) = metrics {
            // Blocking (waits for the last export): off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || metrics.shutdown()).await;
        }
        served?;
        Ok(())
    });
    let _ = telemetry.shutdown(Duration::from_secs(2));
    result
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
