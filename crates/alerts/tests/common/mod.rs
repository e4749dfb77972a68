//! OTLP requests the alerts tests send.
#![allow(dead_code)]

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use throughline_store::ExportTraceServiceRequest;

pub fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub fn span(name: &str, end: u64, attrs: Vec<KeyValue>, error: bool) -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![1; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: end - 1_000_000,
        end_time_unix_nano: end,
        attributes: attrs,
        status: error.then(|| Status {
            code: 2,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        any_value::Value::StringValue(service.into()),
                    ),
                    kv(
                        "deployment.environment",
                        any_value::Value::StringValue("prod".into()),
                    ),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn b(v: bool) -> any_value::Value {
    any_value::Value::BoolValue(v)
}
