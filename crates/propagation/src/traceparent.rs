//! The `traceparent` header of W3C Trace Context level 2: a strict, allocation-free parser and
//! the writer.

use opentelemetry::trace::{SpanContext, TraceFlags};
use opentelemetry::{SpanId, TraceId};

use crate::hex;

/// Length of a version `00` `traceparent`: `vv-32hex-16hex-ff`.
pub const TRACEPARENT_LEN: usize = 55;

/// The flags this implementation knows (level 2): `sampled` (0x01) and `random` (0x02).
/// Every other bit is reserved and set to zero when propagating, as the specification requires.
pub const KNOWN_TRACE_FLAGS: u8 = 0x03;

/// The random trace-id flag of Trace Context level 2.
pub const RANDOM_TRACE_FLAG: TraceFlags = TraceFlags::new(0x02);

/// The fields of a valid `traceparent`, already checked against the specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traceparent {
    /// The version the sender used (`00`, or a future version parsed by its first four fields).
    pub version: u8,
    /// The trace id; never all zeroes.
    pub trace_id: TraceId,
    /// The parent (span) id; never all zeroes.
    pub parent_id: SpanId,
    /// The trace flags, reduced to the flags level 2 defines (sampled and random).
    pub trace_flags: TraceFlags,
}

/// What was wrong with a `traceparent` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceparentErrorKind {
    /// The version is not two lowercase hex digits followed by `-`.
    Version,
    /// Version `ff`, which the specification forbids.
    ForbiddenVersion,
    /// The value is shorter or (for version `00`) longer than 55 characters, or a future version
    /// has something other than `-` after the flags.
    Length,
    /// A `-` is missing between fields.
    Delimiter,
    /// The trace id is not 32 lowercase hex digits.
    TraceId,
    /// The trace id is all zeroes.
    ZeroTraceId,
    /// The parent id is not 16 lowercase hex digits.
    ParentId,
    /// The parent id is all zeroes.
    ZeroParentId,
    /// The flags are not two lowercase hex digits.
    Flags,
    /// More than one `traceparent` value was received.
    Duplicated,
}

impl std::fmt::Display for TraceparentErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Version => "the version is not two lowercase hex digits",
            Self::ForbiddenVersion => "version ff is forbidden",
            Self::Length => "the length is wrong for its version",
            Self::Delimiter => "a field is not followed by '-'",
            Self::TraceId => "the trace id is not 32 lowercase hex digits",
            Self::ZeroTraceId => "the trace id is all zeroes",
            Self::ParentId => "the parent id is not 16 lowercase hex digits",
            Self::ZeroParentId => "the parent id is all zeroes",
            Self::Flags => "the trace flags are not two lowercase hex digits",
            Self::Duplicated => "several traceparent values were received",
        })
    }
}

/// A `traceparent` value that does not follow W3C Trace Context.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("traceparent {input:?} is invalid: {kind}")]
pub struct TraceparentError {
    /// The value received (at most the first 128 characters).
    pub input: String,
    /// What was wrong with it.
    pub kind: TraceparentErrorKind,
}

impl TraceparentError {
    fn new(input: &str, kind: TraceparentErrorKind) -> Self {
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

/// Parses one `traceparent` value, strictly as W3C Trace Context level 2 says.
///
/// Leading and trailing spaces and tabs (HTTP's OWS) are ignored. Version `00` must be exactly
/// 55 characters; a higher version (`01`..`fe`) is parsed by its first four fields and must have
/// `-` after the flags if it is longer. Hex is lowercase only; all-zero ids are invalid.
pub fn parse_traceparent(value: &str) -> Result<Traceparent, TraceparentError> {
    use TraceparentErrorKind as Kind;
    let trimmed = value.trim_matches([' ', '\t']);
    let bytes = trimmed.as_bytes();
    let err = |kind| Err(TraceparentError::new(value, kind));

    if bytes.len() < 3 || bytes[2] != b'-' {
        return err(Kind::Version);
    }
    let Some(version) = hex::decode_u64(&bytes[..2]) else {
        return err(Kind::Version);
    };
    // Two hex digits always fit a u8.
    let version = version as u8;
    if version == 0xff {
        return err(Kind::ForbiddenVersion);
    }
    if bytes.len() < TRACEPARENT_LEN {
        return err(Kind::Length);
    }
    if version == 0 && bytes.len() != TRACEPARENT_LEN {
        return err(Kind::Length);
    }
    if bytes.len() > TRACEPARENT_LEN && bytes[TRACEPARENT_LEN] != b'-' {
        return err(Kind::Length);
    }
    if bytes[35] != b'-' || bytes[52] != b'-' {
        return err(Kind::Delimiter);
    }
    let Some(trace_id) = hex::decode_u128(&bytes[3..35]) else {
        return err(Kind::TraceId);
    };
    if trace_id == 0 {
        return err(Kind::ZeroTraceId);
    }
    let Some(parent_id) = hex::decode_u64(&bytes[36..52]) else {
        return err(Kind::ParentId);
    };
    if parent_id == 0 {
        return err(Kind::ZeroParentId);
    }
    let Some(flags) = hex::decode_u64(&bytes[53..55]) else {
        return err(Kind::Flags);
    };
    Ok(Traceparent {
        version,
        trace_id: TraceId::from(trace_id),
        parent_id: SpanId::from(parent_id),
        // Two hex digits always fit a u8.
        trace_flags: TraceFlags::new(flags as u8 & KNOWN_TRACE_FLAGS),
    })
}

/// Writes the version `00` `traceparent` of `span_context` into a fixed buffer: no allocation.
/// Unknown flags are written as zero. The caller checks that the context is valid.
pub fn write_traceparent(span_context: &SpanContext, out: &mut [u8; TRACEPARENT_LEN]) {
    out[0] = b'0';
    out[1] = b'0';
    out[2] = b'-';
    hex::encode_into(
        u128::from_be_bytes(span_context.trace_id().to_bytes()),
        &mut out[3..35],
    );
    out[35] = b'-';
    hex::encode_into(
        u128::from(u64::from_be_bytes(span_context.span_id().to_bytes())),
        &mut out[36..52],
    );
    out[52] = b'-';
    hex::encode_into(
        u128::from(span_context.trace_flags().to_u8() & KNOWN_TRACE_FLAGS),
        &mut out[53..55],
    );
}

/// The version `00` `traceparent` of `span_context`, or `None` if the context is not valid.
pub fn format_traceparent(span_context: &SpanContext) -> Option<String> {
    if !span_context.is_valid() {
        return None;
    }
    let mut buf = [0u8; TRACEPARENT_LEN];
    write_traceparent(span_context, &mut buf);
    // write_traceparent writes ASCII hex digits and '-' only.
    Some(String::from_utf8_lossy(&buf).into_owned())
}
