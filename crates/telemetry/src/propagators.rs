//! The composite propagator that `OTEL_PROPAGATORS` asks for. Kept to one function so the
//! propagation crate's builder can replace it.

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::{PropagatorName, TelemetryConfig};

/// A propagator named in `OTEL_PROPAGATORS` that this build cannot provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OTEL_PROPAGATORS: {value:?} names {name}, which is not available in this build")]
pub struct PropagatorError {
    pub value: String,
    pub name: &'static str,
}

/// Builds the composite propagator (empty for `none`).
pub fn build_propagator(
    config: &TelemetryConfig,
) -> Result<TextMapCompositePropagator, PropagatorError> {
    let mut parts: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    for name in &config.propagators {
        match name {
            PropagatorName::TraceContext => parts.push(Box::new(TraceContextPropagator::new())),
            PropagatorName::Baggage => parts.push(Box::new(BaggagePropagator::new())),
            PropagatorName::XRay => {
                return Err(PropagatorError {
                    value: config.propagators_raw.clone(),
                    name: "xray",
                });
            }
        }
    }
    Ok(TextMapCompositePropagator::new(parts))
}
