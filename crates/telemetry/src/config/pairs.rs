//! The `key=value,key=value` lists of `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`:
//! comma-separated members, split at the first `=`, whitespace around keys and values trimmed,
//! keys and values percent-decoded (the W3C Baggage format without properties).

use percent_encoding::percent_decode_str;

/// Why a `key=value` list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairsProblem {
    /// A member has no `=`.
    #[error("member {member:?} has no '='")]
    MissingEquals { member: String },
    /// A member's key is empty.
    #[error("member {member:?} has an empty key")]
    EmptyKey { member: String },
    /// A `%` is not followed by two hex digits.
    #[error("member {member:?} has a '%' not followed by two hex digits")]
    BadPercentEscape { member: String },
    /// Percent-decoding produced bytes that are not UTF-8.
    #[error("member {member:?} does not decode to UTF-8")]
    NotUtf8 { member: String },
    /// A header name holds a character HTTP does not allow in a field name.
    #[error("header name {name:?} is not a valid HTTP field name")]
    BadHeaderName { name: String },
    /// A header value holds a control character.
    #[error("header {name:?} has a value with a control character")]
    BadHeaderValue { name: String },
}

/// Parses a `key=value` list. Empty members (`a=1,,b=2`, a trailing comma) are skipped.
pub fn parse_pairs(input: &str) -> Result<Vec<(String, String)>, PairsProblem> {
    let mut out = Vec::new();
    for member in input.split(',') {
        let member = member.trim();
        if member.is_empty() {
            continue;
        }
        let Some((key, value)) = member.split_once('=') else {
            return Err(PairsProblem::MissingEquals {
                member: member.to_owned(),
            });
        };
        let key = decode(key.trim(), member)?;
        if key.is_empty() {
            return Err(PairsProblem::EmptyKey {
                member: member.to_owned(),
            });
        }
        let value = decode(value.trim(), member)?;
        out.push((key, value));
    }
    Ok(out)
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`: a `key=value` list whose keys are HTTP field names
/// (lowercased, as gRPC metadata requires) and whose values keep their case.
pub fn parse_headers(input: &str) -> Result<Vec<(String, String)>, PairsProblem> {
    let pairs = parse_pairs(input)?;
    pairs
        .into_iter()
        .map(|(name, value)| {
            if !name.bytes().all(is_token_byte) {
                return Err(PairsProblem::BadHeaderName { name });
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(PairsProblem::BadHeaderValue { name });
            }
            Ok((name.to_ascii_lowercase(), value))
        })
        .collect()
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn decode(part: &str, member: &str) -> Result<String, PairsProblem> {
    let bytes = part.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(PairsProblem::BadPercentEscape {
                    member: member.to_owned(),
                });
            }
        }
    }
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| PairsProblem::NotUtf8 {
            member: member.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Vec<(String, String)> {
        parse_headers(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn headers_parse_as_the_spec_says() {
        let table: &[(&str, &[(&str, &str)])] = &[
            (
                "authorization=Bearer%20abc",
                &[("authorization", "Bearer abc")],
            ),
            (
                "api-key=key,other-config-value=value",
                &[("api-key", "key"), ("other-config-value", "value")],
            ),
            (" a = 1 , b = 2 ", &[("a", "1"), ("b", "2")]),
            ("token=abc==", &[("token", "abc==")]),
            ("x-Tenant=MiXeD%2Ccase", &[("x-tenant", "MiXeD,case")]),
            ("a=1,,b=2,", &[("a", "1"), ("b", "2")]),
            ("empty=", &[("empty", "")]),
            ("", &[]),
            ("k=caf%C3%A9", &[("k", "café")]),
        ];
        for (input, want) in table {
            assert_eq!(ok(input), pairs(want), "input {input:?}");
        }
    }

    #[test]
    fn bad_header_lists_are_errors() {
        let table: &[(&str, PairsProblem)] = &[
            (
                "novalue",
                PairsProblem::MissingEquals {
                    member: "novalue".into(),
                },
            ),
            (
                "=v",
                PairsProblem::EmptyKey {
                    member: "=v".into(),
                },
            ),
            (
                "a=%zz",
                PairsProblem::BadPercentEscape {
                    member: "a=%zz".into(),
                },
            ),
            (
                "a=%4",
                PairsProblem::BadPercentEscape {
                    member: "a=%4".into(),
                },
            ),
            (
                "a=%FF",
                PairsProblem::NotUtf8 {
                    member: "a=%FF".into(),
                },
            ),
            (
                "bad name=v",
                PairsProblem::BadHeaderName {
                    name: "bad name".into(),
                },
            ),
            ("a=x%0Ay", PairsProblem::BadHeaderValue { name: "a".into() }),
        ];
        for (input, want) in table {
            assert_eq!(parse_headers(input).as_ref(), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn resource_attribute_values_are_decoded_and_keys_keep_case() {
        assert_eq!(
            parse_pairs("service.name=my%20svc,deployment.environment=Prod").unwrap(),
            pairs(&[
                ("service.name", "my svc"),
                ("deployment.environment", "Prod")
            ])
        );
    }
}
