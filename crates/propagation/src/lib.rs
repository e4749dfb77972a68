//! Strict W3C Trace Context, W3C Baggage and AWS X-Ray propagators for OpenTelemetry.
