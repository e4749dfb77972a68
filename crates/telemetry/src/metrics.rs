//! OTLP export of a service's own metrics. [`crate::Telemetry`] builds the meter provider with
//! the tracer and logger providers (prefer that: [`crate::Telemetry::meter_provider`]); this
//! module keeps the older stand-alone set-up working on the same configuration.
//!
//! `OTEL_METRICS_EXPORTER` (`otlp`, the default, or `none`), `OTEL_EXPORTER_OTLP_METRICS_*` over
//! `OTEL_EXPORTER_OTLP_*` (endpoint, protocol, headers, timeout, compression),
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` and `OTEL_METRIC_EXPORT_INTERVAL` are
//! honoured exactly as for traces: with the specification's default `http/protobuf`, metrics go
//! to `…/v1/metrics` over HTTP, never gRPC to an HTTP port.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::config::{ExporterKind, TelemetryConfig};

/// Installs a global meter provider exporting over OTLP every `interval` (unless
/// `OTEL_METRIC_EXPORT_INTERVAL` says otherwise), its exports run on the current tokio runtime.
/// `None` when `OTEL_METRICS_EXPORTER=none` or `OTEL_SDK_DISABLED=true`, and, logged as an error
/// naming the setting, when the configuration is invalid or there is no runtime: use
/// [`crate::Telemetry`], which refuses to start instead.
pub fn install(
    env: &HashMap<String, String>,
    service_name: &'static str,
    interval: Duration,
) -> Option<SdkMeterProvider> {
    let config = match TelemetryConfig::from_env(env.clone()) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "metrics are off: the OpenTelemetry configuration is invalid");
            return None;
        }
    };
    let ExporterKind::Otlp(otlp) = &config.metrics_exporter else {
        return None;
    };
    if config.sdk_disabled {
        return None;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::error!("metrics are off: metrics::install was called outside a tokio runtime");
        return None;
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .build();
    let interval = config.metric_export_interval.unwrap_or(interval);
    match crate::setup::meter_provider(
        otlp,
        config.metric_temporality_delta,
        interval,
        &handle,
        &resource,
    ) {
        Ok(provider) => {
            opentelemetry::global::set_meter_provider(provider.clone());
            Some(provider)
        }
        Err(err) => {
            tracing::error!(error = %err, "metrics are off");
            None
        }
    }
}
