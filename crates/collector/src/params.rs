//! Jaeger's query parameter formats: Go durations (`1.5s`, `100ms`, `1h30m`), microsecond and
//! millisecond timestamps, and tags as a JSON object or `key:value` pairs.

/// A query parameter that did not parse; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {param:?}: {problem}")]
pub struct ParamError {
    pub param: String,
    pub problem: String,
}

impl ParamError {
    pub fn new(param: &str, problem: impl Into<String>) -> Self {
        Self { param: param.to_owned(), problem: problem.into() }
    }
}

/// A Go duration (`time.ParseDuration`) in nanoseconds; also accepts `d` for days, as the Jaeger
/// UI sends for long lookbacks.
pub fn go_duration_nanos(param: &str, input: &str) -> Result<u64, ParamError> {
    let bad = || ParamError::new(param, format!("{input:?} is not a duration like 1.5s, 100ms or 1h"));
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
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
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

/// A non-negative integer (microseconds or milliseconds since the epoch, or a count).
pub fn unsigned(param: &str, input: &str) -> Result<u64, ParamError> {
    input
        .trim()
        .parse()
        .map_err(|_| ParamError::new(param, format!("{input:?} is not a non-negative integer")))
}

/// Jaeger's `tags` parameter, a JSON object of string values (`{"http.method":"GET"}`).
pub fn tags_json(param: &str, input: &str) -> Result<Vec<(String, String)>, ParamError> {
    let value: serde_json::Value = serde_json::from_str(input)
        .map_err(|err| ParamError::new(param, format!("{input:?} is not a JSON object: {err}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| ParamError::new(param, format!("{input:?} is not a JSON object")))?;
    object
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            serde_json::Value::Bool(b) => Ok((k.clone(), b.to_string())),
            serde_json::Value::Number(n) => Ok((k.clone(), n.to_string())),
            _ => Err(ParamError::new(param, format!("the value of {k:?} is not a string"))),
        })
        .collect()
}

/// Jaeger's older `tag=key:value` form.
pub fn tag_pair(param: &str, input: &str) -> Result<(String, String), ParamError> {
    input
        .split_once(':')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| ParamError::new(param, format!("{input:?} is not key:value")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("0", Some(0)),
            ("", None),
            ("10", None),
            ("ms", None),
            ("1.2.3s", None),
            ("3 weeks", None),
        ];
        for (input, want) in table {
            assert_eq!(go_duration_nanos("minDuration", input).ok(), *want, "input {input:?}");
        }
    }

    #[test]
    fn bad_duration_names_the_parameter() {
        let err = go_duration_nanos("maxDuration", "soon").unwrap_err();
        assert!(err.to_string().contains("maxDuration"), "{err}");
    }

    #[test]
    fn tags_as_json_object() {
        let tags = tags_json("tags", r#"{"http.method":"GET","error":true}"#).expect("valid");
        assert_eq!(
            tags,
            vec![("error".into(), "true".into()), ("http.method".into(), "GET".into())]
        );
        assert!(tags_json("tags", "[1]").is_err());
        assert!(tags_json("tags", "{").is_err());
    }
}
