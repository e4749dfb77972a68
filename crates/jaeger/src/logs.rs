//! Throughline's log search: `/api/throughline/logs`'s parameters (shared with the APM's Logs
//! page) and its items.

use serde::{Deserialize, Serialize};
use throughline_store::logs::any_value_text;
use throughline_store::{LogQuery, Severity, StoredLog};

use crate::params::{self, ParamError, Params};

/// The most records one log search returns.
pub const MAX_LOG_LIMIT: usize = 1000;
/// Records when `limit` is absent or 0.
pub const DEFAULT_LOG_LIMIT: usize = 100;

/// `service`, `severity` (the lowest severity: `trace`, `debug`, `info`, `warn`, `error`,
/// `fatal`, any case), `q` (text in the body or attributes), `traceID`, `spanID`, the
/// [`params::window`] (`lookback`, or `start`/`end`) and `limit` (at most [`MAX_LOG_LIMIT`]).
/// Empty values are no filter (a form submits its empty fields).
pub fn log_query(
    q: &Params,
    now_unix_nanos: u64,
    default_lookback_nanos: u64,
) -> Result<LogQuery, ParamError> {
    let (start, end) = params::window(q, now_unix_nanos, default_lookback_nanos)?;
    let given = |name: &str| q.get(name).map(str::trim).filter(|v| !v.is_empty());
    let min_severity = given("severity")
        .map(|v| {
            Severity::parse(v).ok_or_else(|| {
                ParamError::new(
                    "severity",
                    format!("{v:?} is not one of trace, debug, info, warn, error, fatal"),
                )
            })
        })
        .transpose()?;
    let limit = match given("limit") {
        None => DEFAULT_LOG_LIMIT,
        Some(v) => match params::unsigned("limit", v)? {
            0 => DEFAULT_LOG_LIMIT,
            n if n > MAX_LOG_LIMIT as u64 => {
                return Err(ParamError::new(
                    "limit",
                    format!(
                        "{n} is more than {MAX_LOG_LIMIT}, the most records one search returns"
                    ),
                ));
            }
            n => n as usize,
        },
    };
    Ok(LogQuery {
        service: given("service").map(str::to_owned),
        min_severity,
        text: given("q").map(str::to_owned),
        trace_id: given("traceID")
            .map(|v| params::trace_id("traceID", v))
            .transpose()?,
        span_id: given("spanID")
            .map(|v| params::span_id("spanID", v))
            .transpose()?,
        start_unix_nanos: start,
        end_unix_nanos: end,
        limit,
    })
}

/// `/api/throughline/logs`'s items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogRow {
    /// Unix nanoseconds (the record's time, else its observed time, else its arrival).
    pub time_unix_nano: u64,
    pub service: String,
    pub severity_text: String,
    pub severity_number: i32,
    pub body: String,
    /// Attribute keys and values as text, in the record's order.
    pub attributes: Vec<(String, String)>,
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(rename = "spanID", skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The instrumentation scope's name (the logger or crate).
    pub scope: String,
}

impl From<&StoredLog> for LogRow {
    fn from(l: &StoredLog) -> Self {
        Self {
            time_unix_nano: l.time_unix_nanos,
            service: l.service_name.clone(),
            severity_text: l.severity_text(),
            severity_number: throughline_store::logs::severity_number(&l.record),
            body: l.body_text(),
            attributes: l
                .record
                .attributes
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map(any_value_text).unwrap_or_default(),
                    )
                })
                .collect(),
            trace_id: l.trace_id().map(|t| t.to_string()),
            span_id: l.span_id().map(|s| s.to_string()),
            scope: l.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10_000_000_000_000;
    const HOUR: u64 = 3_600_000_000_000;

    #[test]
    fn log_parameters_parse_and_name_the_bad_one() {
        let q = log_query(
            &Params::parse(
                "service=api&severity=Warning&q=insert+failed&traceID=4bf92f3577b34da6a3ce929d0e0e4736&spanID=00f067aa0ba902b7&lookback=2h&limit=5",
            ),
            NOW,
            HOUR,
        )
        .unwrap();
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(q.min_severity, Some(Severity::Warn));
        assert_eq!(q.text.as_deref(), Some("insert failed"));
        assert_eq!(
            q.trace_id.map(|t| t.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            (q.start_unix_nanos, q.end_unix_nanos),
            (NOW - 2 * HOUR, NOW)
        );
        assert_eq!(q.limit, 5);
        let empty = log_query(&Params::parse("service=&severity=&q=&traceID="), NOW, HOUR).unwrap();
        assert_eq!(empty.service, None);
        assert_eq!(empty.limit, DEFAULT_LOG_LIMIT);
        for (raw, param) in [
            ("severity=loud", "severity"),
            ("traceID=xyz", "traceID"),
            ("spanID=12345678901234567", "spanID"),
            ("lookback=forever", "lookback"),
            ("limit=5000", "limit"),
            ("limit=-1", "limit"),
        ] {
            let err = log_query(&Params::parse(raw), NOW, HOUR).expect_err(raw);
            assert_eq!(err.param, param, "{raw}");
        }
    }
}
