//! The few facts of a span that ingest derives everything from, read once from the OTLP model.

use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_semantic_conventions::attribute as semconv;
use opentelemetry_semantic_conventions::resource as semres;

use crate::api::{AnyValue, KeyValue, NodeKind, Resource, Span};

/// `service.name` when a resource has none, as the SDKs name it.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Ids are kept as integers inside the store: a trace id as `u128`, a span id as `u64`.
pub fn trace_u128(bytes: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    if bytes.len() == 16 {
        a.copy_from_slice(bytes);
    }
    u128::from_be_bytes(a)
}

/// A span id as `u64`; 0 for an absent (empty) or malformed id.
pub fn span_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    if bytes.len() == 8 {
        a.copy_from_slice(bytes);
    }
    u64::from_be_bytes(a)
}

/// What ingest needs of one span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanFacts {
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_span_id: u64,
    pub service: Arc<str>,
    pub name: String,
    pub kind: i32,
    pub status_code: i32,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Spans this one links to (`FOLLOWS_FROM`), as (trace id, span id).
    pub links: Vec<(u128, u64)>,
    /// The virtual node this span calls when no instrumented peer answers.
    pub peer: Option<(NodeKind, String)>,
}

impl SpanFacts {
    pub fn extract(service: &Arc<str>, span: &Span) -> Self {
        Self {
            trace_id: trace_u128(&span.trace_id),
            span_id: span_u64(&span.span_id),
            parent_span_id: span_u64(&span.parent_span_id),
            service: Arc::clone(service),
            name: span.name.clone(),
            kind: span.kind,
            status_code: span.status.as_ref().map_or(0, |s| s.code),
            start_unix_nanos: span.start_time_unix_nano,
            end_unix_nanos: span.end_time_unix_nano,
            links: span
                .links
                .iter()
                .filter(|l| l.trace_id.len() == 16 && l.span_id.len() == 8)
                .map(|l| (trace_u128(&l.trace_id), span_u64(&l.span_id)))
                .collect(),
            peer: virtual_peer(&span.attributes),
        }
    }

    pub fn is_error(&self) -> bool {
        self.status_code == StatusCode::Error as i32
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// The string form of an attribute value, as tag search compares it (`None` for arrays/maps).
pub fn value_string(value: &AnyValue) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BytesValue(b) => Some(hex::encode(b)),
        _ => None,
    }
}

/// The string value of attribute `key`, when present and a string.
pub fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// `service.name` of a resource, or [`UNKNOWN_SERVICE`].
pub fn service_name_of(resource: &Resource) -> &str {
    match string_attribute(&resource.attributes, semres::SERVICE_NAME) {
        Some(s) if !s.is_empty() => s,
        _ => UNKNOWN_SERVICE,
    }
}

/// The virtual node a client or producer span talks to: a database, a messaging destination,
/// or a peer known only by name.
pub fn virtual_peer(attributes: &[KeyValue]) -> Option<(NodeKind, String)> {
    // `db.system` is deprecated in favour of `db.system.name`; SDKs still send either.
    #[allow(deprecated)]
    let db = string_attribute(attributes, semconv::DB_SYSTEM_NAME)
        .or_else(|| string_attribute(attributes, semconv::DB_SYSTEM));
    if let Some(db) = db {
        let name = match string_attribute(attributes, semconv::DB_NAMESPACE) {
            Some(ns) if !ns.is_empty() => format!("{db}/{ns}"),
            _ => db.to_owned(),
        };
        return Some((NodeKind::Database, name));
    }
    if let Some(system) = string_attribute(attributes, semconv::MESSAGING_SYSTEM) {
        let name = match string_attribute(attributes, semconv::MESSAGING_DESTINATION_NAME) {
            Some(dest) if !dest.is_empty() => format!("{system}/{dest}"),
            _ => system.to_owned(),
        };
        return Some((NodeKind::MessagingSystem, name));
    }
    // `peer.service` is deprecated in favour of `service.peer.name`; SDKs still send it.
    #[allow(deprecated)]
    let peer = string_attribute(attributes, semconv::PEER_SERVICE);
    peer.or_else(|| string_attribute(attributes, semconv::SERVICE_PEER_NAME))
        .or_else(|| string_attribute(attributes, semconv::SERVER_ADDRESS))
        .filter(|s| !s.is_empty())
        .map(|s| (NodeKind::External, s.to_owned()))
}
