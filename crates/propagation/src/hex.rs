//! Lowercase hexadecimal decoding and encoding without allocation, for the header fast paths.

/// Value of one lowercase hex digit, or `None` for anything else (uppercase included).
#[inline]
pub(crate) const fn lower_hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly `bytes.len()` (at most 32) lowercase hex digits into an integer.
#[inline]
pub(crate) fn decode_u128(bytes: &[u8]) -> Option<u128> {
    let mut value: u128 = 0;
    for &b in bytes {
        value = (value << 4) | u128::from(lower_hex_digit(b)?);
    }
    Some(value)
}

/// Decodes exactly `bytes.len()` (at most 16) lowercase hex digits into an integer.
#[inline]
pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for &b in bytes {
        value = (value << 4) | u64::from(lower_hex_digit(b)?);
    }
    Some(value)
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `out.len()` lowercase hex digits of `value` (most significant first) into `out`.
#[inline]
pub(crate) fn encode_into(mut value: u128, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}
