//! The strict W3C Trace Context (level 2) propagator: `traceparent` and `tracestate`.

use std::sync::OnceLock;

use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceState};
use opentelemetry::{Context, TraceId};

use crate::traceparent::{TRACEPARENT_LEN, parse_traceparent, write_traceparent};
use crate::tracestate::parse_tracestate;

/// The `traceparent` header name.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE_HEADER: &str = "tracestate";

fn trace_context_fields() -> &'static [String; 2] {
    static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
    FIELDS.get_or_init(|| [TRACEPARENT_HEADER.to_owned(), TRACESTATE_HEADER.to_owned()])
}

/// A `tracestate` that is valid under level 2 but that `opentelemetry::trace::TraceState` cannot
/// hold (its key check predates level 2's key grammar, e.g. `foo@@bar` or a 15-character
/// system id). It rides in the [`Context`] beside the remote span context, tied to its trace id,
/// and is injected when the span context's own trace state is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractedTracestate {
    /// The trace the value arrived with.
    pub trace_id: TraceId,
    /// The validated members, joined as they will be sent (`k=v,k=v`).
    pub header: String,
}

/// Strict W3C Trace Context level 2 propagator.
///
/// Stricter than `opentelemetry_sdk::propagation::TraceContextPropagator`: exact lengths per
/// version, lowercase hex only, several `traceparent` values are invalid, the random flag (0x02)
/// is kept, and a `tracestate` that breaks the grammar or has more than 32 members is discarded
/// whole instead of being truncated. On an invalid `traceparent` nothing is extracted (the next
/// span starts a new trace) and `tracestate` is dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// A new propagator.
    pub const fn new() -> Self {
        Self { _private: () }
    }

    /// The remote span context the carrier holds, or `None` if it holds no valid `traceparent`.
    /// Also returns the level 2 `tracestate` the API's `TraceState` could not hold, if any.
    pub fn extract_span_context(
        &self,
        extractor: &dyn Extractor,
    ) -> Option<(SpanContext, Option<ExtractedTracestate>)> {
        let values = extractor.get_all(TRACEPARENT_HEADER)?;
        let [value] = values.as_slice() else {
            return None;
        };
        let traceparent = parse_traceparent(value).ok()?;

        // `get` first: most requests carry no tracestate, and `get_all` may allocate.
        let (trace_state, extra) = match extractor.get(TRACESTATE_HEADER) {
            None => (TraceState::NONE, None),
            Some(_) => match extractor.get_all(TRACESTATE_HEADER) {
                None => (TraceState::NONE, None),
                Some(values) => extract_tracestate(&values, traceparent.trace_id),
            },
        };
        let span_context = SpanContext::new(
            traceparent.trace_id,
            traceparent.parent_id,
            traceparent.trace_flags,
            true,
            trace_state,
        );
        Some((span_context, extra))
    }
}

fn extract_tracestate(
    values: &[&str],
    trace_id: TraceId,
) -> (TraceState, Option<ExtractedTracestate>) {
    let joined;
    let value = match values {
        [] => return (TraceState::NONE, None),
        [one] => *one,
        many => {
            joined = many.join(",");
            joined.as_str()
        }
    };
    let Ok(members) = parse_tracestate(value) else {
        return (TraceState::NONE, None);
    };
    if members.is_empty() {
        return (TraceState::NONE, None);
    }
    match TraceState::from_key_value(members.iter().copied()) {
        Ok(state) => (state, None),
        Err(_) => {
            let mut header = String::with_capacity(value.len());
            for (index, (key, val)) in members.iter().enumerate() {
                if index > 0 {
                    header.push(',');
                }
                header.push_str(key);
                header.push('=');
                header.push_str(val);
            }
            (
                TraceState::NONE,
                Some(ExtractedTracestate { trace_id, header }),
            )
        }
    }
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        let mut buf = [0u8; TRACEPARENT_LEN];
        write_traceparent(span_context, &mut buf);
        // write_traceparent writes ASCII hex digits and '-' only.
        injector.set(
            TRACEPARENT_HEADER,
            String::from_utf8_lossy(&buf).into_owned(),
        );

        let trace_state = span_context.trace_state();
        if *trace_state != TraceState::NONE {
            let header = trace_state.header();
            if !header.is_empty() {
                injector.set(TRACESTATE_HEADER, header);
            }
        } else if let Some(extra) = cx.get::<ExtractedTracestate>()
            && extra.trace_id == span_context.trace_id()
        {
            injector.set(TRACESTATE_HEADER, extra.header.clone());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match self.extract_span_context(extractor) {
            None => cx.clone(),
            Some((span_context, None)) => cx.with_remote_span_context(span_context),
            Some((span_context, Some(extra))) => {
                cx.with_remote_span_context(span_context).with_value(extra)
            }
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(trace_context_fields())
    }
}
