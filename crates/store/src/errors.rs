//! Errors at a glance: what an error span says went wrong (its exception's type and message, else
//! its status message), and a service's errors grouped by exception type and message.

use std::collections::HashMap;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::StoreError;
use crate::api::*;
use crate::database::SpanRef;
use crate::facts::string_attribute;
use crate::store::Store;

/// The event name OpenTelemetry records an exception under.
const EXCEPTION_EVENT: &str = "exception";
/// The most recent traces an error group lists.
pub const RECENT_TRACES: usize = 5;

/// What went wrong in one error span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanError {
    /// `exception.type` of the span's first exception event, when it has one.
    pub exception_type: Option<String>,
    /// `exception.message`, else the status message, else empty.
    pub message: String,
    /// The span's status message (empty when it has none).
    pub status_message: String,
}

/// The error of a span with an error status (`None` for any other span).
pub fn span_error(span: &Span) -> Option<SpanError> {
    let status = span.status.as_ref()?;
    if status.code != StatusCode::Error as i32 {
        return None;
    }
    let exception = span.events.iter().find(|e| e.name == EXCEPTION_EVENT);
    let from_event = |key| exception.and_then(|e| string_attribute(&e.attributes, key));
    let exception_type = from_event(semconv::EXCEPTION_TYPE)
        .or_else(|| string_attribute(&span.attributes, semconv::ERROR_TYPE))
        .map(str::to_owned);
    let message = from_event(semconv::EXCEPTION_MESSAGE)
        .filter(|m| !m.is_empty())
        .unwrap_or(&status.message)
        .to_owned();
    Some(SpanError {
        exception_type,
        message,
        status_message: status.message.clone(),
    })
}

/// An error span of a trace, as the trace header and search results list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorSpan {
    pub service: String,
    pub span_name: String,
    pub span_id: SpanId,
    pub start_unix_nanos: u64,
    pub error: SpanError,
}

/// The error spans of a trace, earliest first.
pub fn error_spans(spans: &[StoredSpan]) -> Vec<ErrorSpan> {
    let mut out: Vec<ErrorSpan> = spans
        .iter()
        .filter_map(|s| {
            Some(ErrorSpan {
                error: span_error(&s.span)?,
                service: s.service_name.clone(),
                span_name: s.span.name.clone(),
                span_id: SpanId::from_slice(&s.span.span_id).unwrap_or(SpanId([0; 8])),
                start_unix_nanos: s.span.start_time_unix_nano,
            })
        })
        .collect();
    out.sort_by_key(|e| e.start_unix_nanos);
    out
}

/// Which errors to group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorQuery {
    pub service: Option<String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

/// Errors of one service with one exception type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorGroup {
    pub service: String,
    pub exception_type: Option<String>,
    pub message: String,
    /// The span names the errors were seen on, in first-seen order.
    pub span_names: Vec<String>,
    pub count: u64,
    /// The most recent first, at most [`RECENT_TRACES`] distinct traces.
    pub recent: Vec<SpanRef>,
}

impl Store {
    pub(crate) fn error_groups(&self, query: &ErrorQuery) -> Result<Vec<ErrorGroup>, StoreError> {
        let mut groups: HashMap<(String, Option<String>, String), ErrorGroup> = HashMap::new();
        // Past the cap the groups cover the most recent spans of the window.
        self.scan_spans(
            query.start_unix_nanos,
            query.end_unix_nanos,
            query.service.as_deref(),
            crate::database::MAX_SCANNED_SPANS,
            &mut |service, span| {
                let start = span.start_time_unix_nano;
                if start < query.start_unix_nanos || start > query.end_unix_nanos {
                    return;
                }
                let Some(error) = span_error(span) else {
                    return;
                };
                let key = (
                    service.to_owned(),
                    error.exception_type.clone(),
                    error.message.clone(),
                );
                let group = groups.entry(key).or_insert_with(|| ErrorGroup {
                    service: service.to_owned(),
                    exception_type: error.exception_type,
                    message: error.message,
                    span_names: Vec::new(),
                    count: 0,
                    recent: Vec::new(),
                });
                group.count += 1;
                if !group.span_names.contains(&span.name) {
                    group.span_names.push(span.name.clone());
                }
                let r = SpanRef {
                    trace_id: TraceId::from_slice(&span.trace_id).unwrap_or(TraceId([0; 16])),
                    span_id: SpanId::from_slice(&span.span_id).unwrap_or(SpanId([0; 8])),
                    start_unix_nanos: start,
                    duration_nanos: span.end_time_unix_nano.saturating_sub(start),
                };
                group
                    .recent
                    .retain(|x| x.trace_id != r.trace_id || x.start_unix_nanos > start);
                if !group.recent.iter().any(|x| x.trace_id == r.trace_id) {
                    group.recent.push(r);
                    group
                        .recent
                        .sort_by_key(|x| std::cmp::Reverse(x.start_unix_nanos));
                    group.recent.truncate(RECENT_TRACES);
                }
            },
        )?;
        let mut out: Vec<ErrorGroup> = groups.into_values().collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.service, &a.message).cmp(&(&b.service, &b.message)))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::kv;
    use opentelemetry_proto::tonic::trace::v1::Status;
    use opentelemetry_proto::tonic::trace::v1::span::Event;

    fn failed(message: &str, events: Vec<Event>) -> Span {
        Span {
            status: Some(Status {
                code: StatusCode::Error as i32,
                message: message.into(),
            }),
            events,
            ..Default::default()
        }
    }

    #[test]
    fn the_exception_says_what_went_wrong_else_the_status() {
        let event = Event {
            name: EXCEPTION_EVENT.into(),
            attributes: vec![
                kv(semconv::EXCEPTION_TYPE, "sqlx::Error"),
                kv(semconv::EXCEPTION_MESSAGE, "pool timed out"),
            ],
            ..Default::default()
        };
        assert_eq!(
            span_error(&failed("db error", vec![event])),
            Some(SpanError {
                exception_type: Some("sqlx::Error".into()),
                message: "pool timed out".into(),
                status_message: "db error".into(),
            })
        );
        assert_eq!(
            span_error(&failed("404 from pricing", vec![])),
            Some(SpanError {
                exception_type: None,
                message: "404 from pricing".into(),
                status_message: "404 from pricing".into(),
            })
        );
        assert_eq!(span_error(&Span::default()), None);
    }
}
