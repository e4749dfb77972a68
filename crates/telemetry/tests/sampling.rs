//! `OTEL_TRACES_SAMPLER=parentbased_traceidratio`: the ratio decides only at a trace's root; a
//! span with a remote parent follows the parent's sampled flag whatever the ratio, so a trace
//! sampled out at the API is sampled out in every worker too (never half-kept), and one sampled
//! in is whole.

use opentelemetry::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, Tracer as _,
};
use throughline_telemetry::{Telemetry, TelemetryConfig};

fn telemetry(ratio: &str) -> Telemetry {
    let config = TelemetryConfig::from_env([
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", ratio),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ])
    .expect("valid");
    Telemetry::builder(config)
        .build()
        .expect("telemetry builds")
}

fn remote(sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        flags,
        true,
        TraceState::default(),
    ))
}

fn sampled(telemetry: &Telemetry, parent: &Context) -> bool {
    let tracer = telemetry.tracer("sampling-test").expect("enabled");
    let span = tracer.start_with_context("consumer", parent);
    let cx = parent.with_span(span);
    cx.span().span_context().is_sampled()
}

#[test]
fn the_ratio_decides_at_the_root_and_every_later_span_follows_the_parent() {
    let none = telemetry("0");
    assert!(!sampled(&none, &Context::new()), "ratio 0 samples no root");
    assert!(
        sampled(&none, &remote(true)),
        "a sampled parent is followed"
    );

    let all = telemetry("1");
    assert!(sampled(&all, &Context::new()), "ratio 1 samples every root");
    assert!(
        !sampled(&all, &remote(false)),
        "an unsampled parent is followed"
    );
}
