//! Trace integrity worked out from a trace's spans, for a trace asked for by id (searches get
//! the store's own verdict, which also knows the settle time).

use std::collections::HashSet;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use throughline_store::{IntegrityProblem, SpanId, StoredSpan, TraceId};

use crate::query::{IntegrityReport, describe_problem};

/// The integrity of the spans of one trace: a root present and every parent arrived.
pub fn of_spans(trace_id: TraceId, spans: &[StoredSpan]) -> IntegrityReport {
    let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span.span_id.as_slice()).collect();
    let root = spans.iter().find(|s| s.span.parent_span_id.is_empty());
    let mut problems = Vec::new();
    if spans.is_empty() {
        problems.push("no spans stored for this trace".to_owned());
    } else if root.is_none() {
        problems.push(describe_problem(&IntegrityProblem::MissingRoot));
    }
    let orphans: Vec<&StoredSpan> = spans
        .iter()
        .filter(|s| !s.span.parent_span_id.is_empty() && !ids.contains(s.span.parent_span_id.as_slice()))
        .collect();
    if !orphans.is_empty() {
        let mut missing: Vec<SpanId> =
            orphans.iter().filter_map(|s| SpanId::from_slice(&s.span.parent_span_id)).collect();
        missing.sort();
        missing.dedup();
        problems.push(describe_problem(&IntegrityProblem::OrphanSpans {
            count: orphans.len() as u64,
            missing_parents: missing,
        }));
    }
    let mut services: Vec<String> = Vec::new();
    let mut ordered: Vec<&StoredSpan> = spans.iter().collect();
    ordered.sort_by_key(|s| s.span.start_time_unix_nano);
    for s in &ordered {
        if !services.contains(&s.service_name) {
            services.push(s.service_name.clone());
        }
    }
    let start = spans.iter().map(|s| s.span.start_time_unix_nano).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.span.end_time_unix_nano).max().unwrap_or(0);
    IntegrityReport {
        trace_id: trace_id.to_string(),
        integrity: if problems.is_empty() { "whole" } else { "incomplete" }.to_owned(),
        problems,
        root_service: root.map(|r| r.service_name.clone()),
        root_name: root.map(|r| r.span.name.clone()),
        services,
        span_count: spans.len() as u64,
        start_time: start / 1000,
        duration: end.saturating_sub(start) / 1000,
        has_error: spans
            .iter()
            .any(|s| s.span.status.as_ref().is_some_and(|st| st.code == StatusCode::Error as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughline_store::{Resource, Span};

    fn span(id: u8, parent: Option<u8>) -> StoredSpan {
        StoredSpan {
            service_name: format!("s{id}"),
            resource: Resource::default(),
            scope: None,
            span: Span {
                trace_id: vec![1; 16],
                span_id: vec![id; 8],
                parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn whole_when_root_and_all_parents_present() {
        let r = of_spans(TraceId([1; 16]), &[span(1, None), span(2, Some(1))]);
        assert_eq!(r.integrity, "whole");
        assert_eq!(r.root_service.as_deref(), Some("s1"));
    }

    #[test]
    fn orphans_and_missing_root_are_reported() {
        let r = of_spans(TraceId([1; 16]), &[span(2, Some(1)), span(3, Some(1))]);
        assert_eq!(r.integrity, "incomplete");
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems[1].contains("0101010101010101"), "{:?}", r.problems);
    }
}
