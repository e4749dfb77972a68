//! AWS X-Ray trace header (`X-Amzn-Trace-Id`, SQS `AWSTraceHeader`): parser, writer and
//! propagator.
//!
//! Form: `Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1}`. Like AWS, the parser accepts
//! the fields in any order, spaces around them, and extra fields (`Self=`, `Lineage=`, …), which
//! it ignores. It is strict on the values: lowercase hex of exact lengths, root version `1`,
//! non-zero ids, `Sampled` `0` or `1` (absent means not sampled), each known field at most once.

use std::sync::OnceLock;

use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, SpanId, TraceId};

use crate::hex;

/// The HTTP header name, lowercase as `http::HeaderMap` stores it.
pub const XRAY_HEADER: &str = "x-amzn-trace-id";

/// The fields of a valid X-Ray trace header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XRayTraceHeader {
    /// The root, as an OpenTelemetry trace id (the 8 epoch digits then the 24 random ones).
    pub trace_id: TraceId,
    /// The parent segment id.
    pub parent_id: SpanId,
    /// `Sampled=1`.
    pub sampled: bool,
}

/// What was wrong with an X-Ray trace header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XRayErrorKind {
    /// A field has no `=`.
    Field,
    /// `Root` is missing.
    MissingRoot,
    /// `Parent` is missing.
    MissingParent,
    /// `Root` is not `1-{8 lowercase hex}-{24 lowercase hex}`, or is all zeroes.
    Root,
    /// `Parent` is not 16 lowercase hex digits, or is all zeroes.
    Parent,
    /// `Sampled` is not `0` or `1`.
    Sampled,
    /// `Root`, `Parent` or `Sampled` appears more than once.
    Duplicated,
}

impl std::fmt::Display for XRayErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Field => "a field has no '='",
            Self::MissingRoot => "Root is missing",
            Self::MissingParent => "Parent is missing",
            Self::Root => "Root is not 1-{8 lowercase hex}-{24 lowercase hex} or is zero",
            Self::Parent => "Parent is not 16 lowercase hex digits or is zero",
            Self::Sampled => "Sampled is not 0 or 1",
            Self::Duplicated => "a field appears more than once",
        })
    }
}

/// An X-Ray trace header that does not follow the AWS format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("x-ray trace header {input:?} is invalid: {kind}")]
pub struct XRayError {
    /// The value received (at most its first 128 characters).
    pub input: String,
    /// What was wrong.
    pub kind: XRayErrorKind,
}

impl XRayError {
    fn new(input: &str, kind: XRayErrorKind) -> Self {
        let end = input
            .char_indices()
            .nth(128)
            .map_or(input.len(), |(index, _)| index);
        Self {
            input: input[..end].to_owned(),
            kind,
        }
    }
}

fn parse_root(value: &str) -> Option<TraceId> {
    let bytes = value.as_bytes();
    if bytes.len() != 35 || &bytes[..2] != b"1-" || bytes[10] != b'-' {
        return None;
    }
    let epoch = hex::decode_u128(&bytes[2..10])?;
    let random = hex::decode_u128(&bytes[11..35])?;
    let id = (epoch << 96) | random;
    (id != 0).then(|| TraceId::from(id))
}

/// Parses an X-Ray trace header.
pub fn parse_xray_header(value: &str) -> Result<XRayTraceHeader, XRayError> {
    use XRayErrorKind as Kind;
    let mut root = None;
    let mut parent = None;
    let mut sampled = None;
    for field in value.split(';') {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let Some((key, val)) = field.split_once('=') else {
            return Err(XRayError::new(value, Kind::Field));
        };
        let val = val.trim_matches([' ', '\t']);
        match key.trim_matches([' ', '\t']) {
            "Root" => {
                let id = parse_root(val).ok_or_else(|| XRayError::new(value, Kind::Root))?;
                if root.replace(id).is_some() {
                    return Err(XRayError::new(value, Kind::Duplicated));
                }
            }
            "Parent" => {
                let id = (val.len() == 16)
                    .then(|| hex::decode_u64(val.as_bytes()))
                    .flatten()
                    .filter(|id| *id != 0)
                    .ok_or_else(|| XRayError::new(value, Kind::Parent))?;
                if parent.replace(SpanId::from(id)).is_some() {
                    return Err(XRayError::new(value, Kind::Duplicated));
                }
            }
            "Sampled" => {
                let flag = match val {
                    "1" => true,
                    "0" => false,
                    _ => return Err(XRayError::new(value, Kind::Sampled)),
                };
                if sampled.replace(flag).is_some() {
                    return Err(XRayError::new(value, Kind::Duplicated));
                }
            }
            _ => {}
        }
    }
    let trace_id = root.ok_or_else(|| XRayError::new(value, Kind::MissingRoot))?;
    let parent_id = parent.ok_or_else(|| XRayError::new(value, Kind::MissingParent))?;
    Ok(XRayTraceHeader {
        trace_id,
        parent_id,
        sampled: sampled.unwrap_or(false),
    })
}

/// The X-Ray trace header of `span_context`, or `None` if the context is not valid.
pub fn format_xray_header(span_context: &SpanContext) -> Option<String> {
    if !span_context.is_valid() {
        return None;
    }
    // "Root=1-" + 8 + "-" + 24 + ";Parent=" + 16 + ";Sampled=" + 1
    let mut buf = *b"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
    let trace_id = u128::from_be_bytes(span_context.trace_id().to_bytes());
    hex::encode_into(trace_id >> 96, &mut buf[7..15]);
    hex::encode_into(trace_id & ((1u128 << 96) - 1), &mut buf[16..40]);
    hex::encode_into(
        u128::from(u64::from_be_bytes(span_context.span_id().to_bytes())),
        &mut buf[48..64],
    );
    if span_context.is_sampled() {
        buf[73] = b'1';
    }
    // The buffer holds ASCII only.
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn xray_fields() -> &'static [String; 1] {
    static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
    FIELDS.get_or_init(|| [XRAY_HEADER.to_owned()])
}

/// AWS X-Ray propagator (`X-Amzn-Trace-Id`).
///
/// On extract, a header that names the span the context already holds (because `tracecontext`
/// ran first and found the same ids) changes nothing, so the tracestate and the random flag the
/// X-Ray form cannot carry are kept; a header naming another span replaces it, as the last
/// propagator of a composite does.
#[derive(Clone, Copy, Debug, Default)]
pub struct XRayPropagator {
    _private: (),
}

impl XRayPropagator {
    /// A new propagator.
    pub const fn new() -> Self {
        Self { _private: () }
    }

    /// The remote span context an X-Ray trace header value describes.
    pub fn span_context_from_header(value: &str) -> Result<SpanContext, XRayError> {
        let header = parse_xray_header(value)?;
        let flags = if header.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::NOT_SAMPLED
        };
        Ok(SpanContext::new(
            header.trace_id,
            header.parent_id,
            flags,
            true,
            TraceState::NONE,
        ))
    }
}

impl TextMapPropagator for XRayPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(header) = format_xray_header(cx.span().span_context()) {
            injector.set(XRAY_HEADER, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(values) = extractor.get_all(XRAY_HEADER) else {
            return cx.clone();
        };
        let [value] = values.as_slice() else {
            return cx.clone();
        };
        match Self::span_context_from_header(value) {
            // The same span already extracted (by `tracecontext` before us, when both headers
            // were sent): keep that richer context, with its tracestate and random flag.
            Ok(span_context)
                if cx.span().span_context().trace_id() == span_context.trace_id()
                    && cx.span().span_context().span_id() == span_context.span_id() =>
            {
                cx.clone()
            }
            Ok(span_context) => cx.with_remote_span_context(span_context),
            Err(_) => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(xray_fields())
    }
}
