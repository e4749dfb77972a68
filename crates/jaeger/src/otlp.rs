//! OTLP spans in Jaeger's JSON model, the way Jaeger's own OTLP translator maps them: links as
//! `FOLLOWS_FROM`, events as logs, resource attributes as process tags, kind / status / scope as
//! tags.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_semantic_conventions::attribute::{
    OTEL_SCOPE_NAME, OTEL_SCOPE_VERSION, OTEL_STATUS_CODE, OTEL_STATUS_DESCRIPTION, SERVICE_NAME,
};
use throughline_store::{AnyValue, KeyValue, SpanKind, StoredSpan};

use crate::model::{
    ERROR_TAG, EVENT_FIELD, Log, Process, RefType, Reference, SPAN_KIND_TAG, Span, TRACE_STATE_TAG,
    Tag, Trace, ValueType,
};

fn string_tag(key: &str, value: impl Into<String>) -> Tag {
    Tag::string(key, value)
}

/// An OTLP value as a Jaeger tag: scalars keep their type; arrays, maps and bytes become
/// strings (JSON for composites, hex for bytes), as Jaeger's translator does.
pub fn tag(key: &str, value: Option<&AnyValue>) -> Tag {
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return string_tag(key, "");
    };
    match value {
        Value::StringValue(s) => string_tag(key, s.clone()),
        Value::BoolValue(b) => Tag {
            key: key.to_owned(),
            value_type: ValueType::Bool,
            value: (*b).into(),
        },
        Value::IntValue(i) => Tag {
            key: key.to_owned(),
            value_type: ValueType::Int64,
            value: (*i).into(),
        },
        Value::DoubleValue(d) => Tag {
            key: key.to_owned(),
            value_type: ValueType::Float64,
            value: serde_json::Number::from_f64(*d)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(d.to_string())),
        },
        Value::BytesValue(b) => Tag {
            key: key.to_owned(),
            value_type: ValueType::Binary,
            value: serde_json::Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        },
        Value::ArrayValue(_) | Value::KvlistValue(_) | Value::StringValueStrindex(_) => {
            string_tag(key, any_to_json(value).to_string())
        }
    }
}

fn any_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::StringValue(s) => s.clone().into(),
        Value::BoolValue(b) => (*b).into(),
        Value::IntValue(i) => (*i).into(),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::BytesValue(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        Value::ArrayValue(a) => a
            .values
            .iter()
            .map(|v| {
                v.value
                    .as_ref()
                    .map(any_to_json)
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect(),
        Value::KvlistValue(kv) => kv
            .values
            .iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                (
                    kv.key.clone(),
                    v.map(any_to_json).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        // A profiles-only string-table index: meaningless without the table, kept as a number.
        Value::StringValueStrindex(i) => (*i).into(),
    }
}

fn tags(attributes: &[KeyValue]) -> Vec<Tag> {
    attributes
        .iter()
        .map(|kv| tag(&kv.key, kv.value.as_ref()))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Jaeger's lowercase span kind, empty for unspecified (the tag is then left out).
pub fn span_kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// One stored span as a Jaeger span under `process_id`.
pub fn span(stored: &StoredSpan, process_id: &str) -> Span {
    let s = &stored.span;
    let trace_id = hex(&s.trace_id);
    let mut references = Vec::with_capacity(1 + s.links.len());
    if !s.parent_span_id.is_empty() {
        references.push(Reference {
            ref_type: RefType::ChildOf,
            trace_id: trace_id.clone(),
            span_id: hex(&s.parent_span_id),
        });
    }
    for link in &s.links {
        references.push(Reference {
            ref_type: RefType::FollowsFrom,
            trace_id: hex(&link.trace_id),
            span_id: hex(&link.span_id),
        });
    }
    let mut span_tags = tags(&s.attributes);
    if let Some(scope) = &stored.scope {
        if !scope.name.is_empty() {
            span_tags.push(string_tag(OTEL_SCOPE_NAME, scope.name.clone()));
        }
        if !scope.version.is_empty() {
            span_tags.push(string_tag(OTEL_SCOPE_VERSION, scope.version.clone()));
        }
    }
    let kind = span_kind_name(SpanKind::try_from(s.kind).unwrap_or(SpanKind::Unspecified));
    if !kind.is_empty() {
        span_tags.push(string_tag(SPAN_KIND_TAG, kind));
    }
    if let Some(status) = &s.status {
        match StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset) {
            StatusCode::Unset => {}
            StatusCode::Ok => span_tags.push(string_tag(OTEL_STATUS_CODE, "OK")),
            StatusCode::Error => {
                span_tags.push(string_tag(OTEL_STATUS_CODE, "ERROR"));
                span_tags.push(Tag {
                    key: ERROR_TAG.to_owned(),
                    value_type: ValueType::Bool,
                    value: true.into(),
                });
            }
        }
        if !status.message.is_empty() {
            span_tags.push(string_tag(OTEL_STATUS_DESCRIPTION, status.message.clone()));
        }
    }
    if !s.trace_state.is_empty() {
        span_tags.push(string_tag(TRACE_STATE_TAG, s.trace_state.clone()));
    }
    let logs = s
        .events
        .iter()
        .map(|event| {
            let mut fields = vec![string_tag(EVENT_FIELD, event.name.clone())];
            fields.extend(tags(&event.attributes));
            Log {
                timestamp: event.time_unix_nano / 1000,
                fields,
            }
        })
        .collect();
    Span {
        trace_id,
        span_id: hex(&s.span_id),
        operation_name: s.name.clone(),
        references,
        flags: s.flags & 0xff,
        start_time: s.start_time_unix_nano / 1000,
        duration: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1000,
        tags: span_tags,
        logs,
        process_id: process_id.to_owned(),
        warnings: None,
    }
}

/// The process of a span: its service and the other resource attributes.
fn process(stored: &StoredSpan) -> Process {
    let tags = stored
        .resource
        .attributes
        .iter()
        .filter(|kv| kv.key != SERVICE_NAME)
        .map(|kv| tag(&kv.key, kv.value.as_ref()))
        .collect();
    Process {
        service_name: stored.service_name.clone(),
        tags,
    }
}

/// A whole trace; spans sorted by start time, processes numbered `p1`, `p2`… in order of first
/// appearance. `None` for no spans.
pub fn trace(spans: &[StoredSpan]) -> Option<Trace> {
    let first = spans.first()?;
    let mut ordered: Vec<&StoredSpan> = spans.iter().collect();
    ordered.sort_by(|a, b| {
        (a.span.start_time_unix_nano, &a.span.span_id)
            .cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
    });
    let mut processes: Vec<(String, Process)> = Vec::new();
    let mut out = Vec::with_capacity(ordered.len());
    for stored in ordered {
        let p = process(stored);
        let id = match processes.iter().find(|(_, known)| *known == p) {
            Some((id, _)) => id.clone(),
            None => {
                let id = format!("p{}", processes.len() + 1);
                processes.push((id.clone(), p));
                id
            }
        };
        out.push(span(stored, &id));
    }
    Some(Trace {
        trace_id: hex(&first.span.trace_id),
        spans: out,
        processes: processes.into_iter().collect(),
        warnings: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{Status, span::Link};
    use throughline_store::{Resource, Span as OtlpSpan};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn stored(service: &str, span: OtlpSpan) -> StoredSpan {
        StoredSpan {
            service_name: service.into(),
            resource: Resource {
                attributes: vec![
                    kv(SERVICE_NAME, Value::StringValue(service.into())),
                    kv("host.name", Value::StringValue("h1".into())),
                ],
                ..Default::default()
            },
            scope: None,
            span,
        }
    }

    #[test]
    fn parent_is_child_of_and_links_follow_from() {
        let span = OtlpSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            links: vec![Link {
                trace_id: vec![9; 16],
                span_id: vec![8; 8],
                ..Default::default()
            }],
            ..Default::default()
        };
        let j = super::span(&stored("a", span), "p1");
        assert_eq!(j.references[0].ref_type, RefType::ChildOf);
        assert_eq!(j.references[0].span_id, "0303030303030303");
        assert_eq!(j.references[1].ref_type, RefType::FollowsFrom);
        assert_eq!(j.references[1].trace_id, "09".repeat(16));
    }

    #[test]
    fn error_status_sets_error_tag_and_kind_tag() {
        let span = OtlpSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind: SpanKind::Client as i32,
            status: Some(Status {
                code: StatusCode::Error as i32,
                message: "boom".into(),
            }),
            ..Default::default()
        };
        let j = super::span(&stored("a", span), "p1");
        let find = |k: &str| j.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
        assert_eq!(find("span.kind"), Some("client".into()));
        assert_eq!(find("otel.status_code"), Some("ERROR".into()));
        assert_eq!(find("error"), Some(true.into()));
        assert_eq!(find("otel.status_description"), Some("boom".into()));
    }

    #[test]
    fn services_get_one_process_each_without_service_name_tag() {
        let a = stored(
            "a",
            OtlpSpan {
                trace_id: vec![1; 16],
                span_id: vec![1; 8],
                ..Default::default()
            },
        );
        let b = stored(
            "b",
            OtlpSpan {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                ..Default::default()
            },
        );
        let t = trace(&[a.clone(), b, a]).expect("spans given");
        assert_eq!(t.processes.len(), 2);
        assert!(
            t.processes
                .values()
                .all(|p| p.tags.iter().all(|t| t.key != SERVICE_NAME))
        );
    }
}
