//! Jaeger's JSON model, as its query service answers `/api/*`: the `data`/`errors` envelope,
//! traces with their spans, references, tags, logs and processes, operations and dependency links,
//! plus throughline's own integrity report.
//!
//! Every type serializes the way Jaeger does and deserializes leniently: a missing field takes its
//! default (as Jaeger's Go model reads zero values), so a client can read partial documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Jaeger's tag for the span kind (not an OpenTelemetry attribute, so not in semconv).
pub const SPAN_KIND_TAG: &str = "span.kind";
/// Jaeger's boolean error tag.
pub const ERROR_TAG: &str = "error";
/// Jaeger's tag for the W3C `tracestate`.
pub const TRACE_STATE_TAG: &str = "w3c.tracestate";
/// The log field holding an event's name.
pub const EVENT_FIELD: &str = "event";

/// Jaeger's answer to every `/api/*` call: `data` on success, `errors` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(default = "Option::default")]
    pub data: Option<T>,
    #[serde(default)]
    pub total: usize,
    #[serde(default)]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub errors: Option<Vec<ErrorBody>>,
}

impl<T> Envelope<Vec<T>> {
    /// A successful answer; `total` is the number of items.
    pub fn list(data: Vec<T>) -> Self {
        Envelope {
            total: data.len(),
            data: Some(data),
            limit: 0,
            offset: 0,
            errors: None,
        }
    }
}

impl<T> Envelope<T> {
    /// A failed answer with its HTTP status code and message.
    pub fn error(code: u16, msg: impl Into<String>) -> Self {
        Self {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![ErrorBody {
                code,
                msg: msg.into(),
            }]),
        }
    }

    /// The data, or the errors the server gave (an answer with neither is an empty error list).
    pub fn into_result(self) -> Result<T, Vec<ErrorBody>> {
        match (self.errors, self.data) {
            (Some(errors), _) if !errors.is_empty() => Err(errors),
            (_, Some(data)) => Ok(data),
            _ => Err(Vec::new()),
        }
    }
}

/// One error of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub msg: String,
}

/// One trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    pub processes: BTreeMap<String, Process>,
    pub warnings: Option<Vec<String>>,
}

impl Trace {
    /// The service of a span, by its process (empty when the process is unknown).
    pub fn service_of(&self, span: &Span) -> &str {
        self.processes
            .get(&span.process_id)
            .map_or("", |p| p.service_name.as_str())
    }

    /// The span with this id.
    pub fn span(&self, span_id: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.span_id == span_id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(rename = "operationName")]
    pub operation_name: String,
    pub references: Vec<Reference>,
    pub flags: u32,
    /// Microseconds since the Unix epoch.
    #[serde(rename = "startTime")]
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

impl Span {
    /// The tag named `key`.
    pub fn tag(&self, key: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.key == key)
    }

    /// The `span.kind` tag (`server`, `client`, `producer`, `consumer`, `internal`), empty when
    /// the span has none.
    pub fn kind(&self) -> &str {
        self.tag(SPAN_KIND_TAG)
            .and_then(|t| t.value.as_str())
            .unwrap_or("")
    }

    /// The span id of the parent (the first `CHILD_OF` reference).
    pub fn parent_span_id(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|r| r.ref_type == RefType::ChildOf)
            .map(|r| r.span_id.as_str())
    }
}

/// How a span refers to another: its parent, or a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefType {
    /// The zero value of Jaeger's `SpanRefType`, so a reference without `refType` is a parent.
    #[default]
    ChildOf,
    FollowsFrom,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reference {
    #[serde(rename = "refType")]
    pub ref_type: RefType,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// The type of a tag's value, as Jaeger names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    #[default]
    String,
    Bool,
    Int64,
    Float64,
    Binary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tag {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    pub value: serde_json::Value,
}

impl Tag {
    /// A string tag.
    pub fn string(key: &str, value: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            value_type: ValueType::String,
            value: serde_json::Value::String(value.into()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Log {
    /// Microseconds since the Unix epoch.
    pub timestamp: u64,
    pub fields: Vec<Tag>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Process {
    #[serde(rename = "serviceName")]
    pub service_name: String,
    pub tags: Vec<Tag>,
}

/// An operation of `/api/operations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    pub name: String,
    /// Jaeger's lowercase span kind, empty when unspecified.
    #[serde(rename = "spanKind")]
    pub span_kind: String,
}

/// A link of `/api/dependencies`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    #[serde(rename = "callCount")]
    pub call_count: u64,
}

/// One trace's integrity, as throughline's `/api/throughline/integrity` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntegrityReport {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// `whole`, `settling` or `incomplete`.
    pub integrity: String,
    /// Every reason a trace is incomplete, in words.
    pub problems: Vec<String>,
    #[serde(rename = "rootService")]
    pub root_service: Option<String>,
    #[serde(rename = "rootName")]
    pub root_name: Option<String>,
    pub services: Vec<String>,
    #[serde(rename = "spanCount")]
    pub span_count: u64,
    /// Microseconds since the epoch.
    #[serde(rename = "startTime")]
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    #[serde(rename = "hasError")]
    pub has_error: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_documents_read_with_defaults() {
        // What `throughline verify` and `load` read: ids, processes, references, kinds.
        let body = json!({"data": [{
            "traceID": "t",
            "spans": [
                {"spanID": "a", "processID": "p1", "references": [],
                 "tags": [{"key": "span.kind", "type": "string", "value": "server"}]},
                {"spanID": "b", "processID": "p2", "references": [{"spanID": "a"}]},
                {"spanID": "c", "processID": "p2",
                 "references": [{"refType": "FOLLOWS_FROM", "traceID": "u", "spanID": "z"}]}
            ],
            "processes": {"p1": {"serviceName": "api"}, "p2": {"serviceName": "worker"}}
        }]});
        let envelope: Envelope<Vec<Trace>> = serde_json::from_value(body).expect("reads");
        let traces = envelope.into_result().expect("data");
        let t = &traces[0];
        assert_eq!(t.spans[0].kind(), "server");
        assert_eq!(t.spans[1].parent_span_id(), Some("a"));
        assert_eq!(t.spans[2].parent_span_id(), None);
        assert_eq!(t.service_of(&t.spans[1]), "worker");
        assert_eq!(t.service_of(t.span("a").expect("a")), "api");
    }

    #[test]
    fn error_envelopes_round_trip() {
        let text = serde_json::to_string(&Envelope::<()>::error(400, "limit: too many"))
            .expect("serializes");
        assert_eq!(
            text,
            r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"limit: too many"}]}"#
        );
        let back: Envelope<Vec<Trace>> = serde_json::from_str(&text).expect("reads");
        assert_eq!(back.into_result().unwrap_err()[0].msg, "limit: too many");
    }

    #[test]
    fn spans_serialize_in_jaegers_field_names_and_back() {
        let span = Span {
            trace_id: "t".into(),
            span_id: "s".into(),
            references: vec![Reference {
                ref_type: RefType::FollowsFrom,
                trace_id: "t".into(),
                span_id: "p".into(),
            }],
            tags: vec![Tag {
                key: "n".into(),
                value_type: ValueType::Int64,
                value: 3.into(),
            }],
            ..Span::default()
        };
        let value = serde_json::to_value(&span).expect("serializes");
        assert_eq!(value["references"][0]["refType"], "FOLLOWS_FROM");
        assert_eq!(value["tags"][0]["type"], "int64");
        assert_eq!(value["processID"], "");
        let back: Span = serde_json::from_value(value).expect("reads");
        assert_eq!(back, span);
    }
}
