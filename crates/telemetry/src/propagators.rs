//! The composite propagator that `OTEL_PROPAGATORS` asks for, from `throughline-propagation`
//! (strict W3C Trace Context, W3C Baggage, X-Ray).

use throughline_propagation::Propagators;

use crate::config::TelemetryConfig;

/// Builds the propagators the configuration names, in order.
pub fn build_propagator(config: &TelemetryConfig) -> Propagators {
    Propagators::from_names(&config.propagators)
}
