//! The EventBridge `TraceHeader`: the X-Ray header of the put span when the global propagator
//! writes one (its own process: the global propagator here includes X-Ray).

use opentelemetry::trace::TraceContextExt;
use throughline_instrument::EventBridgeProducer;
use throughline_propagation::{PropagatorName, Propagators, XRayPropagator};
use throughline_telemetry::testing::TestTracing;

#[test]
fn the_trace_header_names_the_put_span_only_when_xray_is_propagated() {
    let tracing = TestTracing::new();
    let producer = EventBridgeProducer::new(tracing.tracer("api"), "bus");

    opentelemetry::global::set_text_map_propagator(Propagators::from_names(&[
        PropagatorName::TraceContext,
    ]));
    let mut detail = serde_json::json!({});
    let span = producer.start_put(&mut detail, []).expect("an object");
    assert_eq!(producer.trace_header(&span), None);
    span.end();

    opentelemetry::global::set_text_map_propagator(Propagators::from_names(&[
        PropagatorName::TraceContext,
        PropagatorName::XRay,
    ]));
    let mut detail = serde_json::json!({});
    let span = producer.start_put(&mut detail, []).expect("an object");
    let header = producer.trace_header(&span).expect("xray is on");
    let parsed = XRayPropagator::span_context_from_header(&header).expect("a valid header");
    let own = span.context().span().span_context().clone();
    assert_eq!(parsed.trace_id(), own.trace_id());
    assert_eq!(parsed.span_id(), own.span_id());
    span.end();
}
