//! The one parser of query parameters, shared by the Jaeger-compatible API and the APM pages:
//! percent-decoded `key=value` pairs, Go durations (`1.5s`, `100ms`, `1h30m`, and `2d`),
//! microsecond timestamps, tags, flags, ids, and a whole trace search. A bad value is a
//! [`ParamError`] that names its parameter.

use percent_encoding::percent_decode_str;
use throughline_store::{SpanId, TraceId, TraceQuery};

use crate::model::ERROR_TAG;

/// A query parameter that did not parse; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {problem}")]
pub struct ParamError {
    pub param: &'static str,
    pub problem: String,
}

impl ParamError {
    pub fn new(param: &'static str, problem: impl Into<String>) -> Self {
        Self {
            param,
            problem: problem.into(),
        }
    }
}

/// The parameters of one URL, in order; repeated keys are kept (`traceID=a&traceID=b`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string (without `?`): percent-decoding with `+` as a space, as HTML
    /// forms and the Jaeger UI encode queries. Bytes that are not UTF-8 after decoding become
    /// U+FFFD, so a value is always text.
    pub fn parse(raw: &str) -> Self {
        let decode = |s: &str| {
            let spaced = s.replace('+', " ");
            percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
        };
        Self(
            raw.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// Already decoded pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The last non-blank value of `key`, trimmed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .map(|(k, v)| (k, v.trim()))
            .find(|(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| v)
    }

    /// Every pair whose key starts with `prefix`, the prefix cut off, with its trimmed value,
    /// in order (`attr.customer.type=premium` under `attr.` is `("customer.type", "premium")`).
    pub fn prefixed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0
            .iter()
            .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.trim())))
    }

    /// Every non-blank value of `key`, trimmed, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// A Go duration (`time.ParseDuration`: a sequence of decimal numbers with units `ns`, `us`/`µs`,
/// `ms`, `s`, `m`, `h`, such as `1h30m` or `1.5s`) in nanoseconds; also accepts `d` for days, as
/// the Jaeger UI sends for long lookbacks. A bare `0` is zero; other bare numbers are refused.
pub fn go_duration_nanos(param: &'static str, input: &str) -> Result<u64, ParamError> {
    let bad = || {
        ParamError::new(
            param,
            format!("{input:?} is not a duration like 150ms, 1.5s or 1h30m"),
        )
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        // `find` answers byte offsets of char boundaries, so every slice below is on one.
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * unit_nanos;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total as u64)
}

/// A non-negative integer (a count, or milliseconds).
pub fn unsigned(param: &'static str, input: &str) -> Result<u64, ParamError> {
    input
        .trim()
        .parse()
        .map_err(|_| ParamError::new(param, format!("{input:?} is not a non-negative integer")))
}

/// A time in Unix microseconds (Jaeger's `start`/`end`), as Unix nanoseconds.
pub fn micros_as_nanos(param: &'static str, input: &str) -> Result<u64, ParamError> {
    input
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|us| us.checked_mul(1_000))
        .ok_or_else(|| {
            ParamError::new(
                param,
                format!("{input:?} is not a time in Unix microseconds"),
            )
        })
}

/// Attribute filters, in any of Jaeger's forms: a JSON object (`{"http.method":"GET"}`, the
/// `tags` URL parameter; numbers and booleans read as their text), or pairs separated by spaces,
/// each `key=value` (the search box) or `key:value` (the older `tag` parameter).
pub fn tags(param: &'static str, input: &str) -> Result<Vec<(String, String)>, ParamError> {
    let input = input.trim();
    if input.starts_with('{') {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(input)
            .map_err(|err| {
                ParamError::new(param, format!("{input:?} is not a JSON object: {err}"))
            })?;
        return object
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Bool(b) => Ok((k, b.to_string())),
                serde_json::Value::Number(n) => Ok((k, n.to_string())),
                _ => Err(ParamError::new(
                    param,
                    format!("the value of {k:?} is not a string, number or boolean"),
                )),
            })
            .collect();
    }
    input
        .split_whitespace()
        .map(|pair| {
            let split = pair.split_once('=').or_else(|| pair.split_once(':'));
            match split {
                Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => Err(ParamError::new(
                    param,
                    format!("{pair:?} is not key=value, key:value or a JSON object"),
                )),
            }
        })
        .collect()
}

/// A boolean flag: `true`/`1`/`on` or `false`/`0`/`off`; absent is false.
pub fn flag(params: &Params, param: &'static str) -> Result<bool, ParamError> {
    match params.get(param) {
        None | Some("false" | "0" | "off") => Ok(false),
        Some("true" | "1" | "on") => Ok(true),
        Some(v) => Err(ParamError::new(
            param,
            format!("{v:?} is not true or false"),
        )),
    }
}

/// A trace id: up to 32 hex digits (shorter ones are left-padded, as Jaeger does).
pub fn trace_id(param: &'static str, input: &str) -> Result<TraceId, ParamError> {
    input.trim().parse().map_err(|_| {
        ParamError::new(
            param,
            format!("{input:?} is not a trace id of up to 32 hex digits"),
        )
    })
}

/// A span id: up to 16 hex digits.
pub fn span_id(param: &'static str, input: &str) -> Result<SpanId, ParamError> {
    input.trim().parse().map_err(|_| {
        ParamError::new(
            param,
            format!("{input:?} is not a span id of up to 16 hex digits"),
        )
    })
}

/// Every `param` value as a trace id (`traceID=a&traceID=b`).
pub fn trace_ids(params: &Params, param: &'static str) -> Result<Vec<TraceId>, ParamError> {
    params.all(param).map(|v| trace_id(param, v)).collect()
}

/// The time window of a search or page, in Unix nanoseconds: `start`/`end` in Unix microseconds
/// (`end` defaults to now), else `lookback` back from `end` (a Go duration; `custom` means
/// `start` decides, as the Jaeger UI sends), else `default_lookback_nanos`.
pub fn window(
    params: &Params,
    now_unix_nanos: u64,
    default_lookback_nanos: u64,
) -> Result<(u64, u64), ParamError> {
    let end = match params.get("end") {
        Some(v) => micros_as_nanos("end", v)?,
        None => now_unix_nanos,
    };
    let start = match (params.get("start"), params.get("lookback")) {
        (Some(v), _) => micros_as_nanos("start", v)?,
        (None, Some(lb)) if lb != "custom" => {
            end.saturating_sub(go_duration_nanos("lookback", lb)?)
        }
        _ => end.saturating_sub(default_lookback_nanos),
    };
    if start > end {
        return Err(ParamError::new("start", "is after end"));
    }
    Ok((start, end))
}

/// What a caller of [`trace_query`] decides: its defaults and its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchDefaults {
    /// Results when `limit` is absent or 0 (Jaeger reads 0 as the default).
    pub limit: usize,
    /// The largest `limit` honoured; a larger one is refused, naming the cap.
    pub max_limit: usize,
    pub lookback_nanos: u64,
}

/// A trace search: `service`, `operation`, `tags` (and `tag`, repeatable), the [`window`],
/// `minDuration`/`maxDuration` (Go durations), `limit`, `errors` and `incompleteOnly` flags.
/// Jaeger's tag `error=true` is the span status, so it sets `errors_only`.
pub fn trace_query(
    params: &Params,
    now_unix_nanos: u64,
    defaults: SearchDefaults,
) -> Result<TraceQuery, ParamError> {
    let (start, end) = window(params, now_unix_nanos, defaults.lookback_nanos)?;
    let mut tag_filters = Vec::new();
    for t in params.all("tags") {
        tag_filters.extend(tags("tags", t)?);
    }
    for t in params.all("tag") {
        tag_filters.extend(tags("tag", t)?);
    }
    let error_tag = tag_filters
        .iter()
        .any(|(k, v)| k == ERROR_TAG && v == "true");
    tag_filters.retain(|(k, _)| k != ERROR_TAG);
    let min = params
        .get("minDuration")
        .map(|v| go_duration_nanos("minDuration", v))
        .transpose()?;
    let max = params
        .get("maxDuration")
        .map(|v| go_duration_nanos("maxDuration", v))
        .transpose()?;
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(ParamError::new("minDuration", "is longer than maxDuration"));
    }
    let limit = match params.get("limit") {
        None => defaults.limit,
        Some(v) => match unsigned("limit", v)? {
            0 => defaults.limit,
            n if n > defaults.max_limit as u64 => {
                return Err(ParamError::new(
                    "limit",
                    format!(
                        "{n} is more than {}, the most traces one search returns",
                        defaults.max_limit
                    ),
                ));
            }
            n => n as usize,
        },
    };
    Ok(TraceQuery {
        service: params.get("service").map(str::to_owned),
        operation: params.get("operation").map(str::to_owned),
        tags: tag_filters,
        start_unix_nanos: start,
        end_unix_nanos: end,
        min_duration_nanos: min,
        max_duration_nanos: max,
        errors_only: error_tag || flag(params, "errors")?,
        incomplete_only: flag(params, "incompleteOnly")?,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;
    const DEFAULTS: SearchDefaults = SearchDefaults {
        limit: 20,
        max_limit: 1000,
        lookback_nanos: 3_600_000_000_000,
    };

    fn q(s: &str) -> Params {
        Params::parse(s)
    }

    #[test]
    fn decoding_handles_percent_plus_and_junk() {
        let p = q("tags=%7B%22a%22%3A%22b+c%22%7D&service=x&odd=100%&bad=%ZZ&utf=%C3%A9&raw=%FF");
        assert_eq!(p.get("tags"), Some(r#"{"a":"b c"}"#));
        assert_eq!(p.get("service"), Some("x"));
        assert_eq!(p.get("odd"), Some("100%"));
        assert_eq!(p.get("bad"), Some("%ZZ"));
        assert_eq!(p.get("utf"), Some("é"));
        assert_eq!(p.get("raw"), Some("\u{fffd}"));
        assert_eq!(q("a=1&a=&a=2&a=").all("a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(q("a=1&a= ").get("a"), Some("1"));
    }

    #[test]
    fn go_durations() {
        let table: &[(&str, Option<u64>)] = &[
            ("1.2s", Some(1_200_000_000)),
            ("100ms", Some(100_000_000)),
            ("1h", Some(3_600_000_000_000)),
            ("1h30m", Some(5_400_000_000_000)),
            ("2d", Some(172_800_000_000_000)),
            ("250us", Some(250_000)),
            ("5µs", Some(5_000)),
            ("10ns", Some(10)),
            ("0", Some(0)),
            ("", None),
            ("10", None),
            ("ms", None),
            ("-1s", None),
            ("1.2.3s", None),
            ("3 weeks", None),
            ("1e999s", None),
            ("1é", None),
            ("é1s", None),
            ("99999999999999999999h", None),
        ];
        for (input, want) in table {
            assert_eq!(
                go_duration_nanos("minDuration", input).ok(),
                *want,
                "input {input:?}"
            );
        }
        let err = go_duration_nanos("maxDuration", "soon").unwrap_err();
        assert_eq!(
            err.to_string(),
            "maxDuration: \"soon\" is not a duration like 150ms, 1.5s or 1h30m"
        );
    }

    #[test]
    fn tags_in_every_form() {
        assert_eq!(
            tags("tags", r#"{"http.method":"GET","error":true,"n":200}"#).unwrap(),
            vec![
                ("error".into(), "true".into()),
                ("http.method".into(), "GET".into()),
                ("n".into(), "200".into()),
            ]
        );
        assert_eq!(
            tags("tags", "http.route=/users url=http://x:1/").unwrap(),
            vec![
                ("http.route".into(), "/users".into()),
                ("url".into(), "http://x:1/".into())
            ]
        );
        assert_eq!(
            tags("tag", "http.status_code:200").unwrap(),
            vec![("http.status_code".into(), "200".into())]
        );
        for bad in ["[1]", "{", "novalue", "=v", r#"{"a":[1]}"#] {
            assert_eq!(tags("tags", bad).unwrap_err().param, "tags", "{bad}");
        }
    }

    #[test]
    fn ids_name_their_parameter_and_never_panic() {
        assert!(trace_id("traceID", "4bf92f3577b34da6a3ce929d0e0e4736").is_ok());
        assert!(trace_id("traceID", "abc").is_ok());
        for bad in ["not-an-id", "é", "😀", &format!("{}é", "0".repeat(30)), ""] {
            assert_eq!(trace_id("traceID", bad).unwrap_err().param, "traceID");
            assert_eq!(span_id("span", bad).unwrap_err().param, "span");
        }
        assert_eq!(
            trace_ids(&q("traceID=a&traceID=%C3%A9"), "traceID")
                .unwrap_err()
                .param,
            "traceID"
        );
    }

    #[test]
    fn search_reads_every_field() {
        let tq = trace_query(
            &q("service=a&operation=POST+%2Fusers&start=1000&end=5000&minDuration=1.5ms&maxDuration=1s&limit=7&tags=%7B%22error%22%3A%22true%22%2C%22k%22%3A%22v%22%7D&tag=x:y&incompleteOnly=true"),
            NOW,
            DEFAULTS,
        )
        .expect("valid");
        assert_eq!(tq.service.as_deref(), Some("a"));
        assert_eq!(tq.operation.as_deref(), Some("POST /users"));
        assert_eq!(tq.start_unix_nanos, 1_000_000);
        assert_eq!(tq.end_unix_nanos, 5_000_000);
        assert_eq!(tq.min_duration_nanos, Some(1_500_000));
        assert_eq!(tq.max_duration_nanos, Some(1_000_000_000));
        assert_eq!(tq.limit, 7);
        assert!(tq.errors_only && tq.incomplete_only);
        assert_eq!(
            tq.tags,
            vec![("k".to_owned(), "v".to_owned()), ("x".into(), "y".into())]
        );
    }

    #[test]
    fn search_defaults_and_lookback() {
        let tq = trace_query(&q(""), NOW, DEFAULTS).unwrap();
        assert_eq!(
            (tq.start_unix_nanos, tq.end_unix_nanos, tq.limit),
            (NOW - DEFAULTS.lookback_nanos, NOW, 20)
        );
        assert!(!tq.errors_only && !tq.incomplete_only);
        let tq = trace_query(&q("lookback=1h30m&limit=0"), NOW, DEFAULTS).unwrap();
        assert_eq!(tq.start_unix_nanos, NOW - 5_400_000_000_000);
        assert_eq!(tq.limit, 20);
        let tq = trace_query(&q("lookback=custom&start=1"), NOW, DEFAULTS).unwrap();
        assert_eq!(tq.start_unix_nanos, 1000);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (query, param) in [
            ("start=x", "start"),
            ("end=yesterday", "end"),
            ("start=3000&end=2000", "start"),
            ("minDuration=fast", "minDuration"),
            ("minDuration=2s&maxDuration=1s", "minDuration"),
            ("lookback=forever", "lookback"),
            ("tags=nope", "tags"),
            ("tag=nope", "tag"),
            ("limit=-1", "limit"),
            ("limit=1001", "limit"),
            ("errors=maybe", "errors"),
            ("incompleteOnly=maybe", "incompleteOnly"),
            ("end=99999999999999999999", "end"),
        ] {
            let err = trace_query(&q(query), NOW, DEFAULTS).expect_err(query);
            assert_eq!(err.param, param, "{query}: {err}");
        }
        let err = trace_query(&q("limit=5000"), NOW, DEFAULTS).unwrap_err();
        assert!(err.to_string().contains("1000"), "{err}");
    }
}
