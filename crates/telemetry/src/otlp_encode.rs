//! OTLP trace export bodies (`ExportTraceServiceRequest`, protobuf) encoded straight from the
//! SDK's [`SpanData`], by reference.
//!
//! opentelemetry-otlp first converts every span into opentelemetry-proto's structs (each
//! attribute key and string value copied into a new `String`, each span moved through a
//! `HashMap` grouping), encodes those, then drops them all; under load that was most of a
//! service's export thread (allocator, `memmove`). Here each message's length is computed from
//! the span data itself and the bytes are written once into a buffer of exactly that size.
//!
//! Invariant: the bytes are those prost writes for the request opentelemetry-proto's
//! `group_spans_by_resource_and_scope` builds from the same batch and resource (scopes in the
//! order they first appear, spans in batch order, the same field presence rules); the tests
//! compare the two byte for byte.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

pub mod logs;

/// The `Resource` part of every request, encoded once when the exporter is given its resource.
#[derive(Debug, Clone, Default)]
pub struct EncodedResource {
    /// The `Resource` message's body (its attributes).
    body: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    /// `resource`'s attributes and schema URL, encoded.
    pub fn new(resource: &Resource) -> Self {
        let mut body = Vec::new();
        for (key, value) in resource.iter() {
            let len = key_value_len(key.as_str(), value);
            put_len_prefix(&mut body, 1, len);
            put_key_value(&mut body, key.as_str(), value);
        }
        Self {
            body,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }
}

/// The protobuf body of an OTLP/HTTP (or gRPC) trace export of `batch` under `resource`.
pub fn encode_export(batch: &[SpanData], resource: &EncodedResource) -> Vec<u8> {
    // Pass 1: group by scope in first-seen order and take every span's length.
    let mut scopes: Vec<ScopeGroup<'_>> = Vec::new();
    let mut last = 0;
    for span in batch {
        let scope = &span.instrumentation_scope;
        let at = if scopes.get(last).is_some_and(|g| g.scope == scope) {
            last
        } else if let Some(at) = scopes.iter().position(|g| g.scope == scope) {
            at
        } else {
            scopes.push(ScopeGroup::new(scope));
            scopes.len() - 1
        };
        last = at;
        let plan = SpanPlan::new(span);
        let group = &mut scopes[at];
        group.spans_len += len_field_len(2, plan.len);
        group.spans.push((span, plan));
    }
    let mut resource_spans_len =
        len_field_len(1, resource.body.len()) + string_len(3, &resource.schema_url);
    for group in &mut scopes {
        group.len = len_field_len(1, group.scope_len)
            + group.spans_len
            + string_len(3, group.scope.schema_url().unwrap_or_default());
        resource_spans_len += len_field_len(2, group.len);
    }

    // Pass 2: write.
    let mut out = Vec::with_capacity(len_field_len(1, resource_spans_len));
    put_len_prefix(&mut out, 1, resource_spans_len);
    put_len_prefix(&mut out, 1, resource.body.len());
    out.extend_from_slice(&resource.body);
    for group in &scopes {
        put_len_prefix(&mut out, 2, group.len);
        put_len_prefix(&mut out, 1, group.scope_len);
        put_scope(&mut out, group.scope.name(), group.scope);
        for (span, plan) in &group.spans {
            put_len_prefix(&mut out, 2, plan.len);
            put_span(&mut out, span, plan);
        }
        put_string(&mut out, 3, group.scope.schema_url().unwrap_or_default());
    }
    put_string(&mut out, 3, &resource.schema_url);
    debug_assert_eq!(out.len(), out.capacity());
    out
}

struct ScopeGroup<'a> {
    scope: &'a InstrumentationScope,
    scope_len: usize,
    spans: Vec<(&'a SpanData, SpanPlan)>,
    spans_len: usize,
    /// The `ScopeSpans` message's body length.
    len: usize,
}

impl<'a> ScopeGroup<'a> {
    fn new(scope: &'a InstrumentationScope) -> Self {
        Self {
            scope,
            scope_len: scope_len(scope.name(), scope),
            spans: Vec::new(),
            spans_len: 0,
            len: 0,
        }
    }
}

/// What writing one span needs that computing its length already worked out.
struct SpanPlan {
    len: usize,
    /// The `tracestate` header, when there is one (building it allocates).
    trace_state: Option<String>,
}

impl SpanPlan {
    fn new(span: &SpanData) -> Self {
        let trace_state = trace_state_header(&span.span_context);
        let mut len = 18 + 10; // trace_id and span_id: key, length, 16 and 8 bytes
        len += trace_state.as_deref().map_or(0, |t| string_len(3, t));
        if span.parent_span_id != SpanId::INVALID {
            len += 10;
        }
        len += key_len(16) + 4; // flags: always set (the has-is-remote bit)
        len += string_len(5, &span.name);
        len += key_len(6) + 1; // kind: 1..=5
        len += time_len(7, span.start_time) + time_len(8, span.end_time);
        len += attributes_len(9, &span.attributes);
        len += varint_len(10, span.dropped_attributes_count);
        len += events_len(&span.events);
        len += varint_len(12, span.events.dropped_count);
        len += links_len(&span.links);
        len += varint_len(14, span.links.dropped_count);
        len += len_field_len(15, status_len(&span.status));
        Self { len, trace_state }
    }
}

fn put_span(out: &mut Vec<u8>, span: &SpanData, plan: &SpanPlan) {
    let cx = &span.span_context;
    put_bytes(out, 1, &cx.trace_id().to_bytes());
    put_bytes(out, 2, &cx.span_id().to_bytes());
    if let Some(trace_state) = &plan.trace_state {
        put_string(out, 3, trace_state);
    }
    if span.parent_span_id != SpanId::INVALID {
        put_bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    put_string(out, 5, &span.name);
    encode_key(6, WireType::Varint, out);
    encode_varint(kind_number(&span.span_kind), out);
    put_time(out, 7, span.start_time);
    put_time(out, 8, span.end_time);
    put_attributes(out, 9, &span.attributes);
    put_varint(out, 10, span.dropped_attributes_count);
    put_events(out, &span.events);
    put_varint(out, 12, span.events.dropped_count);
    put_links(out, &span.links);
    put_varint(out, 14, span.links.dropped_count);
    put_len_prefix(out, 15, status_len(&span.status));
    put_status(out, &span.status);
    encode_key(16, WireType::ThirtyTwoBit, out);
    out.extend_from_slice(&span_flags(cx, span.parent_span_is_remote).to_le_bytes());
}

fn trace_state_header(cx: &SpanContext) -> Option<String> {
    if cx.trace_state() == &TraceState::NONE {
        return None;
    }
    Some(cx.trace_state().header()).filter(|h| !h.is_empty())
}

/// `SpanFlags`: the W3C trace flags, the context-has-is-remote bit (0x100) and, for a remote
/// parent (or linked context), the is-remote bit (0x200).
fn span_flags(cx: &SpanContext, remote: bool) -> u32 {
    let mut flags = u32::from(cx.trace_flags().to_u8()) | 0x100;
    if remote {
        flags |= 0x200;
    }
    flags
}

fn kind_number(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// An `Event` message's body length.
fn event_len(event: &opentelemetry::trace::Event) -> usize {
    time_len(1, event.timestamp)
        + string_len(2, &event.name)
        + attributes_len(3, &event.attributes)
        + varint_len(4, event.dropped_attributes_count)
}

fn events_len(events: &SpanEvents) -> usize {
    events.iter().map(|e| len_field_len(11, event_len(e))).sum()
}

fn put_events(out: &mut Vec<u8>, events: &SpanEvents) {
    for event in events.iter() {
        put_len_prefix(out, 11, event_len(event));
        put_time(out, 1, event.timestamp);
        put_string(out, 2, &event.name);
        put_attributes(out, 3, &event.attributes);
        put_varint(out, 4, event.dropped_attributes_count);
    }
}

fn link_len(trace_state: Option<&str>, link: &opentelemetry::trace::Link) -> usize {
    18 + 10
        + trace_state.map_or(0, |t| string_len(3, t))
        + attributes_len(4, &link.attributes)
        + varint_len(5, link.dropped_attributes_count)
        + key_len(6)
        + 4
}

fn links_len(links: &SpanLinks) -> usize {
    links
        .iter()
        .map(|link| {
            let trace_state = trace_state_header(&link.span_context);
            len_field_len(13, link_len(trace_state.as_deref(), link))
        })
        .sum()
}

fn put_links(out: &mut Vec<u8>, links: &SpanLinks) {
    for link in links.iter() {
        let cx = &link.span_context;
        let trace_state = trace_state_header(cx);
        put_len_prefix(out, 13, link_len(trace_state.as_deref(), link));
        put_bytes(out, 1, &cx.trace_id().to_bytes());
        put_bytes(out, 2, &cx.span_id().to_bytes());
        if let Some(trace_state) = &trace_state {
            put_string(out, 3, trace_state);
        }
        put_attributes(out, 4, &link.attributes);
        put_varint(out, 5, link.dropped_attributes_count);
        encode_key(6, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&span_flags(cx, cx.is_remote()).to_le_bytes());
    }
}

fn status_len(status: &Status) -> usize {
    match status {
        Status::Unset => 0,
        Status::Ok => key_len(3) + 1,
        Status::Error { description } => string_len(2, description) + key_len(3) + 1,
    }
}

fn put_status(out: &mut Vec<u8>, status: &Status) {
    let code = match status {
        Status::Unset => return,
        Status::Ok => 1,
        Status::Error { description } => {
            put_string(out, 2, description);
            2
        }
    };
    encode_key(3, WireType::Varint, out);
    encode_varint(code, out);
}

/// An `InstrumentationScope` message's body: `scope` exported under `name` (its own, or a log
/// record's target).
fn scope_len(name: &str, scope: &InstrumentationScope) -> usize {
    string_len(1, name)
        + string_len(2, scope.version().unwrap_or_default())
        + scope
            .attributes()
            .map(|kv| len_field_len(3, key_value_len(kv.key.as_str(), &kv.value)))
            .sum::<usize>()
}

fn put_scope(out: &mut Vec<u8>, name: &str, scope: &InstrumentationScope) {
    put_string(out, 1, name);
    put_string(out, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        put_len_prefix(out, 3, key_value_len(kv.key.as_str(), &kv.value));
        put_key_value(out, kv.key.as_str(), &kv.value);
    }
}

fn attributes_len(tag: u32, attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| len_field_len(tag, key_value_len(kv.key.as_str(), &kv.value)))
        .sum()
}

fn put_attributes(out: &mut Vec<u8>, tag: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        put_len_prefix(out, tag, key_value_len(kv.key.as_str(), &kv.value));
        put_key_value(out, kv.key.as_str(), &kv.value);
    }
}

/// A `KeyValue` message's body: the key (when not empty) and the value (always present).
fn key_value_len(key: &str, value: &Value) -> usize {
    string_len(1, key) + len_field_len(2, any_value_len(value))
}

fn put_key_value(out: &mut Vec<u8>, key: &str, value: &Value) {
    put_string(out, 1, key);
    put_len_prefix(out, 2, any_value_len(value));
    put_any_value(out, value);
}

/// An `AnyValue` message's body: its one field, present whatever its value (a oneof).
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(v) => key_len(3) + encoded_len_varint(*v as u64),
        Value::F64(_) => key_len(4) + 8,
        Value::String(s) => len_field_len(1, s.as_str().len()),
        Value::Array(array) => len_field_len(5, array_len(array)),
        // A kind this encoder does not know (the enum is non-exhaustive): an empty value.
        _ => 0,
    }
}

fn put_any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(v) => put_bool(out, *v),
        Value::I64(v) => put_i64(out, *v),
        Value::F64(v) => put_f64(out, *v),
        Value::String(s) => put_len_bytes(out, 1, s.as_str().as_bytes()),
        Value::Array(array) => {
            put_len_prefix(out, 5, array_len(array));
            put_array(out, array);
        }
        _ => {}
    }
}

/// An `ArrayValue` message's body: each element an `AnyValue` at field 1.
fn array_len(array: &Array) -> usize {
    let element = |body: usize| len_field_len(1, body);
    match array {
        Array::Bool(values) => values.len() * element(key_len(2) + 1),
        Array::I64(values) => values
            .iter()
            .map(|v| element(key_len(3) + encoded_len_varint(*v as u64)))
            .sum(),
        Array::F64(values) => values.len() * element(key_len(4) + 8),
        Array::String(values) => values
            .iter()
            .map(|s| element(len_field_len(1, s.as_str().len())))
            .sum(),
        _ => 0,
    }
}

fn put_array(out: &mut Vec<u8>, array: &Array) {
    match array {
        Array::Bool(values) => {
            for v in values {
                put_len_prefix(out, 1, key_len(2) + 1);
                put_bool(out, *v);
            }
        }
        Array::I64(values) => {
            for v in values {
                put_len_prefix(out, 1, key_len(3) + encoded_len_varint(*v as u64));
                put_i64(out, *v);
            }
        }
        Array::F64(values) => {
            for v in values {
                put_len_prefix(out, 1, key_len(4) + 8);
                put_f64(out, *v);
            }
        }
        Array::String(values) => {
            for s in values {
                put_len_prefix(out, 1, len_field_len(1, s.as_str().len()));
                put_len_bytes(out, 1, s.as_str().as_bytes());
            }
        }
        _ => {}
    }
}

fn put_bool(out: &mut Vec<u8>, v: bool) {
    encode_key(2, WireType::Varint, out);
    out.push(u8::from(v));
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    encode_key(3, WireType::Varint, out);
    // proto int64: two's complement as a 64-bit varint.
    encode_varint(v as u64, out);
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    encode_key(4, WireType::SixtyFourBit, out);
    out.extend_from_slice(&v.to_le_bytes());
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn time_len(tag: u32, time: SystemTime) -> usize {
    if nanos(time) == 0 {
        0
    } else {
        key_len(tag) + 8
    }
}

fn put_time(out: &mut Vec<u8>, tag: u32, time: SystemTime) {
    let nanos = nanos(time);
    if nanos != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.extend_from_slice(&nanos.to_le_bytes());
    }
}

/// A length-delimited field of `len` bytes, key and length included.
fn len_field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A proto3 string or bytes field: absent when empty.
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        len_field_len(tag, s.len())
    }
}

/// A proto3 `uint32` field: absent when zero.
fn varint_len(tag: u32, v: u32) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(u64::from(v))
    }
}

fn put_len_prefix(out: &mut Vec<u8>, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// A length-delimited field written whatever its length (a message, a oneof's string).
fn put_len_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_len_prefix(out, tag, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len_bytes(out, tag, bytes);
    }
}

fn put_string(out: &mut Vec<u8>, tag: u32, s: &str) {
    put_bytes(out, tag, s.as_bytes());
}

fn put_varint(out: &mut Vec<u8>, tag: u32, v: u32) {
    if v != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(u64::from(v), out);
    }
}

#[cfg(test)]
mod tests;
