//! OpenTelemetry SDK set-up from `OTEL_*` variables, JSON logs, safe Lambda flush, test support.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use throughline_telemetry::{Telemetry, TelemetryConfig};
//! let config = TelemetryConfig::from_env(std::env::vars())?;
//! let telemetry = Telemetry::builder(config).default_service_name("onboarding-api").build()?;
//! telemetry.install_global();
//! telemetry.install_subscriber()?;
//! // ... serve; in Lambda, after each invocation:
//! let _outcome = telemetry.flush(std::time::Duration::from_secs(2));
//! # Ok(()) }
//! ```

pub mod config;
mod diagnosis;
mod export_runtime;
mod fan_out;
mod invocation;
pub mod logs;
pub mod metrics;
pub mod otlp_encode;
mod otlp_http;
mod processors;
pub mod propagators;
pub mod resource;
mod setup;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{ConfigError, TelemetryConfig};
pub use setup::{FlushOutcome, InitError, Telemetry, TelemetryBuilder};
pub use throughline_propagation::Propagators;
