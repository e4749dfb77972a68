//! Query-string parameters of the pages, parsed into typed values; a bad value names its field.

use throughline_store::{TraceId, TraceQuery};

/// A query parameter that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} {problem}")]
pub struct ParamError {
    pub field: &'static str,
    pub value: String,
    pub problem: &'static str,
}

/// The default and largest number of search results.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1_000;
/// The window searched, and charted, when none is given.
pub const DEFAULT_LOOKBACK_NANOS: u64 = 3_600 * 1_000_000_000;

/// Raw parameters, as repeated `key=value` pairs from the URL.
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The last non-empty value of `key`, trimmed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }
}

/// The time window of a page: `start`/`end` in Unix microseconds (as Jaeger's URLs), or
/// `lookback` (`15m`, `1h`, `2d`) back from `now`.
pub fn window(params: &Params, now_unix_nanos: u64) -> Result<(u64, u64), ParamError> {
    let end = match params.get("end") {
        Some(v) => micros(v, "end")?,
        None => now_unix_nanos,
    };
    let start = match (params.get("start"), params.get("lookback")) {
        (Some(v), _) => micros(v, "start")?,
        (None, Some(v)) => end.saturating_sub(duration_nanos(v, "lookback")?),
        (None, None) => end.saturating_sub(DEFAULT_LOOKBACK_NANOS),
    };
    if start > end {
        return Err(ParamError {
            field: "start",
            value: params.get("start").unwrap_or_default().to_owned(),
            problem: "is after end",
        });
    }
    Ok((start, end))
}

fn micros(value: &str, field: &'static str) -> Result<u64, ParamError> {
    value
        .parse::<u64>()
        .ok()
        .and_then(|us| us.checked_mul(1_000))
        .ok_or_else(|| ParamError {
            field,
            value: value.to_owned(),
            problem: "is not a time in Unix microseconds",
        })
}

/// A duration such as `150ms`, `1.5s`, `200us`, `2m`, `1h`, `1d`; a bare number is milliseconds.
pub fn duration_nanos(value: &str, field: &'static str) -> Result<u64, ParamError> {
    let err = || ParamError {
        field,
        value: value.to_owned(),
        problem: "is not a duration like 150ms, 1.5s or 2m",
    };
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| err())?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "" | "ms" => 1e6,
        "s" => 1e9,
        "m" => 6e10,
        "h" => 3.6e12,
        "d" => 8.64e13,
        _ => return Err(err()),
    };
    let nanos = number * scale;
    if !nanos.is_finite() || nanos < 0.0 || nanos > u64::MAX as f64 {
        return Err(err());
    }
    Ok(nanos as u64)
}

/// Attribute filters: `key=value` pairs separated by spaces (as Jaeger's search box) or a JSON
/// object `{"key":"value"}` (as Jaeger's `tags` URL parameter).
pub fn tags(value: &str) -> Result<Vec<(String, String)>, ParamError> {
    let err = |problem| ParamError {
        field: "tags",
        value: value.to_owned(),
        problem,
    };
    if value.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(value).map_err(|_| err("is not a JSON object of strings"))?;
        return map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Number(n) => Ok((k, n.to_string())),
                serde_json::Value::Bool(b) => Ok((k, b.to_string())),
                _ => Err(err("is not a JSON object of strings")),
            })
            .collect();
    }
    value
        .split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(err("is not a list of key=value pairs")),
        })
        .collect()
}

/// The search form's parameters as a store query.
pub fn trace_query(params: &Params, now_unix_nanos: u64) -> Result<TraceQuery, ParamError> {
    let (start, end) = window(params, now_unix_nanos)?;
    let min = params
        .get("minDuration")
        .map(|v| duration_nanos(v, "minDuration"))
        .transpose()?;
    let max = params
        .get("maxDuration")
        .map(|v| duration_nanos(v, "maxDuration"))
        .transpose()?;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(ParamError {
            field: "minDuration",
            value: params.get("minDuration").unwrap_or_default().to_owned(),
            problem: "is longer than maxDuration",
        });
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ParamError {
                    field: "limit",
                    value: v.to_owned(),
                    problem: "is not a number from 1 to 1000",
                });
            }
        },
    };
    Ok(TraceQuery {
        service: params.get("service").map(str::to_owned),
        operation: params.get("operation").map(str::to_owned),
        tags: params
            .get("tags")
            .map(tags)
            .transpose()?
            .unwrap_or_default(),
        start_unix_nanos: start,
        end_unix_nanos: end,
        min_duration_nanos: min,
        max_duration_nanos: max,
        errors_only: flag(params, "errors")?,
        incomplete_only: flag(params, "incomplete")?,
        limit,
    })
}

fn flag(params: &Params, field: &'static str) -> Result<bool, ParamError> {
    match params.get(field) {
        None | Some("false" | "0" | "off") => Ok(false),
        Some("true" | "1" | "on") => Ok(true),
        Some(v) => Err(ParamError {
            field,
            value: v.to_owned(),
            problem: "is not true or false",
        }),
    }
}

/// A trace id from a URL, with the field named on failure.
pub fn trace_id(value: &str, field: &'static str) -> Result<TraceId, ParamError> {
    value.trim().parse().map_err(|_| ParamError {
        field,
        value: value.to_owned(),
        problem: "is not a trace id of up to 32 hex digits",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    const NOW: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn durations_parse_with_units() {
        for (input, nanos) in [
            ("150ms", 150_000_000),
            ("1.5s", 1_500_000_000),
            ("200us", 200_000),
            ("200µs", 200_000),
            ("2m", 120_000_000_000),
            ("1h", 3_600_000_000_000),
            ("7", 7_000_000),
            ("10ns", 10),
        ] {
            assert_eq!(duration_nanos(input, "x"), Ok(nanos), "{input}");
        }
        for bad in ["", "abc", "5 parsecs", "-1s", "1e999s", "."] {
            assert!(duration_nanos(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_parse_from_pairs_and_json() {
        assert_eq!(
            tags("http.route=/users error=true").unwrap(),
            vec![
                ("http.route".into(), "/users".into()),
                ("error".into(), "true".into())
            ]
        );
        assert_eq!(
            tags(r#"{"a":"b","n":200}"#).unwrap(),
            vec![("a".into(), "b".into()), ("n".into(), "200".into())]
        );
        assert_eq!(tags("novalue").unwrap_err().field, "tags");
        assert_eq!(tags("=v").unwrap_err().field, "tags");
        assert_eq!(tags(r#"{"a":[1]}"#).unwrap_err().field, "tags");
    }

    #[test]
    fn search_defaults_to_the_last_hour() {
        let q = trace_query(&params(&[]), NOW).unwrap();
        assert_eq!(q.end_unix_nanos, NOW);
        assert_eq!(q.start_unix_nanos, NOW - DEFAULT_LOOKBACK_NANOS);
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert!(!q.errors_only);
    }

    #[test]
    fn search_reads_every_field() {
        let q = trace_query(
            &params(&[
                ("service", "onboarding-api"),
                ("operation", "POST /users"),
                ("tags", "k=v"),
                ("minDuration", "10ms"),
                ("maxDuration", "2s"),
                ("start", "1000"),
                ("end", "2000"),
                ("errors", "on"),
                ("limit", "5"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(q.service.as_deref(), Some("onboarding-api"));
        assert_eq!(q.operation.as_deref(), Some("POST /users"));
        assert_eq!(q.tags, vec![("k".into(), "v".into())]);
        assert_eq!(
            (q.min_duration_nanos, q.max_duration_nanos),
            (Some(10_000_000), Some(2_000_000_000))
        );
        assert_eq!(
            (q.start_unix_nanos, q.end_unix_nanos),
            (1_000_000, 2_000_000)
        );
        assert!(q.errors_only);
        assert_eq!(q.limit, 5);
    }

    #[test]
    fn empty_fields_are_ignored() {
        let q = trace_query(&params(&[("service", ""), ("minDuration", " ")]), NOW).unwrap();
        assert_eq!(q.service, None);
        assert_eq!(q.min_duration_nanos, None);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (pairs, field) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "many")], "limit"),
            (vec![("minDuration", "soon")], "minDuration"),
            (
                vec![("minDuration", "2s"), ("maxDuration", "1s")],
                "minDuration",
            ),
            (vec![("start", "yesterday")], "start"),
            (vec![("start", "3000"), ("end", "2000")], "start"),
            (vec![("lookback", "forever")], "lookback"),
            (vec![("errors", "maybe")], "errors"),
        ] {
            assert_eq!(
                trace_query(&params(&pairs), NOW).unwrap_err().field,
                field,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn trace_ids_accept_short_and_reject_junk() {
        assert!(trace_id("4bf92f3577b34da6a3ce929d0e0e4736", "id").is_ok());
        assert!(trace_id("abc", "id").is_ok());
        let err = trace_id("not-an-id", "id").unwrap_err();
        assert_eq!(
            err.to_string(),
            "id: \"not-an-id\" is not a trace id of up to 32 hex digits"
        );
    }
}
