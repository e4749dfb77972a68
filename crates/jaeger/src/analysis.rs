//! Throughline's own analysis answers beside Jaeger's model: findings (N+1 queries and their
//! kin), the database report and error groups, as `/api/throughline/findings`,
//! `/api/throughline/database` and `/api/throughline/errors` serve them and `throughline verify`
//! and the APM read them; and the query parameters of those endpoints.
//!
//! Times are Unix microseconds (`startTime`) as in Jaeger's model, durations milliseconds
//! (`durationMs`, `totalMs`) as the issue that asked for them names them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use throughline_store::database::{
    DEFAULT_SLOW_QUERY_MS, PoolPressure, ServiceDatabaseTime, SlowQuery, SpanRef, StatementClass,
};
use throughline_store::{
    DatabaseQuery, DatabaseReport, ErrorGroup, ErrorQuery, Finding, FindingKind, FindingQuery,
    MetricQuery,
};

use crate::params::{self, ParamError, Params};

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// One finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FindingReport {
    /// `n_plus_one_db`, `repeated_http` or `unbatched_send`.
    pub kind: String,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "parentSpanID")]
    pub parent_span_id: String,
    #[serde(rename = "spanIDs")]
    pub span_ids: Vec<String>,
    pub statement: String,
    pub count: u64,
    pub duration_ms: f64,
    pub service: String,
    pub start_time: u64,
}

impl From<&Finding> for FindingReport {
    fn from(f: &Finding) -> Self {
        Self {
            kind: f.kind.as_str().to_owned(),
            trace_id: f.trace_id.to_string(),
            parent_span_id: f.parent_span_id.to_string(),
            span_ids: f.span_ids.iter().map(ToString::to_string).collect(),
            statement: f.statement.clone(),
            count: f.count,
            duration_ms: ms(f.duration_nanos),
            service: f.service.clone(),
            start_time: f.start_unix_nanos / 1000,
        }
    }
}

/// A span a row of the database report opens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SpanLink {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub start_time: u64,
    pub duration_ms: f64,
}

impl From<&SpanRef> for SpanLink {
    fn from(r: &SpanRef) -> Self {
        Self {
            trace_id: r.trace_id.to_string(),
            span_id: r.span_id.to_string(),
            start_time: r.start_unix_nanos / 1000,
            duration_ms: ms(r.duration_nanos),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StatementRow {
    pub db_system: String,
    pub database: String,
    pub statement: String,
    pub calls: u64,
    pub calls_per_minute: f64,
    pub errors: u64,
    pub total_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// 0 to 1.
    pub share_of_service_db_time: f64,
    pub callers: Vec<String>,
    pub tables: Vec<String>,
    pub slowest: SpanLink,
    pub most_recent: SpanLink,
}

impl From<&StatementClass> for StatementRow {
    fn from(c: &StatementClass) -> Self {
        Self {
            db_system: c.db_system.clone(),
            database: c.database.clone(),
            statement: c.statement.clone(),
            calls: c.calls,
            calls_per_minute: c.calls_per_minute,
            errors: c.errors,
            total_ms: ms(c.total_nanos),
            p50_ms: ms(c.p50_nanos),
            p95_ms: ms(c.p95_nanos),
            p99_ms: ms(c.p99_nanos),
            share_of_service_db_time: c.share_of_service_db_time,
            callers: c.callers.clone(),
            tables: c.tables.clone(),
            slowest: (&c.slowest).into(),
            most_recent: (&c.most_recent).into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SlowQueryRow {
    #[serde(flatten)]
    pub span: SpanLink,
    pub service: String,
    pub db_system: String,
    pub database: String,
    pub statement: String,
    pub error: bool,
    pub attributes: BTreeMap<String, String>,
}

impl From<&SlowQuery> for SlowQueryRow {
    fn from(s: &SlowQuery) -> Self {
        Self {
            span: (&s.span).into(),
            service: s.service.clone(),
            db_system: s.db_system.clone(),
            database: s.database.clone(),
            statement: s.statement.clone(),
            error: s.error,
            attributes: s.attributes.iter().cloned().collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PoolRow {
    pub service: String,
    pub database: String,
    pub spans: u64,
    pub exhausted: u64,
    pub max_pool_size: Option<i64>,
    pub max_wait_ms: Option<f64>,
    pub last_exhausted: Option<SpanLink>,
    /// From the `db.client.connection.*` metrics, when the service exports them.
    pub metrics: Option<PoolMetricsRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PoolMetricsRow {
    pub max_in_use: Option<i64>,
    pub limit: Option<i64>,
    pub max_pending_requests: Option<i64>,
    pub timeouts: Option<i64>,
    pub points_at_limit: u64,
}

impl From<&PoolPressure> for PoolRow {
    fn from(p: &PoolPressure) -> Self {
        Self {
            service: p.service.clone(),
            database: p.database.clone(),
            spans: p.spans,
            exhausted: p.exhausted,
            max_pool_size: p.max_pool_size,
            max_wait_ms: p.max_wait_ms,
            last_exhausted: p.last_exhausted.as_ref().map(SpanLink::from),
            metrics: p.metrics.as_ref().map(|m| PoolMetricsRow {
                max_in_use: m.max_in_use,
                limit: m.limit,
                max_pending_requests: m.max_pending_requests,
                timeouts: m.timeouts,
                points_at_limit: m.points_at_limit,
            }),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceDbRow {
    pub service: String,
    pub db_calls: u64,
    pub db_time_ms: f64,
    pub entry_calls: u64,
    pub entry_time_ms: f64,
}

impl From<&ServiceDatabaseTime> for ServiceDbRow {
    fn from(s: &ServiceDatabaseTime) -> Self {
        Self {
            service: s.service.clone(),
            db_calls: s.db_calls,
            db_time_ms: ms(s.db_nanos),
            entry_calls: s.entry_calls,
            entry_time_ms: ms(s.entry_nanos),
        }
    }
}

/// `/api/throughline/database`'s one item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DatabaseAnswer {
    pub slow_query_threshold_ms: f64,
    /// The window held more spans than one report reads: these figures are of its most recent
    /// part.
    pub truncated: bool,
    pub statements: Vec<StatementRow>,
    pub slow_queries: Vec<SlowQueryRow>,
    pub pools: Vec<PoolRow>,
    pub services: Vec<ServiceDbRow>,
}

impl DatabaseAnswer {
    pub fn new(report: &DatabaseReport, query: &DatabaseQuery) -> Self {
        Self {
            slow_query_threshold_ms: ms(query.slow_query_nanos),
            truncated: report.truncated,
            statements: report.statements.iter().map(Into::into).collect(),
            slow_queries: report.slow_queries.iter().map(Into::into).collect(),
            pools: report.pools.iter().map(Into::into).collect(),
            services: report.services.iter().map(Into::into).collect(),
        }
    }
}

/// `/api/throughline/errors`'s items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorGroupRow {
    pub service: String,
    pub exception_type: Option<String>,
    pub message: String,
    pub span_names: Vec<String>,
    pub count: u64,
    pub recent: Vec<SpanLink>,
}

impl From<&ErrorGroup> for ErrorGroupRow {
    fn from(g: &ErrorGroup) -> Self {
        Self {
            service: g.service.clone(),
            exception_type: g.exception_type.clone(),
            message: g.message.clone(),
            span_names: g.span_names.clone(),
            count: g.count,
            recent: g.recent.iter().map(Into::into).collect(),
        }
    }
}

fn service(q: &Params) -> Option<String> {
    q.get("service")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `service`, `kind`, `traceID` and the [`params::window`].
pub fn finding_query(
    q: &Params,
    now_unix_nanos: u64,
    default_lookback_nanos: u64,
) -> Result<FindingQuery, ParamError> {
    let (start, end) = params::window(q, now_unix_nanos, default_lookback_nanos)?;
    let kind = q
        .get("kind")
        .filter(|k| !k.is_empty())
        .map(|k| {
            k.parse::<FindingKind>()
                .map_err(|e| ParamError::new("kind", e.to_string()))
        })
        .transpose()?;
    let trace_id = q
        .get("traceID")
        .map(|t| params::trace_id("traceID", t))
        .transpose()?;
    Ok(FindingQuery {
        service: service(q),
        kind,
        trace_id,
        start_unix_nanos: start,
        end_unix_nanos: end,
    })
}

/// `service`, `slowQueryMs` (default [`DEFAULT_SLOW_QUERY_MS`]) and the [`params::window`].
pub fn database_query(
    q: &Params,
    now_unix_nanos: u64,
    default_lookback_nanos: u64,
) -> Result<DatabaseQuery, ParamError> {
    let (start, end) = params::window(q, now_unix_nanos, default_lookback_nanos)?;
    let slow_ms = match q.get("slowQueryMs") {
        Some(v) => params::unsigned("slowQueryMs", v)?,
        None => DEFAULT_SLOW_QUERY_MS,
    };
    Ok(DatabaseQuery {
        service: service(q),
        start_unix_nanos: start,
        end_unix_nanos: end,
        slow_query_nanos: slow_ms.saturating_mul(1_000_000),
        max_scanned_spans: throughline_store::database::MAX_SCANNED_SPANS,
    })
}

/// `service` and the [`params::window`].
pub fn error_query(
    q: &Params,
    now_unix_nanos: u64,
    default_lookback_nanos: u64,
) -> Result<ErrorQuery, ParamError> {
    let (start, end) = params::window(q, now_unix_nanos, default_lookback_nanos)?;
    Ok(ErrorQuery {
        service: service(q),
        start_unix_nanos: start,
        end_unix_nanos: end,
    })
}

/// The most buckets a metric query may ask for (the store's own cap).
pub const MAX_METRIC_STEPS: u64 = throughline_store::otlp_metrics::MAX_STEPS;
/// Buckets of a metric query without `step`.
pub const DEFAULT_METRIC_STEPS: u64 = 60;

/// `/api/throughline/metrics?name=&service=&attr.K=V&lookback=&step=` (or `start`/`end`):
/// `name` is required; each `attr.K=V` must hold on the point or its resource; `step` a Go
/// duration (default: the window in [`DEFAULT_METRIC_STEPS`] buckets, at least one second),
/// at most [`MAX_METRIC_STEPS`] buckets.
pub fn metric_query(
    q: &Params,
    now_unix_nanos: u64,
    default_lookback_nanos: u64,
) -> Result<MetricQuery, ParamError> {
    let name = q
        .get("name")
        .ok_or_else(|| ParamError::new("name", "is required (the metric's name)"))?;
    let (start, end) = params::window(q, now_unix_nanos, default_lookback_nanos)?;
    let span = end - start;
    let step_nanos = match q.get("step") {
        Some(v) => {
            let step = params::go_duration_nanos("step", v)?;
            if step == 0 {
                return Err(ParamError::new("step", "must be more than 0"));
            }
            if span / step > MAX_METRIC_STEPS {
                return Err(ParamError::new(
                    "step",
                    format!("{v:?} makes more than {MAX_METRIC_STEPS} buckets of the window"),
                ));
            }
            step
        }
        None => (span / DEFAULT_METRIC_STEPS).max(1_000_000_000),
    };
    let mut attributes = Vec::new();
    for (key, value) in q.prefixed("attr.") {
        if key.is_empty() {
            return Err(ParamError::new(
                "attr.",
                "needs an attribute key after attr.",
            ));
        }
        attributes.push((key.to_owned(), value.to_owned()));
    }
    Ok(MetricQuery {
        name: name.to_owned(),
        service: service(q),
        attributes,
        start_unix_nanos: start,
        end_unix_nanos: end,
        step_nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10_000_000_000_000;
    const HOUR: u64 = 3_600_000_000_000;

    #[test]
    fn metric_parameters_parse_attributes_and_steps_and_name_the_bad_one() {
        let q = metric_query(
            &Params::parse("name=onboarding.requests&service=api&attr.customer.type=premium&lookback=1h&step=1m"),
            NOW,
            HOUR,
        )
        .unwrap();
        assert_eq!(q.name, "onboarding.requests");
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(
            q.attributes,
            vec![("customer.type".to_owned(), "premium".to_owned())]
        );
        assert_eq!((q.start_unix_nanos, q.end_unix_nanos), (NOW - HOUR, NOW));
        assert_eq!(q.step_nanos, 60_000_000_000);
        let default_step = metric_query(&Params::parse("name=m&lookback=1h"), NOW, HOUR).unwrap();
        assert_eq!(default_step.step_nanos, HOUR / DEFAULT_METRIC_STEPS);
        for (query, param) in [
            ("service=api", "name"),
            ("name=m&step=fast", "step"),
            ("name=m&step=0s", "step"),
            ("name=m&lookback=1h&step=1s", "step"),
            ("name=m&lookback=soon", "lookback"),
            ("name=m&attr.=x", "attr."),
        ] {
            let err = metric_query(&Params::parse(query), NOW, HOUR).unwrap_err();
            assert_eq!(err.param, param, "{query}: {err}");
        }
    }

    #[test]
    fn finding_parameters_name_the_bad_one() {
        let q = finding_query(
            &Params::parse("service=api&kind=n_plus_one_db&lookback=2h"),
            NOW,
            HOUR,
        )
        .unwrap();
        assert_eq!(q.kind, Some(FindingKind::NPlusOneDb));
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(
            (q.start_unix_nanos, q.end_unix_nanos),
            (NOW - 2 * HOUR, NOW)
        );
        let err = finding_query(&Params::parse("kind=n_plus_two"), NOW, HOUR).unwrap_err();
        assert_eq!(err.param, "kind");
        let err = finding_query(&Params::parse("traceID=zz"), NOW, HOUR).unwrap_err();
        assert_eq!(err.param, "traceID");
    }

    #[test]
    fn the_slow_query_threshold_defaults_and_is_settable() {
        let q = database_query(&Params::parse(""), NOW, HOUR).unwrap();
        assert_eq!(q.slow_query_nanos, 100_000_000);
        let q = database_query(&Params::parse("slowQueryMs=250"), NOW, HOUR).unwrap();
        assert_eq!(q.slow_query_nanos, 250_000_000);
        let err = database_query(&Params::parse("slowQueryMs=-1"), NOW, HOUR).unwrap_err();
        assert_eq!(err.param, "slowQueryMs");
    }
}
