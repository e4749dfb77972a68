//! The `tracestate` header of W3C Trace Context level 2: list grammar, key and value grammar,
//! the 32-member limit and duplicate keys.

/// At most this many list members; a longer list is discarded whole.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// A key is at most this many characters.
pub const MAX_TRACESTATE_KEY_LEN: usize = 256;
/// A value is at most this many characters.
pub const MAX_TRACESTATE_VALUE_LEN: usize = 256;

/// What was wrong with a `tracestate` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracestateErrorKind {
    /// A list member has no `=`.
    MissingEquals,
    /// A key breaks `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`.
    Key,
    /// A value breaks `value = 0*255(chr) nblk-chr`.
    Value,
    /// More than 32 list members.
    TooManyMembers,
}

impl std::fmt::Display for TracestateErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MissingEquals => "a list member has no '='",
            Self::Key => "a key breaks the key grammar",
            Self::Value => "a value breaks the value grammar",
            Self::TooManyMembers => "it has more than 32 list members",
        })
    }
}

/// A `tracestate` value that does not follow W3C Trace Context.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tracestate {member:?} is invalid: {kind}")]
pub struct TracestateError {
    /// The offending list member (at most its first 128 characters), or the whole value when
    /// the list is too long.
    pub member: String,
    /// What was wrong.
    pub kind: TracestateErrorKind,
}

impl TracestateError {
    fn new(member: &str, kind: TracestateErrorKind) -> Self {
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

#[inline]
fn is_keychar(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// Whether `key` follows level 2's key grammar: a lowercase letter or digit, then up to 255 of
/// lowercase letters, digits, `_`, `-`, `*`, `/` and `@`.
pub fn is_valid_tracestate_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit() => {}
        _ => return false,
    }
    bytes.len() <= MAX_TRACESTATE_KEY_LEN && bytes.iter().all(|&b| is_keychar(b))
}

#[inline]
fn is_nblk_chr(b: u8) -> bool {
    matches!(b, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e)
}

/// Whether `value` follows the value grammar: 1 to 256 printable ASCII characters other than
/// `,` and `=`, not ending in a space.
pub fn is_valid_tracestate_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    match bytes.last() {
        Some(&last) if is_nblk_chr(last) => {}
        _ => return false,
    }
    bytes.len() <= MAX_TRACESTATE_VALUE_LEN && bytes.iter().all(|&b| b == b' ' || is_nblk_chr(b))
}

/// Parses a `tracestate` value (several received values joined with `,`) into its members, in
/// order.
///
/// Empty and whitespace-only members are skipped, spaces and tabs around members are ignored.
/// Any member that breaks the grammar, or more than 32 members, makes the whole value invalid.
/// A key seen again is dropped, keeping its first (left-most) value: the specification lets a
/// vendor discard duplicates, and the left-most entry is the most recent.
pub fn parse_tracestate(value: &str) -> Result<Vec<(&str, &str)>, TracestateError> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    let mut count = 0usize;
    for raw in value.split(',') {
        let member = raw.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_TRACESTATE_MEMBERS {
            return Err(TracestateError::new(
                value,
                TracestateErrorKind::TooManyMembers,
            ));
        }
        let Some((key, val)) = member.split_once('=') else {
            return Err(TracestateError::new(
                member,
                TracestateErrorKind::MissingEquals,
            ));
        };
        if !is_valid_tracestate_key(key) {
            return Err(TracestateError::new(member, TracestateErrorKind::Key));
        }
        if !is_valid_tracestate_value(val) {
            return Err(TracestateError::new(member, TracestateErrorKind::Value));
        }
        if !members.iter().any(|(seen, _)| *seen == key) {
            members.push((key, val));
        }
    }
    Ok(members)
}
