//! Caps on what one span makes the store keep: a service name, a span name or a string attribute
//! value over its cap is cut at a character boundary and marked, so that one oversized value
//! (a 100 KB `service.name`) cannot swell every page, search and header that shows it.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_semantic_conventions::resource::SERVICE_NAME;

use crate::api::{AnyValue, KeyValue, Resource, Span};

/// Bytes kept of `service.name` (it is in every block header, list and map).
pub const MAX_SERVICE_NAME_BYTES: usize = 256;
/// Bytes kept of a span name (it is an operation in every list).
pub const MAX_SPAN_NAME_BYTES: usize = 1024;
/// Bytes kept of any other string attribute value, at any depth of arrays and maps.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 16 * 1024;

/// Cuts `text` to at most `max` bytes plus a marker naming how many bytes were cut.
pub fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let removed = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("…[{removed} bytes truncated]"));
}

fn cap_value(value: &mut AnyValue, max: usize) {
    match value.value.as_mut() {
        Some(Value::StringValue(s)) => truncate(s, max),
        Some(Value::ArrayValue(a)) => a.values.iter_mut().for_each(|v| cap_value(v, max)),
        Some(Value::KvlistValue(kv)) => cap_attributes(&mut kv.values),
        _ => {}
    }
}

fn cap_attributes(attributes: &mut [KeyValue]) {
    for kv in attributes {
        let max = if kv.key == SERVICE_NAME {
            MAX_SERVICE_NAME_BYTES
        } else {
            MAX_ATTRIBUTE_VALUE_BYTES
        };
        if let Some(value) = kv.value.as_mut() {
            cap_value(value, max);
        }
    }
}

/// Caps a resource's attributes (`service.name` the tightest).
pub fn cap_resource(resource: &mut Resource) {
    cap_attributes(&mut resource.attributes);
}

/// Caps a span's name and the attributes of the span, its events and its links.
pub fn cap_span(span: &mut Span) {
    truncate(&mut span.name, MAX_SPAN_NAME_BYTES);
    cap_attributes(&mut span.attributes);
    for event in &mut span.events {
        truncate(&mut event.name, MAX_SPAN_NAME_BYTES);
        cap_attributes(&mut event.attributes);
    }
    for link in &mut span.links {
        cap_attributes(&mut link.attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_character_boundary_and_says_so() {
        let mut s = "é".repeat(10); // 20 bytes
        truncate(&mut s, 5);
        assert_eq!(s, "éé…[16 bytes truncated]");
        let mut short = "short".to_owned();
        truncate(&mut short, 5);
        assert_eq!(short, "short");
    }

    #[test]
    fn a_huge_service_name_and_nested_values_are_capped() {
        let string = |s: String| AnyValue {
            value: Some(Value::StringValue(s)),
        };
        let mut resource = Resource {
            attributes: vec![KeyValue {
                key: SERVICE_NAME.to_owned(),
                value: Some(string("x".repeat(100_000))),
                ..Default::default()
            }],
            ..Default::default()
        };
        cap_resource(&mut resource);
        let Some(Value::StringValue(name)) = &resource.attributes[0].value.as_ref().unwrap().value
        else {
            panic!("a string");
        };
        assert!(name.len() < MAX_SERVICE_NAME_BYTES + 40, "{}", name.len());
        assert!(name.ends_with("…[99744 bytes truncated]"), "{name}");

        let mut span = Span {
            name: "n".repeat(5000),
            attributes: vec![KeyValue {
                key: "list".into(),
                value: Some(AnyValue {
                    value: Some(Value::ArrayValue(
                        opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: vec![string("v".repeat(20_000))],
                        },
                    )),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        cap_span(&mut span);
        assert!(span.name.len() < MAX_SPAN_NAME_BYTES + 40);
        let Some(Value::ArrayValue(a)) = &span.attributes[0].value.as_ref().unwrap().value else {
            panic!("an array");
        };
        let Some(Value::StringValue(v)) = &a.values[0].value else {
            panic!("a string");
        };
        assert!(v.len() < MAX_ATTRIBUTE_VALUE_BYTES + 40, "{}", v.len());
    }
}
