//! The bytes of one stored write: a small uncompressed header and an LZ4-compressed body.
//!
//! A span block keeps each span's protobuf bytes (re-encoded once, with its trace id taken out
//! and kept beside it) and each resource/scope once per block, so that reading a trace decodes
//! only its own spans and a search can skip spans by trace id or service without decoding them.
//!
//! ```text
//! payload: kind u8 | arrival u64 | kind-specific header | lz4(body)
//! spans header: min_start u64 | max_start u64 | span_count u32 | body_len u32
//!               | service_count u16 | (len u16, utf-8)*
//! spans body:   (trace_id [16] | group u32 | len u32 | span bytes)*
//!               | group_count u32 | (resource, scope, service as len-prefixed bytes)*
//!               | groups_at u32 | span_count u32
//! logs/metrics: body_len u32 | lz4(request protobuf)
//! ```

use prost::Message;
use std::cell::RefCell;
use std::sync::Arc;

use crate::api::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
    InstrumentationScope, Resource, Span,
};
use crate::encoded::{EncodedSpan, EncodedTraces};
use crate::facts::{SpanFacts, service_name_of, trace_u128};
use crate::limits;
use crate::segment::RECORD_HEADER_BYTES;

pub const KIND_SPANS: u8 = 1;
pub const KIND_LOGS: u8 = 2;
pub const KIND_METRICS: u8 = 3;

/// A block could not be read back: the bytes are not what this module wrote.
#[derive(Debug, thiserror::Error)]
#[error("stored block is corrupt: {0}")]
pub struct CorruptBlock(pub &'static str);

/// What a span block's header says, readable without decompressing the body.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanBlockHeader {
    pub arrival_unix_nanos: u64,
    pub min_start_unix_nanos: u64,
    pub max_start_unix_nanos: u64,
    pub span_count: u32,
    pub services: Vec<String>,
}

/// A span block ready to append, with what ingest derived from it.
#[derive(Debug)]
pub struct PreparedBlock {
    /// The record: [`RECORD_HEADER_BYTES`] left for the segment's frame, then the payload.
    pub payload: Vec<u8>,
    pub header: SpanBlockHeader,
    pub facts: Vec<SpanFacts>,
    pub rejected_spans: u64,
    pub rejection_reason: String,
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptBlock> {
        if self.bytes.len() < n {
            return Err(CorruptBlock("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CorruptBlock> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CorruptBlock> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, CorruptBlock> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, CorruptBlock> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes32(&mut self) -> Result<&'a [u8], CorruptBlock> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

thread_local! {
    static BODY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Appends `body`, LZ4-compressed, to `out`. LZ4 rather than deflate: measured on seeds-like
/// spans it keeps blocks under 150 bytes per span at a fraction of deflate's CPU per write.
fn compress_into(mut out: Vec<u8>, body: &[u8]) -> Vec<u8> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.resize(lz4_flex::block::get_maximum_output_size(body.len()), 0);
        // The scratch has the maximum size LZ4 can need, so compression cannot fail.
        let written = lz4_flex::block::compress_into(body, &mut scratch).unwrap_or(0);
        out.reserve_exact(written);
        out.extend_from_slice(&scratch[..written]);
    });
    out
}

fn decompress(bytes: &[u8], len: usize) -> Result<Vec<u8>, CorruptBlock> {
    let mut out = vec![0u8; len];
    let n =
        lz4_flex::block::decompress_into(bytes, &mut out).map_err(|_| CorruptBlock("bad lz4"))?;
    if n != len {
        return Err(CorruptBlock("body length"));
    }
    Ok(out)
}

/// Why a span cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum InvalidSpan {
    #[error("trace_id must be 16 bytes, not all zero")]
    TraceId,
    #[error("span_id must be 8 bytes, not all zero")]
    SpanId,
    #[error("parent_span_id must be empty or 8 bytes")]
    Parent,
}

/// Why a span cannot be stored, or `None` when it can.
fn invalid_span(span: &Span) -> Option<InvalidSpan> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Some(InvalidSpan::TraceId);
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Some(InvalidSpan::SpanId);
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some(InvalidSpan::Parent);
    }
    None
}

/// A span block being built: the body with each span's entry, each group's resource, scope
/// and service, and the facts of every span kept.
struct BlockBuilder {
    body: Vec<u8>,
    groups: Vec<Vec<u8>>,
    facts: Vec<SpanFacts>,
    services: Vec<String>,
    rejected_spans: u64,
    rejection_reason: String,
    min_start: u64,
    max_start: u64,
}

impl BlockBuilder {
    /// A builder for a block of `spans` spans.
    fn new(spans: usize) -> Self {
        // The body buffer is reused by each thread: a fresh one per write costs a large
        // allocation and page faults.
        let mut body = BODY.with(|b| std::mem::take(&mut *b.borrow_mut()));
        body.clear();
        Self {
            body,
            groups: Vec::new(),
            facts: Vec::with_capacity(spans),
            services: Vec::new(),
            rejected_spans: 0,
            rejection_reason: String::new(),
            min_start: u64::MAX,
            max_start: 0,
        }
    }

    /// Caps a resource and gives its service and its bytes as the block keeps them.
    fn resource(&mut self, resource: Option<Resource>) -> (Arc<str>, Vec<u8>) {
        let mut resource = resource.unwrap_or_default();
        limits::cap_resource(&mut resource);
        let service: Arc<str> = Arc::from(service_name_of(&resource));
        if !self.services.iter().any(|s| **s == *service) {
            self.services.push(service.to_string());
        }
        (service, resource.encode_to_vec())
    }

    /// The index the next group will have.
    fn next_group(&self) -> u32 {
        (self.groups.len() / 3) as u32
    }

    /// Records a group whose spans were written (under [`next_group`](Self::next_group)).
    fn add_group(
        &mut self,
        resource_bytes: &[u8],
        scope: Option<&InstrumentationScope>,
        service: &str,
    ) {
        self.groups.push(resource_bytes.to_vec());
        self.groups.push(match scope {
            Some(scope) => {
                let mut bytes = Vec::with_capacity(scope.encoded_len() + 1);
                bytes.push(1);
                // Encoding into a Vec cannot fail.
                let _ = scope.encode(&mut bytes);
                bytes
            }
            None => vec![0],
        });
        self.groups.push(service.as_bytes().to_vec());
    }

    /// Writes an entry's head: the trace id, the group and the span's length.
    fn entry_head(&mut self, trace_id: &[u8], group: u32, start: u64, len: usize) {
        self.min_start = self.min_start.min(start);
        self.max_start = self.max_start.max(start);
        self.body.extend_from_slice(trace_id);
        self.body.extend_from_slice(&group.to_le_bytes());
        self.body.extend_from_slice(&(len as u32).to_le_bytes());
    }

    /// Writes a decoded span (capped first); false when it cannot be stored.
    fn push_decoded(
        &mut self,
        service: &Arc<str>,
        group: u32,
        mut span: Span,
        detect: bool,
    ) -> bool {
        if let Some(reason) = invalid_span(&span) {
            self.rejected_spans += 1;
            if self.rejection_reason.is_empty() {
                self.rejection_reason = format!("span {:?}: {reason}", span.name);
            }
            return false;
        }
        limits::cap_span(&mut span);
        let trace_id = std::mem::take(&mut span.trace_id);
        self.entry_head(
            &trace_id,
            group,
            span.start_time_unix_nano,
            span.encoded_len(),
        );
        // Encoding into a Vec cannot fail.
        let _ = span.encode(&mut self.body);
        self.facts.push(SpanFacts::extract(
            service,
            trace_u128(&trace_id),
            &mut span,
            detect,
        ));
        true
    }

    /// Writes a span read in place: its bytes as they came, less the trace id.
    fn push_encoded(
        &mut self,
        service: &Arc<str>,
        group: u32,
        span: &EncodedSpan,
        detect: bool,
    ) -> bool {
        if span.needs_decoding() {
            return self.push_decoded(service, group, span.decode(), detect);
        }
        // The length is known once the bytes are written: a placeholder, then the count.
        let trace_id = span.trace_id();
        self.entry_head(trace_id, group, span.view.start_time_unix_nano, 0);
        let len_at = self.body.len() - 4;
        let len = span.write_without_trace_id(&mut self.body) as u32;
        self.body[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        self.facts.push(SpanFacts::extract_lite(
            service,
            trace_u128(trace_id),
            span,
            detect,
        ));
        true
    }

    fn finish(self, arrival_unix_nanos: u64) -> PreparedBlock {
        let Self {
            mut body,
            groups,
            facts,
            services,
            rejected_spans,
            rejection_reason,
            mut min_start,
            max_start,
        } = self;
        let groups_at = body.len() as u32;
        body.extend_from_slice(&((groups.len() / 3) as u32).to_le_bytes());
        for g in &groups {
            put_bytes32(&mut body, g);
        }
        body.extend_from_slice(&groups_at.to_le_bytes());
        body.extend_from_slice(&(facts.len() as u32).to_le_bytes());
        if facts.is_empty() {
            min_start = 0;
        }
        let header = SpanBlockHeader {
            arrival_unix_nanos,
            min_start_unix_nanos: min_start,
            max_start_unix_nanos: max_start,
            span_count: facts.len() as u32,
            services,
        };
        let mut payload = Vec::with_capacity(body.len() / 2 + 64);
        payload.extend_from_slice(&[0u8; RECORD_HEADER_BYTES as usize]);
        payload.push(KIND_SPANS);
        payload.extend_from_slice(&arrival_unix_nanos.to_le_bytes());
        payload.extend_from_slice(&min_start.to_le_bytes());
        payload.extend_from_slice(&max_start.to_le_bytes());
        payload.extend_from_slice(&header.span_count.to_le_bytes());
        payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
        // More than 65,535 services in one export is not a real workload; the list is cut there
        // rather than written with a count that does not match.
        let listed = &header.services[..header.services.len().min(u16::MAX as usize)];
        payload.extend_from_slice(&(listed.len() as u16).to_le_bytes());
        for s in listed {
            let name = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
            payload.extend_from_slice(&(name.len() as u16).to_le_bytes());
            payload.extend_from_slice(name);
        }
        let payload = compress_into(payload, &body);
        BODY.with(|b| *b.borrow_mut() = body);
        PreparedBlock {
            payload,
            header,
            facts,
            rejected_spans,
            rejection_reason,
        }
    }
}

/// Encodes a trace export into a span block, extracting each span's facts on the way.
pub fn prepare_spans(
    request: ExportTraceServiceRequest,
    arrival_unix_nanos: u64,
    detect: bool,
) -> PreparedBlock {
    let spans = (request.resource_spans.iter())
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut block = BlockBuilder::new(spans);
    for resource_spans in request.resource_spans {
        let (service, resource_bytes) = block.resource(resource_spans.resource);
        for scope_spans in resource_spans.scope_spans {
            let group = block.next_group();
            let mut any = false;
            for span in scope_spans.spans {
                any |= block.push_decoded(&service, group, span, detect);
            }
            if any {
                block.add_group(&resource_bytes, scope_spans.scope.as_ref(), &service);
            }
        }
    }
    block.finish(arrival_unix_nanos)
}

/// Encodes a trace export read in place into a span block: the same block
/// [`prepare_spans`] makes of the decoded export, each span's bytes copied as they came.
pub fn prepare_encoded(
    traces: EncodedTraces,
    arrival_unix_nanos: u64,
    detect: bool,
) -> PreparedBlock {
    let mut block = BlockBuilder::new(usize::try_from(traces.span_count()).unwrap_or(0));
    for resource in traces.into_resources() {
        let (service, resource_bytes) = block.resource(resource.resource);
        for scope in resource.scopes {
            let group = block.next_group();
            let mut any = false;
            for span in &scope.spans {
                any |= block.push_encoded(&service, group, span, detect);
            }
            if any {
                block.add_group(&resource_bytes, scope.scope.as_ref(), &service);
            }
        }
    }
    block.finish(arrival_unix_nanos)
}

/// Encodes a raw logs or metrics export with its arrival time (frame bytes first, as
/// [`PreparedBlock::payload`]).
pub fn prepare_raw(kind: u8, request_bytes: &[u8], arrival_unix_nanos: u64) -> Vec<u8> {
    let mut payload = Vec::with_capacity(request_bytes.len() / 2 + 32);
    payload.extend_from_slice(&[0u8; RECORD_HEADER_BYTES as usize]);
    payload.push(kind);
    payload.extend_from_slice(&arrival_unix_nanos.to_le_bytes());
    payload.extend_from_slice(&(request_bytes.len() as u32).to_le_bytes());
    compress_into(payload, request_bytes)
}

pub fn encode_logs(request: &ExportLogsServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

pub fn encode_metrics(request: &ExportMetricsServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

/// The kind byte of a record payload.
pub fn kind_of(payload: &[u8]) -> Option<u8> {
    payload.first().copied()
}

/// Reads a span block's header; returns it with the compressed body and the body's length.
pub fn parse_span_header(payload: &[u8]) -> Result<(SpanBlockHeader, &[u8], usize), CorruptBlock> {
    let mut c = Cursor { bytes: payload };
    if c.u8()? != KIND_SPANS {
        return Err(CorruptBlock("not a span block"));
    }
    let arrival_unix_nanos = c.u64()?;
    let min_start_unix_nanos = c.u64()?;
    let max_start_unix_nanos = c.u64()?;
    let span_count = c.u32()?;
    let body_len = c.u32()? as usize;
    let n = c.u16()?;
    let mut services = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = c.u16()? as usize;
        let name = c.take(len)?;
        services.push(String::from_utf8_lossy(name).into_owned());
    }
    let header = SpanBlockHeader {
        arrival_unix_nanos,
        min_start_unix_nanos,
        max_start_unix_nanos,
        span_count,
        services,
    };
    Ok((header, c.bytes, body_len))
}

/// Reads a logs/metrics record: its arrival time and the request's protobuf bytes.
pub fn parse_raw(payload: &[u8]) -> Result<(u8, u64, Vec<u8>), CorruptBlock> {
    let mut c = Cursor { bytes: payload };
    let kind = c.u8()?;
    let arrival = c.u64()?;
    let len = c.u32()? as usize;
    Ok((kind, arrival, decompress(c.bytes, len)?))
}

/// The decompressed body of a span block.
#[derive(Debug)]
pub struct SpanBlockBody {
    pub groups: Vec<GroupBytes>,
    bytes: Vec<u8>,
    /// Span entries fill the body up to here; groups and the trailer follow.
    spans_end: usize,
    pub span_count: u32,
}

/// One resource/scope group of a block, still encoded.
#[derive(Debug, Clone)]
pub struct GroupBytes {
    pub resource: std::ops::Range<usize>,
    pub scope: Option<std::ops::Range<usize>>,
    pub service: String,
}

/// One span entry of a block body, not yet decoded.
#[derive(Debug, Clone, Copy)]
pub struct SpanEntry<'a> {
    pub trace_id: [u8; 16],
    pub group: u32,
    pub bytes: &'a [u8],
}

impl SpanBlockBody {
    pub fn decode_payload(payload: &[u8]) -> Result<Self, CorruptBlock> {
        let (_, compressed, body_len) = parse_span_header(payload)?;
        Self::parse(decompress(compressed, body_len)?)
    }

    fn parse(bytes: Vec<u8>) -> Result<Self, CorruptBlock> {
        let total = bytes.len();
        let trailer = total.checked_sub(8).ok_or(CorruptBlock("truncated"))?;
        let mut t = Cursor {
            bytes: &bytes[trailer..],
        };
        let groups_at = t.u32()? as usize;
        let span_count = t.u32()?;
        let section = bytes
            .get(groups_at..trailer)
            .ok_or(CorruptBlock("group offset"))?;
        let mut c = Cursor { bytes: section };
        let pos = |c: &Cursor<'_>| trailer - c.bytes.len();
        let n = c.u32()?;
        let mut groups = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let r = c.bytes32()?;
            let r_end = pos(&c);
            let resource = r_end - r.len()..r_end;
            let s = c.bytes32()?;
            let s_end = pos(&c);
            let scope = match s.first() {
                Some(1) => Some(s_end - s.len() + 1..s_end),
                _ => None,
            };
            let service = String::from_utf8_lossy(c.bytes32()?).into_owned();
            groups.push(GroupBytes {
                resource,
                scope,
                service,
            });
        }
        Ok(Self {
            groups,
            bytes,
            spans_end: groups_at,
            span_count,
        })
    }

    /// Every span entry, in the order they were written.
    pub fn entries(&self) -> impl Iterator<Item = SpanEntry<'_>> {
        let mut c = Cursor {
            bytes: &self.bytes[..self.spans_end],
        };
        (0..self.span_count).map_while(move |_| {
            let trace = c.take(16).ok()?;
            let group = c.u32().ok()?;
            let bytes = c.bytes32().ok()?;
            let mut trace_id = [0u8; 16];
            trace_id.copy_from_slice(trace);
            Some(SpanEntry {
                trace_id,
                group,
                bytes,
            })
        })
    }

    pub fn resource(&self, group: u32) -> Result<Resource, CorruptBlock> {
        let g = self
            .groups
            .get(group as usize)
            .ok_or(CorruptBlock("group index"))?;
        Resource::decode(&self.bytes[g.resource.clone()]).map_err(|_| CorruptBlock("resource"))
    }

    pub fn scope(&self, group: u32) -> Result<Option<InstrumentationScope>, CorruptBlock> {
        let g = self
            .groups
            .get(group as usize)
            .ok_or(CorruptBlock("group index"))?;
        match &g.scope {
            None => Ok(None),
            Some(r) => InstrumentationScope::decode(&self.bytes[r.clone()])
                .map(Some)
                .map_err(|_| CorruptBlock("scope")),
        }
    }

    pub fn service(&self, group: u32) -> &str {
        self.groups
            .get(group as usize)
            .map(|g| g.service.as_str())
            .unwrap_or("")
    }
}

/// Decodes a span entry back into the span that was written.
pub fn decode_span(entry: &SpanEntry<'_>) -> Result<Span, CorruptBlock> {
    let mut span = Span::decode(entry.bytes).map_err(|_| CorruptBlock("span"))?;
    span.trace_id = entry.trace_id.to_vec();
    Ok(span)
}

/// The 64-bit index key of a trace id (both halves folded, so short Jaeger ids spread too).
pub fn trace_key(trace_id: &[u8; 16]) -> u64 {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&trace_id[..8]);
    lo.copy_from_slice(&trace_id[8..]);
    u64::from_le_bytes(lo)
        ^ u64::from_le_bytes(hi)
            .rotate_left(29)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::TwoServiceTrace;

    #[test]
    fn a_block_gives_back_every_span_with_its_resource_and_scope() {
        let t = TwoServiceTrace::new(3, 1_000_000_000);
        let request = t.request();
        let prepared = prepare_spans(request.clone(), 42, true);
        assert_eq!(prepared.facts.len(), 4);
        assert_eq!(
            prepared.header.services,
            vec!["onboarding-api", "onboarding-lambda"]
        );
        let payload = &prepared.payload[crate::segment::RECORD_HEADER_BYTES as usize..];
        let (header, _, _) = parse_span_header(payload).expect("header");
        assert_eq!(header, prepared.header);
        let body = SpanBlockBody::decode_payload(payload).expect("body");
        let mut back = Vec::new();
        for entry in body.entries() {
            assert_eq!(entry.trace_id, t.trace_id.0);
            back.push((
                body.service(entry.group).to_owned(),
                body.resource(entry.group).expect("resource"),
                decode_span(&entry).expect("span"),
            ));
        }
        let sent: Vec<_> = request
            .resource_spans
            .iter()
            .flat_map(|rs| {
                rs.scope_spans
                    .iter()
                    .flat_map(move |ss| ss.spans.iter().map(move |s| (rs, s)))
            })
            .collect();
        assert_eq!(back.len(), sent.len());
        for ((service, resource, span), (rs, sent_span)) in back.iter().zip(sent) {
            assert_eq!(Some(resource), rs.resource.as_ref());
            assert_eq!(span, sent_span);
            assert_eq!(service, service_name_of(resource));
        }
        assert_eq!(
            body.scope(0).expect("scope").map(|s| s.name),
            Some("throughline".into())
        );
    }

    /// Every span entry of a prepared block, decoded, with its group's service.
    fn spans_of(prepared: &PreparedBlock) -> Vec<(String, Span)> {
        let payload = &prepared.payload[crate::segment::RECORD_HEADER_BYTES as usize..];
        let body = SpanBlockBody::decode_payload(payload).expect("body");
        body.entries()
            .map(|e| {
                (
                    body.service(e.group).to_owned(),
                    decode_span(&e).expect("span"),
                )
            })
            .collect()
    }

    #[test]
    fn an_export_read_in_place_makes_the_block_its_decoded_form_makes() {
        use crate::api::{AnyValue, SpanKind};
        use crate::testdata::kv;
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
        use opentelemetry_semantic_conventions::attribute as semconv;
        let t = TwoServiceTrace::new(3, 1_000_000_000);
        let mut spans = t.api_spans();
        let first = spans[0].clone();
        let child = |n: u8, kind: SpanKind, attributes| Span {
            span_id: vec![n; 8],
            parent_span_id: first.span_id.clone(),
            name: format!("child {n}"),
            kind: kind as i32,
            attributes,
            ..first.clone()
        };
        spans.push(child(
            7,
            SpanKind::Client,
            vec![
                kv(semconv::DB_SYSTEM_NAME, "sqlite"),
                kv(semconv::DB_NAMESPACE, "shop"),
                kv(
                    semconv::DB_QUERY_TEXT,
                    "SELECT * FROM products WHERE id = ?",
                ),
            ],
        ));
        let mut producer = child(
            8,
            SpanKind::Producer,
            vec![
                kv(semconv::MESSAGING_SYSTEM, "aws_sqs"),
                kv(semconv::MESSAGING_DESTINATION_NAME, "orders"),
                kv(semconv::MESSAGING_BATCH_MESSAGE_COUNT, 1i64),
            ],
        );
        producer.events.push(Event {
            name: "sent".into(),
            attributes: vec![kv("n", 2i64)],
            ..Default::default()
        });
        producer.links.push(Link {
            trace_id: vec![9; 16],
            span_id: vec![9; 8],
            ..Default::default()
        });
        spans.push(producer);
        // Cut by the store's limits: decoded whole on the in-place path too.
        let mut oversized = child(10, SpanKind::Internal, Vec::new());
        oversized.attributes.push(crate::api::KeyValue {
            key: "big".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(
                    "x".repeat(limits::MAX_ATTRIBUTE_VALUE_BYTES + 5),
                )),
            }),
            ..Default::default()
        });
        oversized.name = "n".repeat(limits::MAX_SPAN_NAME_BYTES + 1);
        spans.push(oversized);
        let mut bad = child(11, SpanKind::Server, Vec::new());
        bad.parent_span_id = vec![1, 2, 3];
        spans.push(bad);
        let mut request = crate::testdata::export("api", spans);
        request.resource_spans.extend(t.request().resource_spans);
        let decoded = prepare_spans(request.clone(), 42, true);
        let traces = EncodedTraces::decode(request.encode_to_vec().into()).expect("valid OTLP");
        let in_place = prepare_encoded(traces, 42, true);
        assert_eq!(in_place.facts, decoded.facts);
        assert_eq!(in_place.header, decoded.header);
        assert_eq!(
            (in_place.rejected_spans, &in_place.rejection_reason),
            (decoded.rejected_spans, &decoded.rejection_reason)
        );
        assert_eq!(decoded.rejected_spans, 1);
        assert!(
            in_place
                .facts
                .iter()
                .any(|f| f.pattern.is_some() && f.peer.is_some())
        );
        let back = spans_of(&in_place);
        assert_eq!(back, spans_of(&decoded));
        assert!(
            back.iter()
                .any(|(_, s)| s.name.ends_with("bytes truncated]")),
            "capped"
        );
    }

    #[test]
    fn invalid_ids_are_rejected_and_named() {
        let t = TwoServiceTrace::new(3, 1_000_000_000);
        let mut spans = t.api_spans();
        spans[0].span_id = vec![0; 8];
        spans[1].parent_span_id = vec![1, 2];
        let prepared = prepare_spans(crate::testdata::export("api", spans), 0, true);
        assert_eq!((prepared.facts.len(), prepared.rejected_spans), (0, 2));
        assert!(
            prepared.rejection_reason.contains("span_id"),
            "{}",
            prepared.rejection_reason
        );
    }

    #[test]
    fn short_jaeger_ids_do_not_collide_on_their_zero_half() {
        let a = trace_key(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let b = trace_key(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 9]);
        assert_ne!(a, b);
    }
}
