//! The log encoder against opentelemetry-proto's transform and prost's encoding of the same
//! batch: byte for byte with one exported scope, decoded with the scopes sorted with several
//! (the transform groups them through a `HashMap`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, Key, KeyValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogProcessor, SdkLogRecord, SdkLoggerProvider};
use prost::Message as _;

use super::super::EncodedResource;
use super::encode_logs_export;

/// Keeps every emitted record and its scope, as the batch processor's queue does.
#[derive(Debug, Clone, Default)]
struct Keep(Arc<Mutex<Vec<(SdkLogRecord, InstrumentationScope)>>>);

impl LogProcessor for Keep {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((record.clone(), scope.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Records emitted by `emit` through loggers of the given scopes.
fn emitted(
    scopes: &[InstrumentationScope],
    emit: impl Fn(usize, &mut SdkLogRecord),
) -> Vec<(SdkLogRecord, InstrumentationScope)> {
    let keep = Keep::default();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(keep.clone())
        .build();
    for (i, scope) in scopes.iter().enumerate() {
        let logger = provider.logger_with_scope(scope.clone());
        let mut record = logger.create_log_record();
        emit(i, &mut record);
        logger.emit(record);
    }
    keep.0.lock().expect("not poisoned").clone()
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.instance.id", "7f3c"),
            KeyValue::new("process.pid", 4242),
        ])
        .with_schema_url(
            [KeyValue::new("deployment.environment.name", "test")],
            "https://opentelemetry.io/schemas/1.26.0",
        )
        .build()
}

fn ours(records: &[(SdkLogRecord, InstrumentationScope)], resource: &Resource) -> Vec<u8> {
    let refs: Vec<_> = records.iter().map(|(r, s)| (r, s)).collect();
    encode_logs_export(&LogBatch::new(&refs), &EncodedResource::new(resource))
}

/// What opentelemetry-otlp sends for the batch: the transform, then prost.
fn theirs(records: &[(SdkLogRecord, InstrumentationScope)], resource: &Resource) -> Vec<u8> {
    let refs: Vec<_> = records.iter().map(|(r, s)| (r, s)).collect();
    let resource = ResourceAttributesWithSchema::from(resource);
    let resource_logs = group_logs_by_resource_and_scope(&LogBatch::new(&refs), &resource);
    ExportLogsServiceRequest { resource_logs }.encode_to_vec()
}

fn assert_same(records: &[(SdkLogRecord, InstrumentationScope)], resource: &Resource) {
    let ours = ours(records, resource);
    let theirs = theirs(records, resource);
    if ours != theirs {
        // Decoded, the difference reads as fields rather than bytes.
        assert_eq!(
            format!("{:#?}", ExportLogsServiceRequest::decode(ours.as_slice())),
            format!("{:#?}", ExportLogsServiceRequest::decode(theirs.as_slice())),
        );
        panic!("same message, different bytes:\n ours {ours:?}\ntheirs {theirs:?}");
    }
}

fn scope(name: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name)
        .with_version("0.1.0")
        .with_attributes([KeyValue::new("scope.kind", "service")])
        .build()
}

/// A record as `JsonLogLayer`'s bridge writes one: every field set.
fn full_record(record: &mut SdkLogRecord) {
    record.set_event_name("order_created");
    record.set_target("checkout::orders");
    record.set_timestamp(UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_456_789));
    record.set_observed_timestamp(UNIX_EPOCH + Duration::from_nanos(1_764_000_000_223_456_789));
    record.set_severity_number(Severity::Info);
    record.set_severity_text("INFO");
    record.set_body(AnyValue::from("order created"));
    record.add_attribute("order.id", "ord-000123");
    record.add_attribute("order.total", 129.5);
    record.add_attribute("checkout.items", 3_i64);
    record.add_attribute("order.paid", true);
    record.add_attribute("order.negative", -7_i64);
    record.add_attribute("", "an empty key");
    record.set_trace_context(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        Some(TraceFlags::SAMPLED),
    );
}

#[test]
fn a_full_record_is_encoded_as_the_transform_encodes_it() {
    let records = emitted(&[scope("throughline")], |_, r| full_record(r));
    assert_same(&records, &resource());
}

#[test]
fn absent_fields_are_absent_as_prost_leaves_them() {
    // No timestamp, severity, body, attributes, trace context or event name: only the
    // observed time the logger stamps.
    let records = emitted(&[scope("throughline")], |_, _| {});
    assert_same(&records, &resource());
    // A trace context without flags, and an unsampled one (flags 0: the field absent).
    for flags in [None, Some(TraceFlags::default())] {
        let records = emitted(&[scope("throughline")], |_, r| {
            r.set_trace_context(TraceId::from(1), SpanId::from(2), flags);
        });
        assert_same(&records, &resource());
    }
    // An empty resource and a scope with nothing but its name.
    let records = emitted(&[InstrumentationScope::builder("bare").build()], |_, r| {
        r.set_body(AnyValue::from(""));
    });
    assert_same(&records, &Resource::builder_empty().build());
}

#[test]
fn nested_values_lists_maps_and_bytes_are_encoded_as_the_transform_encodes_them() {
    let records = emitted(&[scope("throughline")], |_, r| {
        let mut map = HashMap::new();
        map.insert(Key::from("db.rows"), AnyValue::Int(12));
        map.insert(Key::from("db.slow"), AnyValue::Boolean(true));
        map.insert(
            Key::from("nested"),
            AnyValue::Map(Box::new(HashMap::from([(
                Key::from("deeper"),
                AnyValue::ListAny(Box::new(vec![AnyValue::Double(0.25)])),
            )]))),
        );
        r.set_body(AnyValue::Map(Box::new(map)));
        r.add_attribute(
            "list",
            AnyValue::ListAny(Box::new(vec![
                AnyValue::from("a"),
                AnyValue::Int(-1),
                AnyValue::Bytes(Box::new(vec![0, 1, 255])),
                AnyValue::ListAny(Box::default()),
            ])),
        );
        r.add_attribute("bytes", AnyValue::Bytes(Box::new(vec![9; 300])));
        // A string longer than one varint byte's length.
        r.add_attribute("long", "x".repeat(200));
    });
    assert_same(&records, &resource());
}

#[test]
fn records_of_one_scope_and_target_share_one_scope_logs_in_batch_order() {
    // Three records, one logger: one `ScopeLogs`, records in the order they were emitted.
    let scopes = [
        scope("throughline"),
        scope("throughline"),
        scope("throughline"),
    ];
    let records = emitted(&scopes, |i, r| {
        r.set_body(AnyValue::from(format!("record {i}")));
        r.set_target("checkout::orders");
    });
    assert_same(&records, &resource());
    let decoded =
        ExportLogsServiceRequest::decode(ours(&records, &resource()).as_slice()).expect("decodes");
    let scope_logs = &decoded.resource_logs[0].scope_logs;
    assert_eq!(scope_logs.len(), 1);
    let scope = scope_logs[0].scope.as_ref().expect("a scope");
    assert_eq!(scope.name, "checkout::orders", "the target names the scope");
    assert_eq!(scope_logs[0].log_records.len(), 3);
}

/// `request` with each resource's scopes sorted by name and target (the transform's order is a
/// `HashMap`'s).
fn sorted(mut request: ExportLogsServiceRequest) -> ExportLogsServiceRequest {
    for resource_logs in &mut request.resource_logs {
        resource_logs.scope_logs.sort_by(|a, b| {
            let key = |s: &opentelemetry_proto::tonic::logs::v1::ScopeLogs| {
                s.scope
                    .as_ref()
                    .map(|s| (s.name.clone(), s.version.clone()))
            };
            key(a).cmp(&key(b))
        });
    }
    request
}

#[test]
fn several_scopes_and_targets_group_as_the_transform_groups_them() {
    let versioned = InstrumentationScope::builder("throughline")
        .with_version("0.2.0")
        .build();
    let with_schema = InstrumentationScope::builder("schema")
        .with_schema_url("https://opentelemetry.io/schemas/1.26.0")
        .build();
    let scopes = [
        scope("throughline"),
        scope("other"),
        scope("throughline"),
        versioned,
        with_schema,
        scope("throughline"),
        scope("other"),
    ];
    let records = emitted(&scopes, |i, r| {
        r.set_body(AnyValue::Int(i as i64));
        // Records 5 and 6 carry a target: 5's makes a group of its own; 6 is `other` renamed
        // `throughline`, with the same version and attributes, so it joins that group.
        if i == 5 {
            r.set_target("checkout::orders");
        }
        if i == 6 {
            r.set_target("throughline");
        }
    });
    let resource = resource();
    let ours = ExportLogsServiceRequest::decode(ours(&records, &resource).as_slice())
        .expect("ours decodes");
    let theirs = ExportLogsServiceRequest::decode(theirs(&records, &resource).as_slice())
        .expect("theirs decodes");
    assert_eq!(ours.resource_logs[0].scope_logs.len(), 5);
    assert_eq!(sorted(ours), sorted(theirs));
}
