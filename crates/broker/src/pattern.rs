//! EventBridge event patterns: parsing (with AWS's validation) and matching against an event.
//!
//! Supported: exact values, `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (values or a
//! prefix), `exists`, `numeric` ranges, on any nested field; an array field matches when any of
//! its elements matches.

use serde_json::{Map, Value};

/// Why a pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event pattern {path}: {reason}")]
pub struct PatternError {
    pub path: String,
    pub reason: String,
}

fn err(path: &str, reason: impl Into<String>) -> PatternError {
    PatternError {
        path: if path.is_empty() {
            "(root)".into()
        } else {
            path.into()
        },
        reason: reason.into(),
    }
}

/// A parsed event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    fields: Vec<(String, Node)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Nested(Pattern),
    AnyOf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    Exists(bool),
    /// (operator, bound) pairs, all of which must hold.
    Numeric(Vec<(String, f64)>),
}

impl Pattern {
    /// Parses a pattern from its JSON text.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(err("", "must be a JSON object"));
        };
        if map.is_empty() {
            return Err(err("", "must not be empty"));
        }
        parse_object(&map, "")
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        self.fields.iter().all(|(key, node)| {
            let field = event.get(key);
            match node {
                Node::Nested(inner) => field.is_some_and(|f| f.is_object() && inner.matches(f)),
                Node::AnyOf(matchers) => matchers.iter().any(|m| m.matches(field)),
            }
        })
    }
}

fn parse_object(map: &Map<String, Value>, path: &str) -> Result<Pattern, PatternError> {
    let mut fields = Vec::new();
    for (key, value) in map {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let node = match value {
            Value::Object(inner) => Node::Nested(parse_object(inner, &here)?),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(err(&here, "match value must not be an empty array"));
                }
                Node::AnyOf(
                    items
                        .iter()
                        .map(|v| parse_matcher(v, &here))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => return Err(err(&here, "match value must be an array or an object")),
        };
        fields.push((key.clone(), node));
    }
    Ok(Pattern { fields })
}

fn parse_matcher(value: &Value, path: &str) -> Result<Matcher, PatternError> {
    let Value::Object(map) = value else {
        return match value {
            Value::Array(_) => Err(err(path, "match value must not be a nested array")),
            other => Ok(Matcher::Exact(other.clone())),
        };
    };
    let mut entries = map.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return Err(err(path, "a content filter must have exactly one key"));
    };
    let string_arg = |name: &str| {
        arg.as_str()
            .map(str::to_owned)
            .ok_or_else(|| err(path, format!("{name} match pattern must be a string")))
    };
    Ok(match op.as_str() {
        "prefix" => Matcher::Prefix(string_arg("prefix")?),
        "suffix" => Matcher::Suffix(string_arg("suffix")?),
        "equals-ignore-case" => Matcher::EqualsIgnoreCase(string_arg("equals-ignore-case")?),
        "exists" => Matcher::Exists(
            arg.as_bool()
                .ok_or_else(|| err(path, "exists match pattern must be true or false"))?,
        ),
        "anything-but" => match arg {
            Value::Array(items)
                if !items.is_empty() && items.iter().all(|v| v.is_string() || v.is_number()) =>
            {
                Matcher::AnythingBut(items.clone())
            }
            Value::String(_) | Value::Number(_) => Matcher::AnythingBut(vec![arg.clone()]),
            Value::Object(inner) => match (inner.get("prefix"), inner.len()) {
                (Some(Value::String(p)), 1) => Matcher::AnythingButPrefix(p.clone()),
                _ => {
                    return Err(err(
                        path,
                        "anything-but accepts only a prefix filter inside",
                    ));
                }
            },
            _ => {
                return Err(err(
                    path,
                    "anything-but needs a string, a number, a list of them, or a prefix",
                ));
            }
        },
        "numeric" => Matcher::Numeric(parse_numeric(arg, path)?),
        other => return Err(err(path, format!("unrecognized match type {other}"))),
    })
}

fn parse_numeric(arg: &Value, path: &str) -> Result<Vec<(String, f64)>, PatternError> {
    let Value::Array(items) = arg else {
        return Err(err(path, "numeric match pattern must be an array"));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(err(
            path,
            "numeric match pattern must be one or two (operator, number) pairs",
        ));
    }
    items
        .chunks(2)
        .map(|pair| {
            let op = pair[0].as_str().filter(|o| matches!(*o, "<" | "<=" | "=" | ">" | ">="));
            let bound = pair[1].as_f64();
            match (op, bound) {
                (Some(op), Some(bound)) => Ok((op.to_owned(), bound)),
                _ => Err(err(path, "numeric match pattern has an unrecognized operator or a bound that is not a number")),
            }
        })
        .collect()
}

impl Matcher {
    fn matches(&self, field: Option<&Value>) -> bool {
        match (self, field) {
            (Matcher::Exists(want), f) => f.is_some_and(|v| !v.is_object()) == *want,
            (_, None) => false,
            (_, Some(Value::Array(items))) => items.iter().any(|item| self.matches_one(item)),
            (_, Some(value)) => self.matches_one(value),
        }
    }

    fn matches_one(&self, value: &Value) -> bool {
        match self {
            Matcher::Exact(want) => match (want, value) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => want == value,
            },
            Matcher::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Matcher::Suffix(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            Matcher::EqualsIgnoreCase(p) => {
                value.as_str().is_some_and(|s| s.eq_ignore_ascii_case(p))
            }
            Matcher::AnythingBut(values) => !values.iter().any(|v| match (v, value) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => v == value,
            }),
            Matcher::AnythingButPrefix(p) => {
                value.as_str().is_some_and(|s| !s.starts_with(p.as_str()))
            }
            Matcher::Exists(want) => *want,
            Matcher::Numeric(conditions) => value.as_f64().is_some_and(|n| {
                conditions.iter().all(|(op, bound)| match op.as_str() {
                    "<" => n < *bound,
                    "<=" => n <= *bound,
                    "=" => n == *bound,
                    ">" => n > *bound,
                    _ => n >= *bound,
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "source": "shop.orders",
            "detail-type": "OrderPlaced",
            "resources": ["arn:a", "arn:b"],
            "detail": {
                "total": 42.5,
                "status": "PAID",
                "customer": { "tier": "gold", "country": "NZ" },
                "tags": ["new", "promo"],
                "_trace": { "traceparent": "00-abc" }
            }
        })
    }

    fn check(pattern: Value) -> bool {
        Pattern::parse(&pattern.to_string())
            .unwrap()
            .matches(&event())
    }

    #[test]
    fn table_of_patterns_against_one_event() {
        let cases = [
            (json!({"source": ["shop.orders"]}), true),
            (json!({"source": ["other"]}), false),
            (json!({"source": [{"prefix": "shop."}]}), true),
            (json!({"source": [{"suffix": ".orders"}]}), true),
            (
                json!({"detail-type": [{"equals-ignore-case": "orderplaced"}]}),
                true,
            ),
            (
                json!({"detail": {"status": [{"anything-but": "CANCELLED"}]}}),
                true,
            ),
            (
                json!({"detail": {"status": [{"anything-but": ["PAID", "X"]}]}}),
                false,
            ),
            (
                json!({"detail": {"status": [{"anything-but": {"prefix": "PA"}}]}}),
                false,
            ),
            (
                json!({"detail": {"missing": [{"anything-but": "x"}]}}),
                false,
            ),
            (
                json!({"detail": {"_trace": {"traceparent": [{"exists": true}]}}}),
                true,
            ),
            (json!({"detail": {"missing": [{"exists": false}]}}), true),
            (json!({"detail": {"status": [{"exists": false}]}}), false),
            (
                json!({"detail": {"total": [{"numeric": [">", 40, "<=", 42.5]}]}}),
                true,
            ),
            (
                json!({"detail": {"total": [{"numeric": ["<", 10]}]}}),
                false,
            ),
            (json!({"detail": {"total": [42.5]}}), true),
            (
                json!({"detail": {"customer": {"tier": ["gold"], "country": ["NZ", "AU"]}}}),
                true,
            ),
            (json!({"detail": {"customer": {"tier": ["silver"]}}}), false),
            (json!({"detail": {"tags": ["promo"]}}), true),
            (json!({"resources": ["arn:b"]}), true),
            (
                json!({"source": ["shop.orders"], "detail": {"status": ["NEW"]}}),
                false,
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(check(pattern.clone()), expected, "{pattern}");
        }
    }

    #[test]
    fn invalid_patterns_are_rejected_with_the_field() {
        for (text, path) in [
            (r#"{"source": "x"}"#, "source"),
            (r#"{"source": []}"#, "source"),
            (r#"{"detail": {"n": [{"numeric": [">"]}]}}"#, "detail.n"),
            (r#"{"detail": {"n": [{"bogus": 1}]}}"#, "detail.n"),
            ("[1]", "(root)"),
            ("{", "(root)"),
        ] {
            assert_eq!(Pattern::parse(text).unwrap_err().path, path, "{text}");
        }
    }
}
