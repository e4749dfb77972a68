//! `install_global` is the only thing that touches OpenTelemetry's globals (own test binary, so
//! no other test sees them).

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use throughline_telemetry::testing::InMemorySpanExporter;
use throughline_telemetry::{Telemetry, TelemetryConfig};

#[test]
fn install_global_sets_the_tracer_provider_and_the_propagator() {
    let exporter = InMemorySpanExporter::new();
    let config =
        TelemetryConfig::from_env([("OTEL_PROPAGATORS", "tracecontext,xray")]).expect("valid");
    let telemetry = Telemetry::builder(config)
        .span_exporter(exporter.clone())
        .build()
        .expect("telemetry builds");

    // Before: the globals are the API's no-ops.
    let mut before = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&Context::current(), &mut before)
    });
    assert!(before.is_empty());

    telemetry.install_global();
    let tracer = opentelemetry::global::tracer("global-test");
    let mut carrier = HashMap::new();
    tracer.in_span("global-span", |cx| {
        assert!(cx.span().span_context().is_sampled());
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    });
    assert!(carrier.contains_key("traceparent"), "{carrier:?}");
    assert!(
        carrier
            .keys()
            .any(|k| k.eq_ignore_ascii_case("x-amzn-trace-id")),
        "{carrier:?}"
    );
    assert!(telemetry.flush(Duration::from_secs(5)).is_exported());
    exporter.span_tree().find("global-span");
}
