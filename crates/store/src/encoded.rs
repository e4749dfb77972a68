//! A trace export kept in the bytes it arrived in: each span's protobuf is read in place, its
//! strings borrowed from the request's buffer, and written to the store as it came (less its
//! trace id), instead of being decoded into owned strings and encoded again.
//!
//! The view types below mirror every field of the OTLP span model that prost would check, with
//! strings as [`Bytes`] slices of the request; one walk of each span's bytes checks every
//! occurrence of every string field as UTF-8 (a field sent twice keeps only its last value in a
//! view, but prost checks both), so that an export [`EncodedTraces::decode`] accepts is exactly
//! one that `ExportTraceServiceRequest::decode` accepts, and every span stored from it decodes
//! again on read. Resources and scopes, small
//! and once per group, are decoded as usual.
//!
//! A span that a store limit would change (an oversized name or value) or that cannot be
//! stored (bad ids) is decoded whole and handled as a decoded export's span is
//! ([`LiteSpan::needs_decoding`]).

use bytes::Bytes;
use prost::Message;
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};

use crate::api::{ExportTraceServiceRequest, InstrumentationScope, Resource, Span};
use crate::limits::{MAX_ATTRIBUTE_VALUE_BYTES, MAX_SERVICE_NAME_BYTES, MAX_SPAN_NAME_BYTES};

/// `ExportTraceServiceRequest`, its spans left as bytes.
#[derive(Clone, PartialEq, Message)]
struct RawRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<RawResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct RawResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<RawScopeSpans>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
struct RawScopeSpans {
    #[prost(message, optional, tag = "1")]
    scope: Option<InstrumentationScope>,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    spans: Vec<Bytes>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

/// A span read in place: every field of `Span`, strings and ids as slices of the export.
#[derive(Clone, PartialEq, Message)]
pub struct LiteSpan {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub trace_state: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    pub parent_span_id: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    pub name: Bytes,
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<LiteKeyValue>,
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<LiteEvent>,
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<LiteLink>,
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    pub status: Option<LiteStatus>,
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct LiteEvent {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(bytes = "bytes", tag = "2")]
    pub name: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<LiteKeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct LiteLink {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub trace_state: Bytes,
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<LiteKeyValue>,
    #[prost(uint32, tag = "5")]
    pub dropped_attributes_count: u32,
    #[prost(fixed32, tag = "6")]
    pub flags: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct LiteStatus {
    #[prost(bytes = "bytes", tag = "2")]
    pub message: Bytes,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct LiteKeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<LiteAnyValue>,
    #[prost(int32, tag = "3")]
    pub key_strindex: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct LiteAnyValue {
    #[prost(oneof = "LiteValue", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub value: Option<LiteValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum LiteValue {
    #[prost(bytes = "bytes", tag = "1")]
    StringValue(Bytes),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    IntValue(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    ArrayValue(LiteArray),
    #[prost(message, tag = "6")]
    KvlistValue(LiteKvList),
    #[prost(bytes = "bytes", tag = "7")]
    BytesValue(Bytes),
    #[prost(int32, tag = "8")]
    StringValueStrindex(i32),
}

#[derive(Clone, PartialEq, Message)]
pub struct LiteArray {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<LiteAnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LiteKvList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<LiteKeyValue>,
}

/// A string field that was checked as UTF-8 at decode.
pub fn text(bytes: &Bytes) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Why an export is not OTLP protobuf.
#[derive(Debug, thiserror::Error)]
pub enum NotOtlp {
    #[error(transparent)]
    Protobuf(#[from] prost::DecodeError),
    /// prost's own words for it.
    #[error("failed to decode Protobuf message: invalid string value: data is not UTF-8 encoded")]
    NotUtf8,
}

impl LiteAnyValue {
    /// Whether a string at any depth is longer than `max` (the store would cut it).
    fn over(&self, max: usize) -> bool {
        match &self.value {
            Some(LiteValue::StringValue(s)) => s.len() > max,
            Some(LiteValue::ArrayValue(a)) => a.values.iter().any(|v| v.over(max)),
            Some(LiteValue::KvlistValue(kv)) => attributes_over(&kv.values),
            _ => false,
        }
    }
}

/// Whether [`crate::limits`] would cut one of these attributes' values.
fn attributes_over(attributes: &[LiteKeyValue]) -> bool {
    attributes.iter().any(|kv| {
        let max = if &kv.key[..]
            == opentelemetry_semantic_conventions::resource::SERVICE_NAME.as_bytes()
        {
            MAX_SERVICE_NAME_BYTES
        } else {
            MAX_ATTRIBUTE_VALUE_BYTES
        };
        kv.value.as_ref().is_some_and(|v| v.over(max))
    })
}

/// Where a message's strings are, and which of its fields are messages to look into.
struct Shape {
    strings: &'static [u32],
    messages: &'static [(u32, &'static Shape)],
}

static ANY_VALUE: Shape = Shape {
    strings: &[1],
    messages: &[(5, &ARRAY_VALUE), (6, &KV_LIST)],
};
static ARRAY_VALUE: Shape = Shape {
    strings: &[],
    messages: &[(1, &ANY_VALUE)],
};
static KV_LIST: Shape = Shape {
    strings: &[],
    messages: &[(1, &KEY_VALUE)],
};
static KEY_VALUE: Shape = Shape {
    strings: &[1],
    messages: &[(2, &ANY_VALUE)],
};
static EVENT: Shape = Shape {
    strings: &[2],
    messages: &[(3, &KEY_VALUE)],
};
static LINK: Shape = Shape {
    strings: &[3],
    messages: &[(4, &KEY_VALUE)],
};
static STATUS: Shape = Shape {
    strings: &[2],
    messages: &[],
};
static SPAN: Shape = Shape {
    strings: &[3, 5],
    messages: &[(9, &KEY_VALUE), (11, &EVENT), (13, &LINK), (15, &STATUS)],
};

/// Checks every occurrence of every string field of `bytes` (a message of `shape` that prost's
/// derive has already read without error) as UTF-8, as prost does as it decodes. The views keep
/// only the last occurrence of a field, so an earlier one that prost refuses would otherwise go
/// unseen and be stored as it came. A field this walk does not know how to skip (a group) has
/// prost decode the whole span to decide.
fn check_strings(bytes: &Bytes, shape: &Shape) -> Result<(), NotOtlp> {
    match walk_strings(bytes, shape) {
        Some(result) => result,
        None => Span::decode(bytes.clone()).map(drop).map_err(NotOtlp::from),
    }
}

fn walk_strings(mut buf: &[u8], shape: &Shape) -> Option<Result<(), NotOtlp>> {
    use prost::encoding::decode_varint;
    while !buf.is_empty() {
        let key = decode_varint(&mut buf).ok()?;
        let tag = u32::try_from(key >> 3).ok()?;
        match key & 7 {
            0 => {
                decode_varint(&mut buf).ok()?;
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            2 => {
                let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
                let field = buf.get(..len)?;
                buf = &buf[len..];
                if shape.strings.contains(&tag) {
                    if std::str::from_utf8(field).is_err() {
                        return Some(Err(NotOtlp::NotUtf8));
                    }
                } else if let Some((_, inner)) = shape.messages.iter().find(|(t, _)| *t == tag) {
                    match walk_strings(field, inner)? {
                        Ok(()) => {}
                        failed => return Some(failed),
                    }
                }
            }
            _ => return None,
        }
    }
    Some(Ok(()))
}

impl LiteSpan {
    /// Whether this span must be decoded whole before it is stored: its ids are not ones the
    /// store keeps, or a limit would cut its name or one of its values.
    pub fn needs_decoding(&self) -> bool {
        let bad_id = |id: &Bytes, len: usize| id.len() != len || id.iter().all(|b| *b == 0);
        bad_id(&self.trace_id, 16)
            || bad_id(&self.span_id, 8)
            || !(self.parent_span_id.is_empty() || self.parent_span_id.len() == 8)
            || self.name.len() > MAX_SPAN_NAME_BYTES
            || attributes_over(&self.attributes)
            || self
                .events
                .iter()
                .any(|e| e.name.len() > MAX_SPAN_NAME_BYTES || attributes_over(&e.attributes))
            || self.links.iter().any(|l| attributes_over(&l.attributes))
    }

    pub fn name(&self) -> &str {
        text(&self.name)
    }
}

/// One span of an [`EncodedTraces`]: its bytes as they came, and the view read from them.
#[derive(Debug, Clone)]
pub struct EncodedSpan {
    pub bytes: Bytes,
    pub view: LiteSpan,
}

impl EncodedSpan {
    /// The span decoded whole (for one that [`LiteSpan::needs_decoding`]).
    pub fn decode(&self) -> Span {
        // The bytes were read once already by a view that checks what prost checks.
        Span::decode(self.bytes.clone()).unwrap_or_default()
    }

    /// Appends the span's bytes without its `trace_id` field (the block keeps it beside), and
    /// returns how many bytes were written.
    pub fn write_without_trace_id(&self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        let mut rest = &self.bytes[..];
        let total = rest.len();
        let mut copied_to = 0;
        while !rest.is_empty() {
            let at = total - rest.len();
            let Ok((tag, wire)) = decode_key(&mut rest) else {
                break;
            };
            if skip(wire, &mut rest).is_none() {
                break;
            }
            if tag == 1 {
                out.extend_from_slice(&self.bytes[copied_to..at]);
                copied_to = total - rest.len();
            }
        }
        out.extend_from_slice(&self.bytes[copied_to..]);
        out.len() - before
    }
}

/// Skips one field's value of wire type `wire`; `None` when the bytes end first.
fn skip(wire: WireType, buf: &mut &[u8]) -> Option<()> {
    let len = match wire {
        WireType::Varint => {
            decode_varint(buf).ok()?;
            return Some(());
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => usize::try_from(decode_varint(buf).ok()?).ok()?,
        // Groups are not part of OTLP: a span with one is copied from there on as it came.
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    if buf.remaining() < len {
        return None;
    }
    buf.advance(len);
    Some(())
}

/// One scope's spans.
#[derive(Debug, Clone)]
pub struct EncodedScope {
    pub scope: Option<InstrumentationScope>,
    pub spans: Vec<EncodedSpan>,
}

/// One resource's scopes.
#[derive(Debug, Clone)]
pub struct EncodedResource {
    pub resource: Option<Resource>,
    pub scopes: Vec<EncodedScope>,
}

/// A binary OTLP trace export, read in place.
#[derive(Debug, Clone)]
pub struct EncodedTraces {
    bytes: Bytes,
    resources: Vec<EncodedResource>,
    spans: u64,
}

impl EncodedTraces {
    /// Reads an `ExportTraceServiceRequest`, refusing exactly what prost's decode refuses.
    pub fn decode(bytes: Bytes) -> Result<Self, NotOtlp> {
        let raw = RawRequest::decode(bytes.clone())?;
        let mut spans = 0u64;
        let mut resources = Vec::with_capacity(raw.resource_spans.len());
        for rs in raw.resource_spans {
            let mut scopes = Vec::with_capacity(rs.scope_spans.len());
            for ss in rs.scope_spans {
                let mut out = Vec::with_capacity(ss.spans.len());
                for bytes in ss.spans {
                    let view = LiteSpan::decode(bytes.clone())?;
                    check_strings(&bytes, &SPAN)?;
                    out.push(EncodedSpan { bytes, view });
                }
                spans += out.len() as u64;
                scopes.push(EncodedScope {
                    scope: ss.scope,
                    spans: out,
                });
            }
            resources.push(EncodedResource {
                resource: rs.resource,
                scopes,
            });
        }
        Ok(Self {
            bytes,
            resources,
            spans,
        })
    }

    /// The export's bytes as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn resources(&self) -> &[EncodedResource] {
        &self.resources
    }

    pub fn into_resources(self) -> Vec<EncodedResource> {
        self.resources
    }

    pub fn span_count(&self) -> u64 {
        self.spans
    }

    /// The export decoded whole.
    pub fn to_request(&self) -> ExportTraceServiceRequest {
        // Read once already by views that refuse what prost refuses.
        ExportTraceServiceRequest::decode(self.bytes.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("svc".into()))],
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

    fn span() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /x".into(),
            kind: 2,
            start_time_unix_nano: 5,
            end_time_unix_nano: 9,
            attributes: vec![
                kv("http.route", Value::StringValue("/x".into())),
                kv("n", Value::IntValue(3)),
            ],
            flags: 0x301,
            dropped_attributes_count: 4,
            ..Default::default()
        }
    }

    #[test]
    fn a_span_written_without_its_trace_id_decodes_to_the_span_less_the_id() {
        let bytes = Bytes::from(request(vec![span()]).encode_to_vec());
        let traces = EncodedTraces::decode(bytes).expect("valid");
        assert_eq!(traces.span_count(), 1);
        let one = &traces.resources()[0].scopes[0].spans[0];
        assert_eq!(one.view.name(), "GET /x");
        assert!(!one.view.needs_decoding());
        let mut out = Vec::new();
        let n = one.write_without_trace_id(&mut out);
        assert_eq!(n, out.len());
        let back = Span::decode(&out[..]).expect("decodes");
        assert_eq!(
            back,
            Span {
                trace_id: Vec::new(),
                ..span()
            }
        );
    }

    #[test]
    fn what_prost_refuses_is_refused() {
        let mut bad = span();
        bad.attributes[0].key = "k".into();
        let mut bytes = request(vec![bad]).encode_to_vec();
        // The attribute key "k" is the only 0x6b byte: make it invalid UTF-8.
        let at = bytes.iter().position(|b| *b == b'k').expect("the key");
        bytes[at] = 0xff;
        assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());
        assert!(EncodedTraces::decode(Bytes::from(bytes)).is_err());
        let truncated = request(vec![span()]).encode_to_vec();
        let truncated = &truncated[..truncated.len() - 3];
        assert!(ExportTraceServiceRequest::decode(truncated).is_err());
        assert!(EncodedTraces::decode(Bytes::copy_from_slice(truncated)).is_err());
    }

    #[test]
    fn spans_the_store_would_change_are_decoded_whole() {
        let long_name = Span {
            name: "n".repeat(MAX_SPAN_NAME_BYTES + 1),
            ..span()
        };
        let mut long_value = span();
        long_value.attributes.push(kv(
            "big",
            Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::StringValue(
                        "v".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 1),
                    )),
                }],
            }),
        ));
        let zero_trace = Span {
            trace_id: vec![0; 16],
            ..span()
        };
        let traces = EncodedTraces::decode(Bytes::from(
            request(vec![long_name, long_value, zero_trace, span()]).encode_to_vec(),
        ))
        .expect("valid");
        let needs: Vec<bool> = traces.resources()[0].scopes[0]
            .spans
            .iter()
            .map(|s| s.view.needs_decoding())
            .collect();
        assert_eq!(needs, [true, true, true, false]);
    }

    /// A string field sent twice: prost checks every occurrence, the views keep the last.
    #[test]
    fn a_string_sent_twice_is_refused_when_prost_refuses_either() {
        // One length-delimited field (every length here is under 128: one byte).
        let field = |tag: u8, body: &[u8]| {
            let mut out = vec![tag << 3 | 2, body.len() as u8];
            out.extend_from_slice(body);
            out
        };
        // ExportTraceServiceRequest { resource_spans { scope_spans { spans: [span] } } }
        let request = |span: Vec<u8>| Bytes::from(field(1, &field(2, &field(2, &span))));
        let name_twice =
            |first: &[u8], second: &[u8]| request([field(5, first), field(5, second)].concat());
        let cases = [
            // The fuzzer's case: a name with a cut UTF-8 sequence, then an empty one.
            (name_twice(b"ab\xf4", b""), false),
            (name_twice(b"", b"ab\xf4"), false),
            (name_twice(b"ok", b"fine"), true),
            // The same through an attribute key (Span.attributes = 9, KeyValue.key = 1).
            (
                request(field(9, &[field(1, b"\xff"), field(1, b"k")].concat())),
                false,
            ),
        ];
        for (bytes, valid) in cases {
            let prost = ExportTraceServiceRequest::decode(bytes.clone()).is_ok();
            assert_eq!(prost, valid, "{bytes:?}");
            assert_eq!(
                EncodedTraces::decode(bytes.clone()).is_ok(),
                valid,
                "{bytes:?}"
            );
        }
    }
}
