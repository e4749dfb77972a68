//! Property tests: inject then extract gives the same context, and no parser panics on any input.

use std::collections::HashMap;

use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, KeyValue, SpanId, TraceId};
use proptest::prelude::*;
use throughline_propagation::{
    BaggagePropagator, TraceContextPropagator, XRayPropagator, parse_baggage, parse_traceparent,
    parse_tracestate, parse_xray_header,
};

fn span_context() -> impl Strategy<Value = SpanContext> {
    (
        1u128..,
        1u64..,
        0u8..4,
        proptest::collection::vec(("[a-z][a-z0-9_*/-]{0,10}", "[!-+\\--<>-~]{1,10}"), 0..5),
    )
        .prop_map(|(trace, span, flags, members)| {
            let mut seen = Vec::new();
            let members: Vec<_> = members
                .into_iter()
                .filter(|(k, _)| {
                    let fresh = !seen.contains(k);
                    seen.push(k.clone());
                    fresh
                })
                .collect();
            SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                TraceFlags::new(flags),
                true,
                TraceState::from_key_value(members).unwrap_or_default(),
            )
        })
}

proptest! {
    #[test]
    fn trace_context_round_trip(sc in span_context()) {
        let p = TraceContextPropagator::new();
        let mut carrier = HashMap::new();
        p.inject_context(&Context::new().with_remote_span_context(sc.clone()), &mut carrier);
        let cx = p.extract_with_context(&Context::new(), &carrier);
        prop_assert_eq!(cx.span().span_context().clone(), sc);
    }

    #[test]
    fn xray_round_trip(trace in 1u128.., span in 1u64.., sampled: bool) {
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED };
        let sc = SpanContext::new(TraceId::from(trace), SpanId::from(span), flags, true, TraceState::NONE);
        let p = XRayPropagator::new();
        let mut carrier = HashMap::new();
        p.inject_context(&Context::new().with_remote_span_context(sc.clone()), &mut carrier);
        let cx = p.extract_with_context(&Context::new(), &carrier);
        prop_assert_eq!(cx.span().span_context().clone(), sc);
    }

    #[test]
    fn baggage_round_trip(entries in proptest::collection::hash_map("[A-Za-z0-9!#$&'*+.^_`|~-]{1,12}", "\\PC{0,20}", 0..10)) {
        let baggage: Baggage = entries.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
        let p = BaggagePropagator::new();
        let mut carrier = HashMap::new();
        p.inject_context(&Context::new().with_baggage(baggage), &mut carrier);
        let cx = p.extract_with_context(&Context::new(), &carrier);
        prop_assert_eq!(cx.baggage().len(), entries.len());
        for (k, v) in &entries {
            prop_assert_eq!(cx.baggage().get(k.as_str()).map(|s| s.as_str().to_owned()), Some(v.clone()));
        }
    }

    #[test]
    fn parsers_never_panic(input in "\\PC{0,120}|[0-9a-f-]{50,60}|[ -~]{0,300}") {
        let _ = parse_traceparent(&input);
        let _ = parse_tracestate(&input);
        let _ = parse_baggage(&input);
        let _ = parse_xray_header(&input);
    }

    #[test]
    fn traceparent_parser_never_panics_near_valid(prefix in "[0-9a-f]{2}", tail in "[0-9a-fA-F.-]{40,70}") {
        let _ = parse_traceparent(&format!("{prefix}-{tail}"));
    }
}
