//! Fuzz target: `parse_traceparent` never panics, and what it accepts writes back canonically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::{SpanContext, TraceState};
use throughline_propagation::{format_traceparent, parse_traceparent};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = parse_traceparent(text) {
        let sc = SpanContext::new(
            parsed.trace_id,
            parsed.parent_id,
            parsed.trace_flags,
            true,
            TraceState::NONE,
        );
        let written = format_traceparent(&sc).expect("a parsed traceparent is valid");
        assert_eq!(
            parse_traceparent(&written)
                .map(|p| (p.trace_id, p.parent_id, p.trace_flags))
                .ok(),
            Some((parsed.trace_id, parsed.parent_id, parsed.trace_flags))
        );
    }
});
