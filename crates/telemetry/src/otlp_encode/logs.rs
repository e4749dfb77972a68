//! OTLP log export bodies (`ExportLogsServiceRequest`, protobuf) encoded straight from the SDK's
//! [`SdkLogRecord`]s, by reference, as the parent module does for spans.
//!
//! opentelemetry-otlp converts each record into opentelemetry-proto's structs first: every
//! attribute key and value copied, a new `InstrumentationScope` built and hashed per record to
//! group them, the resource's attributes cloned per export. Here the lengths are computed from
//! the records and the bytes written once.
//!
//! Invariant: the bytes are those prost writes for the request opentelemetry-proto's
//! `group_logs_by_resource_and_scope` builds from the same batch and resource, scopes aside:
//! that function groups through a `HashMap`, so its scopes come in no fixed order, and here they
//! come in the order they first appear. A record's exported scope is its instrumentation scope
//! with the record's target, when it has one, as the name. The tests compare the two byte for
//! byte (one scope), and decoded with the scopes sorted (several).

use std::collections::HashMap;

use opentelemetry::logs::AnyValue;
use opentelemetry::{InstrumentationScope, Key};
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::{
    EncodedResource, len_field_len, nanos, put_bytes, put_len_bytes, put_len_prefix, put_scope,
    put_string, scope_len, string_len,
};

/// The protobuf body of an OTLP/HTTP (or gRPC) log export of `batch` under `resource`.
pub fn encode_logs_export(batch: &LogBatch<'_>, resource: &EncodedResource) -> Vec<u8> {
    // Pass 1: group by exported scope in first-seen order and take every record's length.
    let mut scopes: Vec<ScopeGroup<'_>> = Vec::new();
    let mut last = 0;
    for (record, scope) in batch.iter() {
        let name = record
            .target()
            .map_or_else(|| scope.name(), |target| target.as_ref());
        let same = |g: &ScopeGroup<'_>| g.name == name && same_scope(g.scope, scope);
        let at = if scopes.get(last).is_some_and(same) {
            last
        } else if let Some(at) = scopes.iter().position(same) {
            at
        } else {
            scopes.push(ScopeGroup::new(name, scope));
            scopes.len() - 1
        };
        last = at;
        let len = record_len(record);
        let group = &mut scopes[at];
        group.records_len += len_field_len(2, len);
        group.records.push((record, len));
    }
    let mut resource_logs_len = len_field_len(1, resource.body.len());
    for group in &mut scopes {
        group.len = len_field_len(1, group.scope_len)
            + group.records_len
            + string_len(3, group.scope.schema_url().unwrap_or_default());
        resource_logs_len += len_field_len(2, group.len);
    }
    resource_logs_len += string_len(3, &resource.schema_url);

    // Pass 2: write.
    let mut out = Vec::with_capacity(len_field_len(1, resource_logs_len));
    put_len_prefix(&mut out, 1, resource_logs_len);
    put_len_prefix(&mut out, 1, resource.body.len());
    out.extend_from_slice(&resource.body);
    for group in &scopes {
        put_len_prefix(&mut out, 2, group.len);
        put_len_prefix(&mut out, 1, group.scope_len);
        put_scope(&mut out, group.name, group.scope);
        for (record, len) in &group.records {
            put_len_prefix(&mut out, 2, *len);
            put_record(&mut out, record);
        }
        put_string(&mut out, 3, group.scope.schema_url().unwrap_or_default());
    }
    put_string(&mut out, 3, &resource.schema_url);
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// Scopes that export as one (the name compared apart: a record's target overrides it).
fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    std::ptr::eq(a, b)
        || (a.version() == b.version()
            && a.schema_url() == b.schema_url()
            && a.attributes().eq(b.attributes()))
}

struct ScopeGroup<'a> {
    /// The exported scope name: the record's target, or the scope's own name.
    name: &'a str,
    scope: &'a InstrumentationScope,
    scope_len: usize,
    records: Vec<(&'a SdkLogRecord, usize)>,
    records_len: usize,
    /// The `ScopeLogs` message's body length.
    len: usize,
}

impl<'a> ScopeGroup<'a> {
    fn new(name: &'a str, scope: &'a InstrumentationScope) -> Self {
        Self {
            name,
            scope,
            scope_len: scope_len(name, scope),
            records: Vec::new(),
            records_len: 0,
            len: 0,
        }
    }
}

/// A `LogRecord` message's body length.
fn record_len(record: &SdkLogRecord) -> usize {
    let mut len = fixed64_len(1, record.timestamp().map_or(0, nanos));
    len += fixed64_len(11, record.observed_timestamp().map_or(0, nanos));
    len += severity_number(record).map_or(0, |n| key_len(2) + encoded_len_varint(n));
    len += string_len(3, record.severity_text().unwrap_or_default());
    if let Some(body) = record.body() {
        len += len_field_len(5, any_value_len(body));
    }
    len += record
        .attributes_iter()
        .map(|(key, value)| len_field_len(6, log_key_value_len(key, value)))
        .sum::<usize>();
    if let Some(cx) = record.trace_context() {
        if flags(cx) != 0 {
            len += key_len(8) + 4;
        }
        len += 18 + 10; // trace_id and span_id: key, length, 16 and 8 bytes
    }
    len + string_len(12, record.event_name().unwrap_or_default())
}

/// The fields in prost's order: by tag (the observed time, tag 11, after the span id).
fn put_record(out: &mut Vec<u8>, record: &SdkLogRecord) {
    put_fixed64(out, 1, record.timestamp().map_or(0, nanos));
    if let Some(n) = severity_number(record) {
        encode_key(2, WireType::Varint, out);
        encode_varint(n, out);
    }
    put_string(out, 3, record.severity_text().unwrap_or_default());
    if let Some(body) = record.body() {
        put_len_prefix(out, 5, any_value_len(body));
        put_any_value(out, body);
    }
    for (key, value) in record.attributes_iter() {
        put_log_key_value(out, 6, key, value);
    }
    if let Some(cx) = record.trace_context() {
        let flags = flags(cx);
        if flags != 0 {
            encode_key(8, WireType::ThirtyTwoBit, out);
            out.extend_from_slice(&flags.to_le_bytes());
        }
        put_bytes(out, 9, &cx.trace_id.to_bytes());
        put_bytes(out, 10, &cx.span_id.to_bytes());
    }
    put_fixed64(out, 11, record.observed_timestamp().map_or(0, nanos));
    put_string(out, 12, record.event_name().unwrap_or_default());
}

fn flags(cx: &opentelemetry_sdk::logs::TraceContext) -> u32 {
    cx.trace_flags.map_or(0, |f| u32::from(f.to_u8()))
}

/// The severity's number (1–24), absent when unset.
fn severity_number(record: &SdkLogRecord) -> Option<u64> {
    record.severity_number().map(|s| s as u64)
}

fn fixed64_len(tag: u32, v: u64) -> usize {
    if v == 0 { 0 } else { key_len(tag) + 8 }
}

fn put_fixed64(out: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A `KeyValue` message's body with a log value: the key (when not empty), the value (always).
fn log_key_value_len(key: &Key, value: &AnyValue) -> usize {
    string_len(1, key.as_str()) + len_field_len(2, any_value_len(value))
}

/// A `KeyValue` message at `tag`, prefix included.
fn put_log_key_value(out: &mut Vec<u8>, tag: u32, key: &Key, value: &AnyValue) {
    put_len_prefix(out, tag, log_key_value_len(key, value));
    put_string(out, 1, key.as_str());
    put_len_prefix(out, 2, any_value_len(value));
    put_any_value(out, value);
}

/// An `AnyValue` message's body: its one field, present whatever its value (a oneof).
fn any_value_len(value: &AnyValue) -> usize {
    match value {
        AnyValue::String(s) => len_field_len(1, s.as_str().len()),
        AnyValue::Boolean(_) => key_len(2) + 1,
        AnyValue::Int(v) => key_len(3) + encoded_len_varint(*v as u64),
        AnyValue::Double(_) => key_len(4) + 8,
        AnyValue::ListAny(values) => len_field_len(5, list_len(values)),
        AnyValue::Map(map) => len_field_len(6, map_len(map)),
        AnyValue::Bytes(bytes) => len_field_len(7, bytes.len()),
        // A kind this encoder does not know (the enum is non-exhaustive): an empty value.
        _ => 0,
    }
}

fn put_any_value(out: &mut Vec<u8>, value: &AnyValue) {
    match value {
        AnyValue::String(s) => put_len_bytes(out, 1, s.as_str().as_bytes()),
        AnyValue::Boolean(v) => {
            encode_key(2, WireType::Varint, out);
            out.push(u8::from(*v));
        }
        AnyValue::Int(v) => {
            encode_key(3, WireType::Varint, out);
            encode_varint(*v as u64, out);
        }
        AnyValue::Double(v) => {
            encode_key(4, WireType::SixtyFourBit, out);
            out.extend_from_slice(&v.to_le_bytes());
        }
        AnyValue::ListAny(values) => {
            put_len_prefix(out, 5, list_len(values));
            for value in values.iter() {
                put_len_prefix(out, 1, any_value_len(value));
                put_any_value(out, value);
            }
        }
        AnyValue::Map(map) => {
            put_len_prefix(out, 6, map_len(map));
            for (key, value) in map.iter() {
                put_log_key_value(out, 1, key, value);
            }
        }
        AnyValue::Bytes(bytes) => put_len_bytes(out, 7, bytes),
        _ => {}
    }
}

/// An `ArrayValue` message's body: each element an `AnyValue` at field 1.
fn list_len(values: &[AnyValue]) -> usize {
    values
        .iter()
        .map(|value| len_field_len(1, any_value_len(value)))
        .sum()
}

/// A `KeyValueList` message's body: each entry a `KeyValue` at field 1.
fn map_len(map: &HashMap<Key, AnyValue>) -> usize {
    map.iter()
        .map(|(key, value)| len_field_len(1, log_key_value_len(key, value)))
        .sum()
}

#[cfg(test)]
mod tests;
