//! A message as the broker holds it, and its attribute values in the SQS JSON wire shape.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// One message attribute value: `{"DataType": .., "StringValue": ..}` or `.., "BinaryValue": base64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeValue {
    #[serde(rename = "DataType")]
    pub data_type: String,
    #[serde(
        rename = "StringValue",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub string_value: Option<String>,
    #[serde(
        rename = "BinaryValue",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_blob",
        deserialize_with = "de_blob"
    )]
    pub binary_value: Option<Vec<u8>>,
}

impl AttributeValue {
    /// A String (or Number) attribute.
    pub fn string(data_type: &str, value: &str) -> Self {
        Self {
            data_type: data_type.to_owned(),
            string_value: Some(value.to_owned()),
            binary_value: None,
        }
    }

    /// The bytes the value counts towards the message size limit (name excluded).
    pub fn size_bytes(&self) -> usize {
        self.data_type.len()
            + self.string_value.as_ref().map_or(0, String::len)
            + self.binary_value.as_ref().map_or(0, Vec::len)
    }
}

fn ser_blob<S: Serializer>(value: &Option<Vec<u8>>, ser: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(bytes) => ser.serialize_str(&BASE64.encode(bytes)),
        None => ser.serialize_none(),
    }
}

fn de_blob<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Vec<u8>>, D::Error> {
    let text: Option<String> = Option::deserialize(de)?;
    text.map(|t| {
        BASE64
            .decode(t.as_bytes())
            .map_err(|_| serde::de::Error::custom("BinaryValue is not valid base64"))
    })
    .transpose()
}

/// Message attributes by name, in the byte order of the names.
pub type Attributes = BTreeMap<String, AttributeValue>;

/// A message in a queue: what was sent, and its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Broker-wide sequence number: the storage key and the receipt handle's anchor.
    pub seq: u64,
    pub id: String,
    pub body: String,
    pub attributes: Attributes,
    /// Message system attributes (`AWSTraceHeader`).
    pub system_attributes: Attributes,
    pub group_id: Option<String>,
    pub sent_ms: u64,
    /// When the message may next be received: after its delay, or when its visibility timeout ends.
    pub available_at_ms: u64,
    pub receive_count: u32,
    pub first_receive_ms: Option<u64>,
}

impl Message {
    /// Whether the message waits for its first delivery (`DelaySeconds`) at `now_ms`.
    pub fn is_delayed(&self, now_ms: u64) -> bool {
        self.receive_count == 0 && self.available_at_ms > now_ms
    }

    /// Whether the message was received and its visibility timeout runs at `now_ms`.
    pub fn is_in_flight(&self, now_ms: u64) -> bool {
        self.receive_count > 0 && self.available_at_ms > now_ms
    }
}
