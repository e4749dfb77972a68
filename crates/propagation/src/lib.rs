//! Strict W3C Trace Context, W3C Baggage and AWS X-Ray propagators for OpenTelemetry.
//!
//! Everything here implements `opentelemetry::propagation::TextMapPropagator` and depends on the
//! `opentelemetry` API only: no runtime, no HTTP, no I/O. Carriers (HTTP headers, SQS message
//! attributes, …) live in `throughline-carriers`; the SDK is wired in `throughline-telemetry`.
//!
//! - [`TraceContextPropagator`]: W3C Trace Context level 2, stricter than the SDK's.
//! - [`BaggagePropagator`]: W3C Baggage, ours because the SDK's mishandles the grammar and
//!   percent-encoding (see [`baggage`]).
//! - [`XRayPropagator`]: `X-Amzn-Trace-Id` / `AWSTraceHeader`.
//! - [`Propagators`]: the combination `OTEL_PROPAGATORS` names.
//!
//! The header parsers are public so that fuzz targets and diagnostics can call them directly.

pub mod baggage;
pub mod composite;
mod hex;
pub mod trace_context;
pub mod traceparent;
pub mod tracestate;
pub mod xray;

pub use baggage::{
    BaggageError, BaggageErrorKind, BaggagePropagator, format_baggage, parse_baggage,
};
pub use composite::{PropagatorName, Propagators, PropagatorsError};
pub use trace_context::{ExtractedTracestate, TraceContextPropagator};
pub use traceparent::{
    RANDOM_TRACE_FLAG, Traceparent, TraceparentError, TraceparentErrorKind, format_traceparent,
    parse_traceparent,
};
pub use tracestate::{TracestateError, TracestateErrorKind, parse_tracestate};
pub use xray::{
    XRAY_HEADER, XRayError, XRayErrorKind, XRayPropagator, XRayTraceHeader, format_xray_header,
    parse_xray_header,
};
