//! The guard's propagator is the one `OTEL_PROPAGATORS` names, built by `throughline-propagation`.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use throughline_telemetry::testing::InMemorySpanExporter;
use throughline_telemetry::{Telemetry, TelemetryConfig};

fn inject(vars: &[(&str, &str)]) -> HashMap<String, String> {
    let config = TelemetryConfig::from_env(vars.iter().copied()).expect("valid");
    let telemetry = Telemetry::builder(config)
        .span_exporter(InMemorySpanExporter::new())
        .build()
        .expect("telemetry builds");
    let tracer = telemetry.tracer("propagators-test").expect("enabled");
    let span = tracer.start("send");
    let cx = Context::current_with_span(span);
    let mut carrier = HashMap::new();
    telemetry.propagator().inject_context(&cx, &mut carrier);
    carrier
}

#[test]
fn default_propagators_write_traceparent_only() {
    let carrier = inject(&[]);
    assert!(carrier.contains_key("traceparent"), "{carrier:?}");
    assert!(!carrier.contains_key("x-amzn-trace-id"), "{carrier:?}");
}

#[test]
fn xray_and_tracecontext_write_both_headers() {
    let carrier = inject(&[("OTEL_PROPAGATORS", "xray,tracecontext")]);
    assert!(carrier.contains_key("traceparent"), "{carrier:?}");
    let xray = carrier
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amzn-trace-id"))
        .map(|(_, v)| v.clone());
    assert!(
        xray.is_some_and(|v| v.starts_with("Root=1-")),
        "{carrier:?}"
    );
}

#[test]
fn none_writes_nothing() {
    assert!(inject(&[("OTEL_PROPAGATORS", "none")]).is_empty());
}
