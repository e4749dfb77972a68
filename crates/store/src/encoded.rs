//! A trace export kept in the bytes it arrived in: each span's protobuf is read in place, its
//! strings and ids left where they lie in the request's buffer ([`Slice`]s of the span's bytes),
//! and written to the store as it came (less its trace id), instead of being decoded into owned
//! strings and encoded again.
//!
//! The view types below mirror every field of the OTLP span model. Spans are read by a reader of
//! our own ([`Cursor`]), in one pass that checks what prost's decode of the whole request checks,
//! the way it checks it: wire types, lengths, varints, every occurrence of every string field as
//! UTF-8, prost's recursion limit at the depth the span has in the request, unknown fields and
//! groups skipped as `prost::encoding::skip_field` skips them. So an export
//! [`EncodedTraces::decode`] accepts is exactly one that `ExportTraceServiceRequest::decode`
//! accepts, and every span stored from it decodes again on read; when it refuses one, prost's
//! decode of the export says why. A field sent twice ends as prost leaves it (the last value of a
//! scalar, messages merged). Resources and scopes, small and once per group, are decoded by prost.
//!
//! A span that a store limit would change (an oversized name or value) or that cannot be
//! stored (bad ids) is decoded whole and handled as a decoded export's span is
//! ([`EncodedSpan::needs_decoding`]).

use std::ops::Range;

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

/// Where a string or bytes field lies in its span's bytes ([`EncodedSpan::get`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slice {
    start: u32,
    end: u32,
}

impl Slice {
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The bytes this slice names in `span` (the bytes of the span it was read from).
    fn of(self, span: &[u8]) -> &[u8] {
        span.get(self.range()).unwrap_or_default()
    }

    /// [`of`](Self::of) for a string field, checked as UTF-8 when the span was read.
    fn text_of(self, span: &[u8]) -> &str {
        std::str::from_utf8(self.of(span)).unwrap_or_default()
    }
}

/// A span read in place: every field of `Span`, strings and ids as [`Slice`]s of its bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteSpan {
    pub trace_id: Slice,
    pub span_id: Slice,
    pub trace_state: Slice,
    pub parent_span_id: Slice,
    pub name: Slice,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<LiteKeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<LiteEvent>,
    pub dropped_events_count: u32,
    pub links: Vec<LiteLink>,
    pub dropped_links_count: u32,
    pub status: Option<LiteStatus>,
    pub flags: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteEvent {
    pub time_unix_nano: u64,
    pub name: Slice,
    pub attributes: Vec<LiteKeyValue>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteLink {
    pub trace_id: Slice,
    pub span_id: Slice,
    pub trace_state: Slice,
    pub attributes: Vec<LiteKeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteStatus {
    pub message: Slice,
    pub code: i32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteKeyValue {
    pub key: Slice,
    pub value: Option<LiteAnyValue>,
    pub key_strindex: i32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteAnyValue {
    pub value: Option<LiteValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LiteValue {
    StringValue(Slice),
    BoolValue(bool),
    IntValue(i64),
    DoubleValue(f64),
    ArrayValue(LiteArray),
    KvlistValue(LiteKvList),
    BytesValue(Slice),
    StringValueStrindex(i32),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteArray {
    pub values: Vec<LiteAnyValue>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteKvList {
    pub values: Vec<LiteKeyValue>,
}

/// Why an export is not OTLP protobuf.
#[derive(Debug, thiserror::Error)]
pub enum NotOtlp {
    #[error(transparent)]
    Protobuf(#[from] prost::DecodeError),
    /// The reader refused an export that prost's decode accepts: never expected (the fuzz target
    /// `otlp_traces` holds the two to the same verdicts), refused rather than stored half-read.
    #[error("the export could not be read in place")]
    Unreadable,
}

/// A span's attributes, with the bytes their slices point into.
#[derive(Debug, Clone, Copy)]
pub struct LiteAttributes<'a> {
    bytes: &'a [u8],
    list: &'a [LiteKeyValue],
}

impl<'a> LiteAttributes<'a> {
    /// The first attribute named `key`.
    pub fn find(&self, key: &str) -> Option<&'a LiteKeyValue> {
        self.list
            .iter()
            .find(|kv| self.bytes(kv.key) == key.as_bytes())
    }

    /// The value of the first attribute named `key`.
    pub fn get(&self, key: &str) -> Option<&'a LiteValue> {
        self.find(key)?.value.as_ref()?.value.as_ref()
    }

    pub fn bytes(&self, slice: Slice) -> &'a [u8] {
        slice.of(self.bytes)
    }

    /// A string field (checked as UTF-8 when the span was read).
    pub fn text(&self, slice: Slice) -> &'a str {
        slice.text_of(self.bytes)
    }

    /// Whether [`crate::limits`] would cut one of these attributes' values.
    fn over_limits(&self) -> bool {
        self.any_over(self.list)
    }

    fn any_over(&self, list: &[LiteKeyValue]) -> bool {
        list.iter().any(|kv| {
            let max = if self.bytes(kv.key)
                == opentelemetry_semantic_conventions::resource::SERVICE_NAME.as_bytes()
            {
                MAX_SERVICE_NAME_BYTES
            } else {
                MAX_ATTRIBUTE_VALUE_BYTES
            };
            kv.value.as_ref().is_some_and(|v| self.value_over(v, max))
        })
    }

    /// Whether a string at any depth is longer than `max` (the store would cut it).
    fn value_over(&self, value: &LiteAnyValue, max: usize) -> bool {
        match &value.value {
            Some(LiteValue::StringValue(s)) => s.len() > max,
            Some(LiteValue::ArrayValue(a)) => a.values.iter().any(|v| self.value_over(v, max)),
            Some(LiteValue::KvlistValue(kv)) => self.any_over(&kv.values),
            _ => false,
        }
    }
}

/// A decode failure; prost's decode of the export says what it was.
#[derive(Debug)]
struct Malformed;

type Read<T> = Result<T, Malformed>;

/// prost's recursion count for a span's own fields: the request's fields are merged at
/// `prost::RECURSION_LIMIT` (100), a `ResourceSpans`' at 99, a `ScopeSpans`' at 98, a span's at 97.
const SPAN_DEPTH: u32 = 97;

/// A reader of one span's bytes; the message being read ends at `end`.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl Cursor<'_> {
    #[inline]
    fn more(&self) -> bool {
        self.pos < self.end
    }

    #[inline]
    fn left(&self) -> usize {
        self.end - self.pos
    }

    #[inline]
    fn varint(&mut self) -> Read<u64> {
        // Most varints (lengths, kinds, keys) are one byte.
        if let Some(&byte) = self.data[..self.end].get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        let mut rest = &self.data[self.pos..self.end];
        let value = decode_varint(&mut rest).map_err(|_| Malformed)?;
        self.pos = self.end - rest.len();
        Ok(value)
    }

    #[inline]
    fn key(&mut self) -> Read<(u32, WireType)> {
        // A one-byte key (tags 1–15), checked as `decode_key` checks it.
        if let Some(&byte) = self.data[..self.end].get(self.pos)
            && byte < 0x80
        {
            let wire = WireType::try_from(u64::from(byte & 7)).map_err(|_| Malformed)?;
            if byte >> 3 == 0 {
                return Err(Malformed);
            }
            self.pos += 1;
            return Ok((u32::from(byte >> 3), wire));
        }
        let mut rest = &self.data[self.pos..self.end];
        let key = decode_key(&mut rest).map_err(|_| Malformed)?;
        self.pos = self.end - rest.len();
        Ok(key)
    }

    #[inline]
    fn advance(&mut self, len: u64) -> Read<Range<usize>> {
        if len > self.left() as u64 {
            return Err(Malformed);
        }
        let at = self.pos;
        self.pos += len as usize;
        Ok(at..self.pos)
    }

    #[inline]
    fn int(&mut self, wire: WireType) -> Read<u64> {
        expect(wire, WireType::Varint)?;
        self.varint()
    }

    #[inline]
    fn fixed64(&mut self, wire: WireType) -> Read<u64> {
        expect(wire, WireType::SixtyFourBit)?;
        let at = self.advance(8)?;
        let bytes: [u8; 8] = self.data[at].try_into().map_err(|_| Malformed)?;
        Ok(u64::from_le_bytes(bytes))
    }

    #[inline]
    fn fixed32(&mut self, wire: WireType) -> Read<u32> {
        expect(wire, WireType::ThirtyTwoBit)?;
        let at = self.advance(4)?;
        let bytes: [u8; 4] = self.data[at].try_into().map_err(|_| Malformed)?;
        Ok(u32::from_le_bytes(bytes))
    }

    #[inline]
    fn bytes(&mut self, wire: WireType) -> Read<Slice> {
        expect(wire, WireType::LengthDelimited)?;
        let len = self.varint()?;
        let at = self.advance(len)?;
        // A span's bytes come from a request under the body limit (far under 4 GiB).
        let start = u32::try_from(at.start).map_err(|_| Malformed)?;
        let end = u32::try_from(at.end).map_err(|_| Malformed)?;
        Ok(Slice { start, end })
    }

    #[inline]
    fn string(&mut self, wire: WireType) -> Read<Slice> {
        let slice = self.bytes(wire)?;
        let text = &self.data[slice.range()];
        // ASCII (nearly every key and value) is checked a word at a time.
        if !text.is_ascii() {
            std::str::from_utf8(text).map_err(|_| Malformed)?;
        }
        Ok(slice)
    }

    /// Merges a nested message field into `message`, as `prost::encoding::message::merge` does
    /// in a message whose fields are merged at recursion count `depth`.
    fn merge<M: Fields>(&mut self, wire: WireType, depth: u32, message: &mut M) -> Read<()> {
        expect(wire, WireType::LengthDelimited)?;
        if depth == 0 {
            return Err(Malformed);
        }
        let len = self.varint()?;
        let inner = self.advance(len)?;
        let outer = std::mem::replace(&mut self.end, inner.end);
        self.pos = inner.start;
        while self.more() {
            let (tag, wire) = self.key()?;
            message.field(self, tag, wire, depth - 1)?;
        }
        self.end = outer;
        Ok(())
    }

    fn message<M: Fields>(&mut self, wire: WireType, depth: u32) -> Read<M> {
        let mut message = M::default();
        self.merge(wire, depth, &mut message)?;
        Ok(message)
    }

    /// An unknown field, skipped as `prost::encoding::skip_field` skips it.
    fn skip(&mut self, wire: WireType, tag: u32, depth: u32) -> Read<()> {
        if depth == 0 {
            return Err(Malformed);
        }
        let len = match wire {
            WireType::Varint => {
                self.varint()?;
                0
            }
            WireType::ThirtyTwoBit => 4,
            WireType::SixtyFourBit => 8,
            WireType::LengthDelimited => self.varint()?,
            WireType::StartGroup => loop {
                let (inner_tag, inner_wire) = self.key()?;
                if inner_wire == WireType::EndGroup {
                    if inner_tag != tag {
                        return Err(Malformed);
                    }
                    break 0;
                }
                self.skip(inner_wire, inner_tag, depth - 1)?;
            },
            WireType::EndGroup => return Err(Malformed),
        };
        self.advance(len).map(drop)
    }
}

fn expect(wire: WireType, want: WireType) -> Read<()> {
    if wire == want { Ok(()) } else { Err(Malformed) }
}

/// A message read field by field; `depth` is prost's recursion count for its fields.
trait Fields: Default {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()>;
}

impl Fields for LiteSpan {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        match tag {
            1 => self.trace_id = c.bytes(wire)?,
            2 => self.span_id = c.bytes(wire)?,
            3 => self.trace_state = c.string(wire)?,
            4 => self.parent_span_id = c.bytes(wire)?,
            5 => self.name = c.string(wire)?,
            6 => self.kind = c.int(wire)? as i32,
            7 => self.start_time_unix_nano = c.fixed64(wire)?,
            8 => self.end_time_unix_nano = c.fixed64(wire)?,
            9 => {
                if self.attributes.capacity() == 0 {
                    // Room for what the rest of the span could hold, so the list grows at most
                    // rarely: a span's attributes are most of its bytes, at some 20–60 each.
                    self.attributes.reserve((c.left() / 32).clamp(4, 64));
                }
                self.attributes.push(c.message(wire, depth)?);
            }
            10 => self.dropped_attributes_count = c.int(wire)? as u32,
            11 => self.events.push(c.message(wire, depth)?),
            12 => self.dropped_events_count = c.int(wire)? as u32,
            13 => self.links.push(c.message(wire, depth)?),
            14 => self.dropped_links_count = c.int(wire)? as u32,
            15 => c.merge(
                wire,
                depth,
                self.status.get_or_insert_with(Default::default),
            )?,
            16 => self.flags = c.fixed32(wire)?,
            _ => c.skip(wire, tag, depth)?,
        }
        Ok(())
    }
}

impl Fields for LiteEvent {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        match tag {
            1 => self.time_unix_nano = c.fixed64(wire)?,
            2 => self.name = c.string(wire)?,
            3 => self.attributes.push(c.message(wire, depth)?),
            4 => self.dropped_attributes_count = c.int(wire)? as u32,
            _ => c.skip(wire, tag, depth)?,
        }
        Ok(())
    }
}

impl Fields for LiteLink {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        match tag {
            1 => self.trace_id = c.bytes(wire)?,
            2 => self.span_id = c.bytes(wire)?,
            3 => self.trace_state = c.string(wire)?,
            4 => self.attributes.push(c.message(wire, depth)?),
            5 => self.dropped_attributes_count = c.int(wire)? as u32,
            6 => self.flags = c.fixed32(wire)?,
            _ => c.skip(wire, tag, depth)?,
        }
        Ok(())
    }
}

impl Fields for LiteStatus {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        match tag {
            2 => self.message = c.string(wire)?,
            3 => self.code = c.int(wire)? as i32,
            _ => c.skip(wire, tag, depth)?,
        }
        Ok(())
    }
}

impl Fields for LiteKeyValue {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        match tag {
            1 => self.key = c.string(wire)?,
            2 => c.merge(wire, depth, self.value.get_or_insert_with(Default::default))?,
            3 => self.key_strindex = c.int(wire)? as i32,
            _ => c.skip(wire, tag, depth)?,
        }
        Ok(())
    }
}

impl Fields for LiteAnyValue {
    /// The `value` oneof, as prost's derive merges it: a message variant merges into the one
    /// already there, any other replaces it.
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        let value = match tag {
            1 => LiteValue::StringValue(c.string(wire)?),
            2 => LiteValue::BoolValue(c.int(wire)? != 0),
            3 => LiteValue::IntValue(c.int(wire)? as i64),
            4 => LiteValue::DoubleValue(f64::from_bits(c.fixed64(wire)?)),
            5 => match &mut self.value {
                Some(LiteValue::ArrayValue(array)) => return c.merge(wire, depth, array),
                _ => LiteValue::ArrayValue(c.message(wire, depth)?),
            },
            6 => match &mut self.value {
                Some(LiteValue::KvlistValue(list)) => return c.merge(wire, depth, list),
                _ => LiteValue::KvlistValue(c.message(wire, depth)?),
            },
            7 => LiteValue::BytesValue(c.bytes(wire)?),
            8 => LiteValue::StringValueStrindex(c.int(wire)? as i32),
            _ => return c.skip(wire, tag, depth),
        };
        self.value = Some(value);
        Ok(())
    }
}

impl Fields for LiteArray {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        match tag {
            1 => self.values.push(c.message(wire, depth)?),
            _ => c.skip(wire, tag, depth)?,
        }
        Ok(())
    }
}

impl Fields for LiteKvList {
    fn field(&mut self, c: &mut Cursor<'_>, tag: u32, wire: WireType, depth: u32) -> Read<()> {
        match tag {
            1 => self.values.push(c.message(wire, depth)?),
            _ => c.skip(wire, tag, depth)?,
        }
        Ok(())
    }
}

impl LiteSpan {
    /// Reads one span's bytes (a span of a request, at the depth spans have there).
    fn read(data: &[u8]) -> Read<Self> {
        let mut c = Cursor {
            data,
            pos: 0,
            end: data.len(),
        };
        let mut span = LiteSpan::default();
        while c.more() {
            let (tag, wire) = c.key()?;
            span.field(&mut c, tag, wire, SPAN_DEPTH)?;
        }
        Ok(span)
    }
}

/// One span of an [`EncodedTraces`]: its bytes as they came, and the view read from them.
#[derive(Debug, Clone)]
pub struct EncodedSpan {
    pub bytes: Bytes,
    pub view: LiteSpan,
}

impl EncodedSpan {
    /// The bytes a [`Slice`] of this span's view points to.
    pub fn get(&self, slice: Slice) -> &[u8] {
        slice.of(&self.bytes)
    }

    /// A string field of this span's view (checked as UTF-8 when it was read).
    pub fn text(&self, slice: Slice) -> &str {
        slice.text_of(&self.bytes)
    }

    pub fn name(&self) -> &str {
        self.text(self.view.name)
    }

    pub fn trace_id(&self) -> &[u8] {
        self.get(self.view.trace_id)
    }

    pub fn span_id(&self) -> &[u8] {
        self.get(self.view.span_id)
    }

    pub fn parent_span_id(&self) -> &[u8] {
        self.get(self.view.parent_span_id)
    }

    pub fn attributes(&self) -> LiteAttributes<'_> {
        LiteAttributes {
            bytes: &self.bytes,
            list: &self.view.attributes,
        }
    }

    /// Whether this span must be decoded whole before it is stored: its ids are not ones the
    /// store keeps, or a limit would cut its name or one of its values.
    pub fn needs_decoding(&self) -> bool {
        let view = &self.view;
        let bad_id = |id: &[u8], len: usize| id.len() != len || id.iter().all(|b| *b == 0);
        let with = |list| LiteAttributes {
            bytes: &self.bytes,
            list,
        };
        bad_id(self.trace_id(), 16)
            || bad_id(self.span_id(), 8)
            || !(view.parent_span_id.is_empty() || view.parent_span_id.len() == 8)
            || view.name.len() > MAX_SPAN_NAME_BYTES
            || self.attributes().over_limits()
            || view
                .events
                .iter()
                .any(|e| e.name.len() > MAX_SPAN_NAME_BYTES || with(&e.attributes).over_limits())
            || view.links.iter().any(|l| with(&l.attributes).over_limits())
    }

    /// The view as a decoded span: what checks (tests, the fuzz target `otlp_traces`) compare
    /// with prost's decode of the same bytes.
    pub fn view_as_span(&self) -> Span {
        use opentelemetry_proto::tonic::trace::v1::{Status, span::Event, span::Link};
        let v = &self.view;
        Span {
            trace_id: self.get(v.trace_id).to_vec(),
            span_id: self.get(v.span_id).to_vec(),
            trace_state: self.text(v.trace_state).to_owned(),
            parent_span_id: self.get(v.parent_span_id).to_vec(),
            flags: v.flags,
            name: self.name().to_owned(),
            kind: v.kind,
            start_time_unix_nano: v.start_time_unix_nano,
            end_time_unix_nano: v.end_time_unix_nano,
            attributes: self.key_values(&v.attributes),
            dropped_attributes_count: v.dropped_attributes_count,
            events: (v.events.iter())
                .map(|e| Event {
                    time_unix_nano: e.time_unix_nano,
                    name: self.text(e.name).to_owned(),
                    attributes: self.key_values(&e.attributes),
                    dropped_attributes_count: e.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: v.dropped_events_count,
            links: (v.links.iter())
                .map(|l| Link {
                    trace_id: self.get(l.trace_id).to_vec(),
                    span_id: self.get(l.span_id).to_vec(),
                    trace_state: self.text(l.trace_state).to_owned(),
                    attributes: self.key_values(&l.attributes),
                    dropped_attributes_count: l.dropped_attributes_count,
                    flags: l.flags,
                })
                .collect(),
            dropped_links_count: v.dropped_links_count,
            status: v.status.as_ref().map(|s| Status {
                message: self.text(s.message).to_owned(),
                code: s.code,
            }),
        }
    }

    fn key_values(&self, list: &[LiteKeyValue]) -> Vec<crate::api::KeyValue> {
        (list.iter())
            .map(|kv| crate::api::KeyValue {
                key: self.text(kv.key).to_owned(),
                value: kv.value.as_ref().map(|v| self.any_value(v)),
                key_strindex: kv.key_strindex,
            })
            .collect()
    }

    fn any_value(&self, value: &LiteAnyValue) -> crate::api::AnyValue {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList, any_value::Value};
        let value = value.value.as_ref().map(|v| match v {
            LiteValue::StringValue(s) => Value::StringValue(self.text(*s).to_owned()),
            LiteValue::BoolValue(b) => Value::BoolValue(*b),
            LiteValue::IntValue(i) => Value::IntValue(*i),
            LiteValue::DoubleValue(d) => Value::DoubleValue(*d),
            LiteValue::ArrayValue(a) => Value::ArrayValue(ArrayValue {
                values: a.values.iter().map(|v| self.any_value(v)).collect(),
            }),
            LiteValue::KvlistValue(l) => Value::KvlistValue(KeyValueList {
                values: self.key_values(&l.values),
            }),
            LiteValue::BytesValue(b) => Value::BytesValue(self.get(*b).to_vec()),
            LiteValue::StringValueStrindex(i) => Value::StringValueStrindex(*i),
        });
        crate::api::AnyValue { value }
    }

    /// The span decoded whole (for one that [`needs_decoding`](Self::needs_decoding)).
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
        let raw_bytes = &bytes[..];
        let mut spans = 0u64;
        let mut resources = Vec::with_capacity(raw.resource_spans.len());
        for rs in raw.resource_spans {
            let mut scopes = Vec::with_capacity(rs.scope_spans.len());
            for ss in rs.scope_spans {
                let mut out = Vec::with_capacity(ss.spans.len());
                for bytes in ss.spans {
                    let Ok(view) = LiteSpan::read(&bytes) else {
                        return Err(match ExportTraceServiceRequest::decode(raw_bytes) {
                            Err(prost) => NotOtlp::Protobuf(prost),
                            Ok(_) => NotOtlp::Unreadable,
                        });
                    };
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
        assert_eq!(one.name(), "GET /x");
        assert!(!one.needs_decoding());
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
            .map(|s| s.needs_decoding())
            .collect();
        assert_eq!(needs, [true, true, true, false]);
    }

    /// One length-delimited field, any length.
    fn ld(tag: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_key(tag, WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    /// `ExportTraceServiceRequest { resource_spans { scope_spans { spans: [span] } } }`
    fn wrap(span: &[u8]) -> Bytes {
        Bytes::from(ld(1, &ld(2, &ld(2, span))))
    }

    /// The view, as a span, against prost's decode of the same bytes (compared encoded, so a
    /// NaN equals itself).
    fn assert_view_is_prosts(bytes: Bytes) {
        let decoded = ExportTraceServiceRequest::decode(bytes.clone()).expect("prost reads it");
        let in_place = EncodedTraces::decode(bytes).expect("read in place");
        let spans = (decoded.resource_spans.iter())
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans);
        let views = (in_place.resources().iter())
            .flat_map(|r| &r.scopes)
            .flat_map(|s| &s.spans);
        let mut n = 0;
        for (span, encoded) in spans.zip(views) {
            assert_eq!(
                encoded.view_as_span().encode_to_vec(),
                span.encode_to_vec(),
                "{span:?}"
            );
            n += 1;
        }
        assert_eq!(n, in_place.span_count());
    }

    #[test]
    fn the_view_reads_what_prost_reads() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        use opentelemetry_proto::tonic::trace::v1::{Status, span::Event, span::Link};
        let every_kind = vec![
            kv("s", Value::StringValue("text".into())),
            kv("b", Value::BoolValue(true)),
            kv("i", Value::IntValue(-7)),
            kv("d", Value::DoubleValue(f64::NAN)),
            kv("raw", Value::BytesValue(vec![0, 255, 3])),
            kv("idx", Value::StringValueStrindex(4)),
            kv(
                "list",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(Value::IntValue(1)),
                            }],
                        })),
                    }],
                }),
            ),
            kv(
                "map",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", Value::StringValue("v".into()))],
                }),
            ),
            KeyValue {
                key: "empty".into(),
                value: None,
                key_strindex: 2,
            },
        ];
        let full = Span {
            trace_state: "a=1".into(),
            parent_span_id: vec![3; 8],
            attributes: every_kind.clone(),
            dropped_attributes_count: 1,
            events: vec![Event {
                time_unix_nano: 6,
                name: "exception".into(),
                attributes: every_kind.clone(),
                dropped_attributes_count: 2,
            }],
            dropped_events_count: 3,
            links: vec![Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                trace_state: "b=2".into(),
                attributes: every_kind,
                dropped_attributes_count: 4,
                flags: 0x100,
            }],
            dropped_links_count: 5,
            status: Some(Status {
                message: "broken".into(),
                code: 2,
            }),
            ..span()
        };
        assert_view_is_prosts(Bytes::from(request(vec![full, span()]).encode_to_vec()));

        // Fields sent twice or out of place: the last scalar wins, messages merge, unknown
        // fields (every wire type, a group among them) are skipped.
        let mut span_bytes = span().encode_to_vec();
        span_bytes.extend(ld(5, b"renamed"));
        span_bytes.extend(ld(15, &ld(2, b"first")));
        span_bytes.extend(ld(15, &[3 << 3, 1]));
        let array = |v: &[u8]| ld(2, &ld(5, &ld(1, v)));
        span_bytes.extend(ld(
            9,
            &[ld(1, b"merged"), array(&[3 << 3, 1]), array(&[2 << 3, 1])].concat(),
        ));
        span_bytes.extend(ld(
            9,
            &[
                ld(1, b"replaced"),
                ld(2, &[ld(1, b"s"), vec![3 << 3, 9]].concat()),
            ]
            .concat(),
        ));
        let key = |tag: u32, wire: WireType| {
            let mut out = Vec::new();
            prost::encoding::encode_key(tag, wire, &mut out);
            out
        };
        span_bytes.extend([key(99, WireType::Varint), vec![1]].concat());
        span_bytes.extend([key(98, WireType::ThirtyTwoBit), vec![1, 2, 3, 4]].concat());
        span_bytes.extend([key(97, WireType::SixtyFourBit), vec![1; 8]].concat());
        span_bytes.extend(ld(96, b"unknown"));
        span_bytes.extend(
            [
                key(95, WireType::StartGroup),
                key(1, WireType::Varint),
                vec![1],
                key(2, WireType::StartGroup),
                key(2, WireType::EndGroup),
                key(95, WireType::EndGroup),
            ]
            .concat(),
        );
        assert!(Span::decode(&span_bytes[..]).is_ok());
        assert_view_is_prosts(wrap(&span_bytes));
    }

    /// prost refuses a message nested deeper than its recursion limit, counted from the
    /// request: the reader counts the same from the span's place in it.
    #[test]
    fn the_recursion_limit_is_prosts_counted_from_the_request() {
        let mut verdicts = Vec::new();
        for depth in 40..=52 {
            // AnyValue { array_value { values: [AnyValue { … { int_value: 1 } }] } }, nested.
            let mut value = vec![3 << 3, 1];
            for _ in 0..depth {
                value = ld(5, &ld(1, &value));
            }
            let span_bytes = [
                span().encode_to_vec(),
                ld(9, &[ld(1, b"deep"), ld(2, &value)].concat()),
            ]
            .concat();
            let bytes = wrap(&span_bytes);
            let prost = ExportTraceServiceRequest::decode(bytes.clone()).is_ok();
            assert_eq!(
                EncodedTraces::decode(bytes.clone()).is_ok(),
                prost,
                "depth {depth}"
            );
            // A span read alone would pass where the request does not: the count is the request's.
            verdicts.push(prost);
            if prost {
                assert_view_is_prosts(bytes);
            }
        }
        assert!(
            verdicts.contains(&true) && verdicts.contains(&false),
            "{verdicts:?}"
        );

        // Groups in an unknown field are counted too.
        let mut verdicts = Vec::new();
        for depth in 90..=99 {
            let mut group = Vec::new();
            for level in (1..=depth).rev() {
                let tag: u32 = 100 + level;
                let mut open = Vec::new();
                prost::encoding::encode_key(tag, WireType::StartGroup, &mut open);
                let mut close = Vec::new();
                prost::encoding::encode_key(tag, WireType::EndGroup, &mut close);
                group = [open, group, close].concat();
            }
            let bytes = wrap(&[span().encode_to_vec(), group].concat());
            let prost = ExportTraceServiceRequest::decode(bytes.clone()).is_ok();
            assert_eq!(
                EncodedTraces::decode(bytes).is_ok(),
                prost,
                "groups {depth}"
            );
            verdicts.push(prost);
        }
        assert!(
            verdicts.contains(&true) && verdicts.contains(&false),
            "{verdicts:?}"
        );
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
