//! OpenTelemetry SDK set-up from `OTEL_*` variables, JSON logs, safe Lambda flush, test support.

pub mod config;

pub use config::{ConfigError, TelemetryConfig};
