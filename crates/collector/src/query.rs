//! The Jaeger-compatible query API (the endpoints Grafana's Jaeger data source and the Jaeger UI
//! call), `/metrics`, and throughline's own `/api/throughline/integrity`, `/findings`,
//! `/database`, `/errors`, `/logs` and `/metrics` (stored OTLP metric series, `/metrics/names`).
//!
//! Every answer uses Jaeger's envelope `{"data", "total", "limit", "offset", "errors"}`; errors
//! carry `{"code", "msg"}` and the matching HTTP status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use throughline_jaeger::analysis::{self, DatabaseAnswer, ErrorGroupRow, FindingReport};
use throughline_jaeger::logs::LogRow;
use throughline_jaeger::params::{self, ParamError, Params, SearchDefaults};
use throughline_jaeger::{DependencyLink, Envelope, IntegrityReport, Operation, otlp};
use throughline_store::{
    IntegrityProblem, SpanKind, StoreError, StoredSpan, TraceId, TraceIntegrity, TraceQuery,
    TraceReader, TraceSummary,
};

use crate::ingest::Ingest;
use crate::prometheus;

/// The search defaults of `/api/traces` and `/api/throughline/integrity`: Jaeger's default of 100
/// traces over the last hour, and at most 1,500 traces per call (the Jaeger UI's own cap).
pub const SEARCH_DEFAULTS: SearchDefaults = SearchDefaults {
    limit: 100,
    max_limit: 1500,
    lookback_nanos: 3600 * 1_000_000_000,
};
/// The most spans one `/api/traces` search returns (about 30 MB of JSON): traces beyond it are
/// left out, and the answer says so.
pub const MAX_SEARCH_SPANS: usize = 20_000;
/// The header that says a search was cut at [`MAX_SEARCH_SPANS`].
pub const TRUNCATED_HEADER: &str = "x-throughline-truncated";

/// Jaeger's default dependencies window (24 h), in milliseconds.
const DEFAULT_DEPENDENCY_LOOKBACK_MS: u64 = 24 * 3600 * 1000;

/// Builds the query server's router.
#[derive(Clone)]
pub struct QueryServer {
    reader: Arc<dyn TraceReader>,
    ingest: Option<Ingest>,
    pages: Option<Router>,
}

impl std::fmt::Debug for QueryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryServer")
            .field("ingest", &self.ingest)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct AppState {
    reader: Arc<dyn TraceReader>,
    ingest: Option<Ingest>,
}

impl QueryServer {
    pub fn new(reader: Arc<dyn TraceReader>) -> Self {
        Self {
            reader,
            ingest: None,
            pages: None,
        }
    }

    /// Adds the receivers' own figures (received, refused, in flight) to `/metrics`.
    pub fn with_ingest(mut self, ingest: Ingest) -> Self {
        self.ingest = Some(ingest);
        self
    }

    /// Serves another router (the APM pages) at the same address; the API routes win on clashes.
    pub fn with_pages(mut self, pages: Router) -> Self {
        self.pages = Some(pages);
        self
    }

    pub fn router(self) -> Router {
        let state = AppState {
            reader: self.reader,
            ingest: self.ingest,
        };
        let api = Router::new()
            .route("/api/services", get(services))
            .route(
                "/api/services/{service}/operations",
                get(service_operations),
            )
            .route("/api/operations", get(operations))
            .route("/api/traces", get(search_traces))
            .route("/api/traces/{trace_id}", get(get_trace))
            .route("/api/dependencies", get(dependencies))
            .route("/api/throughline/integrity", get(integrity))
            .route("/api/throughline/findings", get(findings))
            .route("/api/throughline/database", get(database))
            .route("/api/throughline/errors", get(errors))
            .route("/api/throughline/metrics", get(metric_series))
            .route("/api/throughline/metrics/names", get(metric_names))
            .route("/api/throughline/logs", get(logs))
            .route("/metrics", get(metrics))
            .with_state(state);
        match self.pages {
            Some(pages) => api.merge(pages),
            None => api,
        }
    }
}

fn ok<T: Serialize>(data: Vec<T>) -> Response {
    axum::Json(Envelope::list(data)).into_response()
}

/// An answer that is not data.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("trace {0} not found")]
    TraceNotFound(String),
    #[error("the store could not answer")]
    Store(#[from] StoreError),
    #[error("the store reader stopped")]
    ReaderGone,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Param(_) => StatusCode::BAD_REQUEST,
            ApiError::Store(StoreError::InvalidQuery(_)) => StatusCode::BAD_REQUEST,
            ApiError::TraceNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::ReaderGone => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %Causes(&self), "query failed");
        }
        // A refused query says why; other store failures stay in the log.
        let msg = match &self {
            ApiError::Store(invalid @ StoreError::InvalidQuery(_)) => invalid.to_string(),
            other => other.to_string(),
        };
        let body = Envelope::<()>::error(status.as_u16(), msg);
        (status, axum::Json(body)).into_response()
    }
}

/// An error and each of its causes, once each: `the store could not answer: store i/o failed: …`.
struct Causes<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// Runs a store read on the blocking pool.
async fn read<T: Send + 'static>(
    reader: &Arc<dyn TraceReader>,
    f: impl FnOnce(&dyn TraceReader) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let reader = Arc::clone(reader);
    tokio::task::spawn_blocking(move || f(reader.as_ref()))
        .await
        .map_err(|_| ApiError::ReaderGone)?
        .map_err(ApiError::from)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn services(State(state): State<AppState>) -> Result<Response, ApiError> {
    let services = read(&state.reader, |r| r.services()).await?;
    Ok(ok(services))
}

async fn service_operations(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Response, ApiError> {
    let ops = read(&state.reader, move |r| r.operations(&service)).await?;
    let mut names: Vec<String> = ops.into_iter().map(|o| o.name).collect();
    names.sort();
    names.dedup();
    Ok(ok(names))
}

fn parse_span_kind(input: &str) -> Result<SpanKind, ParamError> {
    Ok(match input.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        "unspecified" => SpanKind::Unspecified,
        _ => {
            return Err(ParamError::new(
                "spanKind",
                format!("{input:?} is not one of server, client, producer, consumer, internal"),
            ));
        }
    })
}

async fn operations(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let service = q
        .get("service")
        .ok_or_else(|| ParamError::new("service", "is required"))?
        .to_owned();
    let kind = q.get("spanKind").map(parse_span_kind).transpose()?;
    let ops = read(&state.reader, move |r| r.operations(&service)).await?;
    let data: Vec<Operation> = ops
        .into_iter()
        .filter(|o| kind.is_none_or(|k| o.span_kind == k))
        .map(|o| Operation {
            name: o.name,
            span_kind: otlp::span_kind_name(o.span_kind).to_owned(),
        })
        .collect();
    Ok(ok(data))
}

/// The search parameters shared by `/api/traces` and `/api/throughline/integrity`.
fn trace_query(q: &Params, require_service: bool) -> Result<TraceQuery, ParamError> {
    if require_service && q.get("service").is_none() {
        return Err(ParamError::new("service", "is required"));
    }
    params::trace_query(q, now_nanos(), SEARCH_DEFAULTS)
}

async fn search_traces(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let ids = params::trace_ids(&q, "traceID")?;
    let ids = if ids.is_empty() {
        let query = trace_query(&q, true)?;
        read(&state.reader, move |r| r.find_traces(&query))
            .await?
            .into_iter()
            .map(|s| s.trace_id)
            .collect()
    } else {
        ids
    };
    let found = ids.len();
    let (traces, cut) = read(&state.reader, move |r| {
        let mut traces = Vec::new();
        let mut spans = 0;
        for id in ids {
            let trace = r.trace(id)?;
            spans += trace.len();
            traces.push(trace);
            if spans >= MAX_SEARCH_SPANS && traces.len() < found {
                return Ok((traces, true));
            }
        }
        Ok((traces, false))
    })
    .await?;
    let mut data: Vec<throughline_jaeger::Trace> = traces
        .iter()
        .filter_map(|spans| otlp::trace(spans))
        .collect();
    let returned = data.len();
    if cut && let Some(last) = data.last_mut() {
        // Said where Jaeger's clients show it: a warning on the trace, and in a header.
        let warning = format!(
            "search cut at {MAX_SEARCH_SPANS} spans: {returned} of {found} traces returned; \
             narrow the search or lower limit"
        );
        last.warnings
            .get_or_insert_with(Vec::new)
            .push(warning.clone());
        let mut response = ok(data);
        if let Ok(value) = HeaderValue::from_str(&warning) {
            response.headers_mut().insert(TRUNCATED_HEADER, value);
        }
        return Ok(response);
    }
    Ok(ok(data))
}

async fn get_trace(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = params::trace_id("traceID", &raw_id)?;
    let spans = read(&state.reader, move |r| r.trace(id)).await?;
    let trace = otlp::trace(&spans).ok_or(ApiError::TraceNotFound(id.to_string()))?;
    Ok(ok(vec![trace]))
}

async fn dependencies(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let end_ms = match q.get("endTs") {
        Some(v) => params::unsigned("endTs", v)?,
        None => now_nanos() / 1_000_000,
    };
    let lookback_ms = match q.get("lookback") {
        Some(v) => params::unsigned("lookback", v)?,
        None => DEFAULT_DEPENDENCY_LOOKBACK_MS,
    };
    let end = end_ms.saturating_mul(1_000_000);
    let start = end.saturating_sub(lookback_ms.saturating_mul(1_000_000));
    let edges = read(&state.reader, move |r| r.dependencies(start, end)).await?;
    let mut merged: HashMap<(String, String), u64> = HashMap::new();
    for e in edges {
        *merged.entry((e.client, e.server)).or_default() += e.calls;
    }
    let mut data: Vec<DependencyLink> = merged
        .into_iter()
        .map(|((parent, child), call_count)| DependencyLink {
            parent,
            child,
            call_count,
        })
        .collect();
    data.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
    Ok(ok(data))
}

/// A problem in words: `missing root span`, `3 orphan spans; missing parents: a, b`.
pub fn describe_problem(problem: &IntegrityProblem) -> String {
    match problem {
        IntegrityProblem::MissingRoot => "missing root span".to_owned(),
        IntegrityProblem::OrphanSpans {
            count,
            missing_parents,
        } => format!(
            "{count} orphan span(s); missing parent span(s): {}",
            missing_parents
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The report of a summarized trace.
pub fn integrity_report(s: &TraceSummary) -> IntegrityReport {
    let (integrity, problems) = match &s.integrity {
        TraceIntegrity::Whole => ("whole", Vec::new()),
        TraceIntegrity::Settling => ("settling", Vec::new()),
        TraceIntegrity::Incomplete(problems) => (
            "incomplete",
            problems.iter().map(describe_problem).collect(),
        ),
    };
    IntegrityReport {
        trace_id: s.trace_id.to_string(),
        integrity: integrity.to_owned(),
        problems,
        root_service: s.root_service.clone(),
        root_name: s.root_name.clone(),
        services: s.services.clone(),
        span_count: s.span_count,
        start_time: s.start_unix_nanos / 1000,
        duration: s.duration_nanos / 1000,
        has_error: s.has_error,
    }
}

/// `/api/throughline/integrity`: the same parameters as `/api/traces` (service optional), plus
/// `traceID` (repeatable) and `incompleteOnly=true`. Data: [`IntegrityReport`]s.
async fn integrity(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let ids = params::trace_ids(&q, "traceID")?;
    let data: Vec<IntegrityReport> = if ids.is_empty() {
        let query = trace_query(&q, false)?;
        let found = read(&state.reader, move |r| r.find_traces(&query)).await?;
        found.iter().map(integrity_report).collect()
    } else {
        let spans = read(&state.reader, move |r| {
            ids.into_iter()
                .map(|id| r.trace(id).map(|s| (id, s)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        spans
            .iter()
            .map(|(id, spans)| report_by_id(*id, spans))
            .collect()
    };
    Ok(ok(data))
}

/// The integrity of a trace asked for by id, judged now from its spans with the store's own rules
/// (no settle time: whoever names a trace wants the verdict on what has arrived).
fn report_by_id(trace_id: TraceId, spans: &[StoredSpan]) -> IntegrityReport {
    if spans.is_empty() {
        return IntegrityReport {
            trace_id: trace_id.to_string(),
            integrity: "incomplete".to_owned(),
            problems: vec!["no spans stored for this trace".to_owned()],
            root_service: None,
            root_name: None,
            services: Vec::new(),
            span_count: 0,
            start_time: 0,
            duration: 0,
            has_error: false,
        };
    }
    integrity_report(&throughline_store::summarize_trace(trace_id, spans, false))
}

/// `/api/throughline/findings?service=&kind=&traceID=&lookback=` (or `start`/`end`): data are
/// [`FindingReport`]s, most recent first.
async fn findings(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let query = analysis::finding_query(&q, now_nanos(), SEARCH_DEFAULTS.lookback_nanos)?;
    let found = read(&state.reader, move |r| r.findings(&query)).await?;
    Ok(ok(found.iter().map(FindingReport::from).collect()))
}

/// `/api/throughline/database?service=&slowQueryMs=&lookback=`: data is one [`DatabaseAnswer`].
async fn database(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let query = analysis::database_query(&q, now_nanos(), SEARCH_DEFAULTS.lookback_nanos)?;
    let asked = query.clone();
    let report = read(&state.reader, move |r| r.database(&query)).await?;
    Ok(ok(vec![DatabaseAnswer::new(&report, &asked)]))
}

/// `/api/throughline/errors?service=&lookback=`: data are [`ErrorGroupRow`]s, most errors first.
async fn errors(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let query = analysis::error_query(&q, now_nanos(), SEARCH_DEFAULTS.lookback_nanos)?;
    let groups = read(&state.reader, move |r| r.errors(&query)).await?;
    Ok(ok(groups.iter().map(ErrorGroupRow::from).collect()))
}

/// `/api/throughline/metrics?name=&service=&attr.K=V&lookback=&step=`: data are the store's
/// [`throughline_store::MetricSeries`] of that metric, one per service and attribute set.
async fn metric_series(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let query = analysis::metric_query(&q, now_nanos(), SEARCH_DEFAULTS.lookback_nanos)?;
    let series = read(&state.reader, move |r| r.metric_series(&query)).await?;
    Ok(ok(series))
}

/// `/api/throughline/metrics/names?service=`: data are the stored metric names, sorted.
async fn metric_names(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let service = q.get("service").map(str::to_owned);
    let names = read(&state.reader, move |r| r.metric_names(service.as_deref())).await?;
    Ok(ok(names))
}

/// `/api/throughline/logs?service=&severity=&q=&traceID=&spanID=&lookback=&limit=`: data are
/// [`LogRow`]s, newest first; a bad parameter is a 400 naming it.
async fn logs(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(raw.as_deref().unwrap_or_default());
    let query =
        throughline_jaeger::logs::log_query(&q, now_nanos(), SEARCH_DEFAULTS.lookback_nanos)?;
    let found = read(&state.reader, move |r| r.search_logs(&query)).await?;
    Ok(ok(found.iter().map(LogRow::from).collect()))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (series, edges, stats) = read(&state.reader, |r| {
        Ok((r.span_metrics()?, r.dependencies(0, u64::MAX)?, r.stats()?))
    })
    .await?;
    let mut out = String::with_capacity(4096);
    prometheus::span_metrics(&mut out, &series);
    prometheus::service_graph(&mut out, &edges);
    if let Some(ingest) = &state.ingest {
        prometheus::own_figures(&mut out, ingest.metrics(), ingest.inflight_bytes(), &stats);
        if ingest.processors().redaction.is_some() {
            ingest.processors().render_metrics(&mut out);
        }
        if let Some(exporter) = ingest.exporter() {
            exporter.render_metrics(&mut out);
        }
        if let Some(sampler) = ingest.tail_sampling() {
            sampler.render_metrics(&mut out);
        }
    } else {
        prometheus::own_figures(&mut out, &Default::default(), 0, &stats);
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use throughline_store::{Resource, Span};

    fn stored(id: u8, parent: Option<u8>) -> StoredSpan {
        StoredSpan {
            service_name: format!("s{id}"),
            resource: Resource::default(),
            scope: None,
            span: Span {
                trace_id: vec![1; 16],
                span_id: vec![id; 8],
                parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn by_id_whole_when_root_and_all_parents_present() {
        let r = report_by_id(TraceId([1; 16]), &[stored(1, None), stored(2, Some(1))]);
        assert_eq!(r.integrity, "whole");
        assert_eq!(r.root_service.as_deref(), Some("s1"));
    }

    #[test]
    fn by_id_orphans_and_missing_root_are_reported() {
        let r = report_by_id(TraceId([1; 16]), &[stored(2, Some(1)), stored(3, Some(1))]);
        assert_eq!(r.integrity, "incomplete");
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(
            r.problems[1].contains("0101010101010101"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn by_id_unknown_trace_is_incomplete() {
        let r = report_by_id(TraceId([1; 16]), &[]);
        assert_eq!(r.integrity, "incomplete");
        assert_eq!(
            r.problems,
            vec!["no spans stored for this trace".to_owned()]
        );
    }

    use super::*;

    fn q(s: &str) -> Params {
        Params::parse(s)
    }

    #[test]
    fn trace_query_requires_a_service_on_api_traces() {
        let err = trace_query(&q("end=1"), true).expect_err("no service");
        assert_eq!(err.param, "service");
        assert!(trace_query(&q("end=1"), false).is_ok());
    }

    #[test]
    fn store_failures_print_each_cause_once() {
        let err = ApiError::from(StoreError::from(std::io::Error::other("disk on fire")));
        let text = Causes(&err).to_string();
        assert_eq!(
            text,
            "the store could not answer: store i/o failed: disk on fire"
        );
    }

    #[test]
    fn limit_over_the_cap_is_refused_naming_it() {
        let err = trace_query(&q("service=a&limit=100000"), true).expect_err("over the cap");
        assert_eq!(err.param, "limit");
        assert!(err.to_string().contains("1500"), "{err}");
        assert_eq!(
            trace_query(&q("service=a&limit=0"), true).map(|t| t.limit),
            Ok(100)
        );
    }
}
