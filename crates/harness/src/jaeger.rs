//! The part of the Jaeger JSON trace the checker reads (`/api/traces/{id}`), until the shared
//! `crates/jaeger` model replaces it.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// `{"data": [...], "errors": [...]}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub data: Option<T>,
    #[serde(default)]
    pub errors: Option<Vec<ApiError>>,
}

#[derive(Debug, Deserialize)]
pub struct ApiError {
    pub msg: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Trace {
    #[serde(rename = "traceID", default)]
    pub trace_id: String,
    pub spans: Vec<Span>,
    #[serde(default)]
    pub processes: HashMap<String, Process>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(rename = "operationName", default)]
    pub operation_name: String,
    #[serde(rename = "processID", default)]
    pub process_id: String,
    #[serde(default)]
    pub references: Vec<Reference>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    #[serde(rename = "refType", default)]
    pub ref_type: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Process {
    #[serde(rename = "serviceName")]
    pub service_name: String,
}

impl Span {
    pub fn tag(&self, key: &str) -> Option<&Value> {
        self.tags.iter().find(|t| t.key == key).map(|t| &t.value)
    }
    /// `server`, `client`, `producer`, `consumer`, `internal` (the `span.kind` tag).
    pub fn kind(&self) -> &str {
        self.tag("span.kind")
            .and_then(Value::as_str)
            .unwrap_or("internal")
    }
    pub fn is_error(&self) -> bool {
        match self.tag("error") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }
    /// The parent (`CHILD_OF`), when there is one.
    pub fn parent(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|r| r.ref_type == "CHILD_OF")
            .map(|r| r.span_id.as_str())
    }
}

impl Trace {
    pub fn service_of(&self, span: &Span) -> &str {
        self.processes
            .get(&span.process_id)
            .map(|p| p.service_name.as_str())
            .unwrap_or("")
    }
}
