//! OTLP export of a service's own metrics: an SDK meter provider with a periodic reader, beside
//! the tracer and logger providers that [`crate::Telemetry`] builds.
//!
//! `OTEL_METRICS_EXPORTER=none` turns it off; the endpoint comes from the standard
//! `OTEL_EXPORTER_OTLP_*` variables. Build it inside the tokio runtime that will carry the gRPC
//! connection: the reader's own thread only hands batches to it.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

/// Installs a global meter provider exporting over OTLP/gRPC every `interval`; `None` when
/// `OTEL_METRICS_EXPORTER=none` or `OTEL_SDK_DISABLED=true`.
pub fn install(
    env: &HashMap<String, String>,
    service_name: &'static str,
    interval: Duration,
) -> Option<SdkMeterProvider> {
    let is = |k: &str, v: &str| env.get(k).is_some_and(|x| x.trim().eq_ignore_ascii_case(v));
    if is("OTEL_METRICS_EXPORTER", "none") || is("OTEL_SDK_DISABLED", "true") {
        return None;
    }
    let mut builder = opentelemetry_otlp::MetricExporter::builder().with_tonic();
    if let Some(endpoint) = env
        .get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .or_else(|| env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let exporter = match builder.build() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "the OTLP metrics exporter could not be built; metrics are off");
            return None;
        }
    };
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    Some(provider)
}
