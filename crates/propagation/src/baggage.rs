//! W3C Baggage: a strict parser, a writer that keeps the limits, and the propagator.
//!
//! We do not use `opentelemetry_sdk::propagation::BaggagePropagator`: it cuts a value at a
//! second `=` (`k=a=b` gives `a`, though `=` is a legal value octet), does not percent-encode
//! `%` or `\` on inject (so `%41` comes back as `A`), percent-encodes keys (keys are tokens, not
//! encoded), ignores a second `baggage` header, and keeps list members that break the grammar.

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The `baggage` header name.
pub const BAGGAGE_HEADER: &str = "baggage";
/// At most this many list members are propagated (W3C Baggage limits).
pub const MAX_BAGGAGE_MEMBERS: usize = 64;
/// At most this many bytes of `baggage` are propagated (W3C Baggage limits).
pub const MAX_BAGGAGE_BYTES: usize = 8192;

/// Bytes that must be percent-encoded in a value: everything outside `baggage-octet`
/// (`%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`) and `%` itself.
const VALUE_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// What was wrong with a `baggage` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaggageErrorKind {
    /// A list member has no `=`.
    MissingEquals,
    /// A key is not an RFC 7230 token.
    Key,
    /// A value has a character outside `baggage-octet`.
    Value,
    /// A value does not percent-decode to UTF-8.
    Encoding,
    /// A property breaks `key [= value]`.
    Property,
}

impl std::fmt::Display for BaggageErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MissingEquals => "a list member has no '='",
            Self::Key => "a key is not a token",
            Self::Value => "a value has a character outside baggage-octet",
            Self::Encoding => "a value does not percent-decode to UTF-8",
            Self::Property => "a property breaks the property grammar",
        })
    }
}

/// A `baggage` value that does not follow W3C Baggage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("baggage {member:?} is invalid: {kind}")]
pub struct BaggageError {
    /// The offending list member (at most its first 128 characters).
    pub member: String,
    /// What was wrong.
    pub kind: BaggageErrorKind,
}

impl BaggageError {
    fn new(member: &str, kind: BaggageErrorKind) -> Self {
        let end = member
            .char_indices()
            .nth(128)
            .map_or(member.len(), |(index, _)| index);
        Self {
            member: member[..end].to_owned(),
            kind,
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether `key` is an RFC 7230 token, the grammar of baggage keys.
pub fn is_valid_baggage_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_tchar)
}

fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn check_property(property: &str) -> bool {
    match property.split_once('=') {
        None => is_valid_baggage_key(property),
        Some((key, value)) => {
            is_valid_baggage_key(ows(key)) && ows(value).bytes().all(is_baggage_octet)
        }
    }
}

/// Parses a `baggage` value (several received values joined with `,`).
///
/// Values are percent-decoded; properties are kept, undecoded, as the entry's metadata. Empty
/// list members are skipped. Any member that breaks the grammar makes the whole value invalid
/// (no partial baggage is propagated). Members past the 64th, or past 8192 bytes, are dropped
/// whole, as the W3C limits allow; a key seen again replaces the earlier value.
pub fn parse_baggage(value: &str) -> Result<Baggage, BaggageError> {
    use BaggageErrorKind as Kind;
    let mut entries: Vec<KeyValueMetadata> = Vec::new();
    let mut kept_bytes = 0usize;
    for raw in value.split(',') {
        let member = ows(raw);
        if member.is_empty() {
            continue;
        }
        let mut parts = member.split(';');
        // split always yields at least one item.
        let pair = parts.next().unwrap_or_default();
        let Some((key, val)) = pair.split_once('=') else {
            return Err(BaggageError::new(member, Kind::MissingEquals));
        };
        let (key, val) = (ows(key), ows(val));
        if !is_valid_baggage_key(key) {
            return Err(BaggageError::new(member, Kind::Key));
        }
        if !val.bytes().all(is_baggage_octet) {
            return Err(BaggageError::new(member, Kind::Value));
        }
        let Ok(decoded) = percent_decode_str(val).decode_utf8() else {
            return Err(BaggageError::new(member, Kind::Encoding));
        };
        let mut metadata = String::new();
        for property in parts {
            let property = ows(property);
            if !check_property(property) {
                return Err(BaggageError::new(member, Kind::Property));
            }
            if !metadata.is_empty() {
                metadata.push(';');
            }
            metadata.push_str(property);
        }
        let separator = usize::from(kept_bytes > 0);
        if entries.len() < MAX_BAGGAGE_MEMBERS
            && kept_bytes + separator + member.len() <= MAX_BAGGAGE_BYTES
        {
            kept_bytes += separator + member.len();
            entries.push(KeyValueMetadata::new(
                key.to_owned(),
                decoded.into_owned(),
                metadata,
            ));
        }
    }
    Ok(entries.into_iter().collect())
}

/// The `baggage` header for `baggage`, or `None` if nothing is to be sent.
///
/// Values are percent-encoded outside `baggage-octet` (and `%`); entries whose key is not a
/// token or whose metadata breaks the property grammar are left out; whole members are left out
/// once 64 members or 8192 bytes are reached.
pub fn format_baggage(baggage: &Baggage) -> Option<String> {
    let mut header = String::new();
    let mut count = 0usize;
    let mut member = String::new();
    for (key, (value, metadata)) in baggage {
        if count == MAX_BAGGAGE_MEMBERS {
            break;
        }
        let key = key.as_str();
        if !is_valid_baggage_key(key) {
            continue;
        }
        let metadata = ows(metadata.as_str());
        if !metadata.is_empty() && !metadata.split(';').all(|p| check_property(ows(p))) {
            continue;
        }
        member.clear();
        member.push_str(key);
        member.push('=');
        member.extend(utf8_percent_encode(value.as_str(), VALUE_ENCODE));
        if !metadata.is_empty() {
            member.push(';');
            member.push_str(metadata);
        }
        let separator = usize::from(!header.is_empty());
        if header.len() + separator + member.len() > MAX_BAGGAGE_BYTES {
            continue;
        }
        if separator == 1 {
            header.push(',');
        }
        header.push_str(&member);
        count += 1;
    }
    (!header.is_empty()).then_some(header)
}

fn baggage_fields() -> &'static [String; 1] {
    static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
    FIELDS.get_or_init(|| [BAGGAGE_HEADER.to_owned()])
}

/// W3C Baggage propagator (`baggage` header), strict on the grammar and the limits.
#[derive(Clone, Copy, Debug, Default)]
pub struct BaggagePropagator {
    _private: (),
}

impl BaggagePropagator {
    /// A new propagator.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl TextMapPropagator for BaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(header) = format_baggage(cx.baggage()) {
            injector.set(BAGGAGE_HEADER, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(values) = extractor.get_all(BAGGAGE_HEADER) else {
            return cx.clone();
        };
        let parsed = match values.as_slice() {
            [] => return cx.clone(),
            [one] => parse_baggage(one),
            many => parse_baggage(&many.join(",")),
        };
        match parsed {
            Ok(baggage) if !baggage.is_empty() => cx.with_baggage(baggage),
            _ => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(baggage_fields())
    }
}
