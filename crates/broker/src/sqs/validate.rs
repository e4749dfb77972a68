//! SQS input validation, with AWS's limits and error codes: message bodies, message attributes,
//! system attributes, delays and batch entry ids, and the send entry they check.

use std::collections::HashSet;

use crate::error::ApiError;
use crate::message::{AttributeValue, Attributes};
use crate::queue::Settings;

/// The fields of one message to send (`SendMessage`, or one `SendMessageBatch` entry).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendEntry {
    pub id: Option<String>,
    pub message_body: Option<String>,
    pub delay_seconds: Option<i64>,
    #[serde(default)]
    pub message_attributes: Attributes,
    #[serde(default)]
    pub message_system_attributes: Attributes,
    pub message_group_id: Option<String>,
    #[allow(dead_code)] // accepted for compatibility; only fifo queues deduplicate
    pub message_deduplication_id: Option<String>,
}

/// Most message attributes one message may carry.
pub const MAX_ATTRIBUTES: usize = 10;

/// Most entries in one batch request.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Checks a message to send; returns its body.
pub fn validate_send(entry: &SendEntry, settings: &Settings) -> Result<String, ApiError> {
    let body = entry
        .message_body
        .clone()
        .ok_or_else(|| ApiError::missing_parameter("MessageBody"))?;
    if body.is_empty() {
        return Err(ApiError::missing_parameter("MessageBody"));
    }
    if let Some(bad) = body.chars().find(|c| !allowed_char(*c)) {
        return Err(ApiError::invalid_message_contents(format!(
            "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            bad as u32
        )));
    }
    if let Some(delay) = entry.delay_seconds
        && !(0..=900).contains(&delay)
    {
        return Err(ApiError::invalid_parameter(format!(
            "Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
        )));
    }
    validate_attributes(&entry.message_attributes)?;
    validate_system_attributes(&entry.message_system_attributes)?;
    let size = body.len()
        + entry
            .message_attributes
            .iter()
            .map(|(k, v)| k.len() + v.size_bytes())
            .sum::<usize>();
    if size > settings.max_message_bytes as usize {
        return Err(ApiError::invalid_parameter(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
            settings.max_message_bytes
        )));
    }
    Ok(body)
}

fn allowed_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn valid_attribute_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// The base type (`String`, `Number`, `Binary`) of a data type with an optional custom label.
fn base_type(data_type: &str) -> Option<&str> {
    let (base, label) = data_type.split_once('.').unwrap_or((data_type, ""));
    let label_ok = data_type.len() <= 256 && label.chars().all(|c| c.is_ascii_graphic());
    (matches!(base, "String" | "Number" | "Binary") && label_ok).then_some(base)
}

/// Checks user message attributes: count, names, types and values.
pub fn validate_attributes(attributes: &Attributes) -> Result<(), ApiError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(ApiError::invalid_parameter(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    for (name, value) in attributes {
        if !valid_attribute_name(name) {
            return Err(ApiError::invalid_parameter(format!(
                "Message (user) attribute name '{name}' is invalid: names use A-Z, a-z, 0-9, '_', '-' and '.', at most 256 characters, no leading, trailing or doubled '.', and must not start with 'AWS.' or 'Amazon.'"
            )));
        }
        validate_value(name, value)?;
    }
    Ok(())
}

fn validate_value(name: &str, value: &AttributeValue) -> Result<(), ApiError> {
    let Some(base) = base_type(&value.data_type) else {
        return Err(ApiError::invalid_parameter(format!(
            "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
        )));
    };
    let empty = || {
        ApiError::invalid_parameter(format!(
            "Message (user) attribute '{name}' must contain a non-empty message attribute value for message attribute type '{base}'."
        ))
    };
    match base {
        "Binary" => {
            if value.binary_value.as_ref().is_none_or(Vec::is_empty) {
                return Err(empty());
            }
        }
        _ => {
            let text = value
                .string_value
                .as_deref()
                .filter(|s| !s.is_empty())
                .ok_or_else(empty)?;
            if let Some(bad) = text.chars().find(|c| !allowed_char(*c)) {
                return Err(ApiError::invalid_parameter(format!(
                    "Message (user) attribute '{name}' has the invalid character '#x{:X}'.",
                    bad as u32
                )));
            }
            if base == "Number" && !valid_number(text) {
                return Err(ApiError::invalid_parameter(format!(
                    "Can't cast the value of message (user) attribute '{name}' to a number."
                )));
            }
        }
    }
    Ok(())
}

fn valid_number(text: &str) -> bool {
    text.len() <= 40 && text.parse::<f64>().is_ok_and(f64::is_finite)
}

fn validate_system_attributes(attributes: &Attributes) -> Result<(), ApiError> {
    for (name, value) in attributes {
        if name != "AWSTraceHeader" {
            return Err(ApiError::invalid_parameter(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        if value.data_type != "String" || value.string_value.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid_parameter(
                "Message system attribute 'AWSTraceHeader' must be a non-empty String.",
            ));
        }
    }
    Ok(())
}

/// Checks the ids of a batch request: present, 1 to 10 entries, well-formed, distinct.
pub fn validate_entry_ids<'a>(
    ids: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> Result<(), ApiError> {
    let count = ids.len();
    if count == 0 {
        return Err(ApiError::empty_batch());
    }
    if count > MAX_BATCH_ENTRIES {
        return Err(ApiError::too_many_entries(count));
    }
    let mut seen = HashSet::new();
    for id in ids {
        let id = id.ok_or_else(|| ApiError::missing_parameter("Id"))?;
        let well_formed = (1..=80).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(ApiError::invalid_batch_entry_id(id));
        }
        if !seen.insert(id) {
            return Err(ApiError::batch_ids_not_distinct(id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str, attributes: Attributes) -> SendEntry {
        SendEntry {
            id: None,
            message_body: Some(body.to_owned()),
            delay_seconds: None,
            message_attributes: attributes,
            message_system_attributes: Attributes::new(),
            message_group_id: None,
            message_deduplication_id: None,
        }
    }

    fn code(result: Result<String, ApiError>) -> String {
        result.err().map(|e| e.code).unwrap_or_else(|| "ok".into())
    }

    #[test]
    fn bodies_are_checked_for_size_and_characters() {
        let settings = Settings::default();
        assert_eq!(
            code(validate_send(&entry("hi", Attributes::new()), &settings)),
            "ok"
        );
        assert_eq!(
            code(validate_send(&entry("", Attributes::new()), &settings)),
            "MissingParameter"
        );
        assert_eq!(
            code(validate_send(
                &entry("a\u{1}b", Attributes::new()),
                &settings
            )),
            "InvalidMessageContents"
        );
        let big = "x".repeat(262_145);
        assert_eq!(
            code(validate_send(&entry(&big, Attributes::new()), &settings)),
            "InvalidParameterValue"
        );
        let exact = "x".repeat(262_144);
        assert_eq!(
            code(validate_send(&entry(&exact, Attributes::new()), &settings)),
            "ok"
        );
    }

    #[test]
    fn attributes_are_checked_like_aws() {
        let settings = Settings::default();
        let one = |name: &str, value: AttributeValue| Attributes::from([(name.to_owned(), value)]);
        let cases = [
            (one("ok", AttributeValue::string("String", "v")), "ok"),
            (one("n", AttributeValue::string("Number", "1.5e3")), "ok"),
            (one("n", AttributeValue::string("Number.int", "12")), "ok"),
            (
                one("n", AttributeValue::string("Number", "abc")),
                "InvalidParameterValue",
            ),
            (
                one("e", AttributeValue::string("String", "")),
                "InvalidParameterValue",
            ),
            (
                one("AWS.x", AttributeValue::string("String", "v")),
                "InvalidParameterValue",
            ),
            (
                one("a..b", AttributeValue::string("String", "v")),
                "InvalidParameterValue",
            ),
            (
                one("t", AttributeValue::string("Text", "v")),
                "InvalidParameterValue",
            ),
            (
                one(
                    "b",
                    AttributeValue {
                        data_type: "Binary".into(),
                        string_value: None,
                        binary_value: Some(vec![]),
                    },
                ),
                "InvalidParameterValue",
            ),
        ];
        for (attributes, expected) in cases {
            assert_eq!(
                code(validate_send(&entry("b", attributes.clone()), &settings)),
                expected,
                "{attributes:?}"
            );
        }
        let eleven: Attributes = (0..11)
            .map(|i| (format!("a{i}"), AttributeValue::string("String", "v")))
            .collect();
        assert_eq!(
            code(validate_send(&entry("b", eleven), &settings)),
            "InvalidParameterValue"
        );
    }

    #[test]
    fn batch_ids_are_checked() {
        let check = |ids: &[&str]| {
            validate_entry_ids(ids.iter().map(|s| Some(*s)).collect::<Vec<_>>().into_iter())
                .err()
                .map(|e| e.code)
                .unwrap_or_else(|| "ok".into())
        };
        assert_eq!(check(&["a", "b"]), "ok");
        assert_eq!(check(&[]), "AWS.SimpleQueueService.EmptyBatchRequest");
        assert_eq!(
            check(&["a"; 11]),
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
        );
        assert_eq!(
            check(&["a", "a"]),
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
        );
        assert_eq!(
            check(&["a b"]),
            "AWS.SimpleQueueService.InvalidBatchEntryId"
        );
    }
}
