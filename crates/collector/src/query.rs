//! The Jaeger-compatible query API (the endpoints Grafana's Jaeger data source and the Jaeger UI
//! call), `/metrics`, and throughline's own `/api/throughline/integrity`.
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
use throughline_store::{
    IntegrityProblem, SpanKind, StoreError, StoredSpan, TraceId, TraceIntegrity, TraceQuery,
    TraceReader, TraceSummary,
};

use crate::ingest::Ingest;
use crate::jaeger;
use crate::params::{self, ParamError};
use crate::prometheus;

/// Jaeger's default number of traces per search.
const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` honoured.
const MAX_LIMIT: usize = 1500;
/// Jaeger's default search window.
const DEFAULT_LOOKBACK_NANOS: u64 = 3600 * 1_000_000_000;
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
            .route("/metrics", get(metrics))
            .with_state(state);
        match self.pages {
            Some(pages) => api.merge(pages),
            None => api,
        }
    }
}

/// Jaeger's envelope.
#[derive(Debug, Serialize)]
struct Envelope<T: Serialize> {
    data: T,
    total: usize,
    limit: usize,
    offset: usize,
    errors: Option<Vec<ApiErrorBody>>,
}

#[derive(Debug, Serialize)]
struct ApiErrorBody {
    code: u16,
    msg: String,
}

fn ok<T: Serialize>(data: Vec<T>) -> Response {
    let total = data.len();
    axum::Json(Envelope {
        data,
        total,
        limit: 0,
        offset: 0,
        errors: None,
    })
    .into_response()
}

/// An answer that is not data.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("trace {0} not found")]
    TraceNotFound(String),
    #[error("the store could not answer: {0}")]
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
            tracing::warn!(error = %self, "query failed");
        }
        let body = Envelope::<Option<()>> {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![ApiErrorBody {
                code: status.as_u16(),
                msg: self.to_string(),
            }]),
        };
        (status, axum::Json(body)).into_response()
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

/// Query parameters as Jaeger sends them: repeated keys allowed (`traceID=a&traceID=b`).
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>) -> Self {
        let raw = raw.unwrap_or_default();
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_component(k), decode_component(v))
            })
            .collect();
        Self(pairs)
    }

    /// The last non-empty value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-decoding with `+` as space, as HTML forms and the Jaeger UI encode queries.
fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
            {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
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

#[derive(Debug, Serialize)]
struct OperationJson {
    name: String,
    #[serde(rename = "spanKind")]
    span_kind: &'static str,
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
    let q = Query::parse(raw);
    let service = q
        .get("service")
        .ok_or_else(|| ParamError::new("service", "is required"))?
        .to_owned();
    let kind = q.get("spanKind").map(parse_span_kind).transpose()?;
    let ops = read(&state.reader, move |r| r.operations(&service)).await?;
    let data: Vec<OperationJson> = ops
        .into_iter()
        .filter(|o| kind.is_none_or(|k| o.span_kind == k))
        .map(|o| OperationJson {
            name: o.name,
            span_kind: jaeger::span_kind_name(o.span_kind),
        })
        .collect();
    Ok(ok(data))
}

/// The search parameters shared by `/api/traces` and `/api/throughline/integrity`.
fn trace_query(q: &Query, require_service: bool) -> Result<TraceQuery, ParamError> {
    let service = q.get("service").map(str::to_owned);
    if require_service && service.is_none() {
        return Err(ParamError::new("service", "is required"));
    }
    let end = match q.get("end") {
        Some(v) => params::unsigned("end", v)?.saturating_mul(1000),
        None => now_nanos(),
    };
    let start = match (q.get("start"), q.get("lookback")) {
        (Some(v), _) => params::unsigned("start", v)?.saturating_mul(1000),
        (None, Some(lb)) if lb != "custom" => {
            end.saturating_sub(params::go_duration_nanos("lookback", lb)?)
        }
        _ => end.saturating_sub(DEFAULT_LOOKBACK_NANOS),
    };
    if start > end {
        return Err(ParamError::new("start", "is after end"));
    }
    let mut tags = Vec::new();
    for t in q.all("tags") {
        tags.extend(params::tags_json("tags", t)?);
    }
    for t in q.all("tag") {
        tags.push(params::tag_pair("tag", t)?);
    }
    // Jaeger marks failed spans with the tag error=true; here that is the span status.
    let errors_only = tags
        .iter()
        .any(|(k, v)| k == jaeger::ERROR_TAG && v == "true");
    tags.retain(|(k, _)| k != jaeger::ERROR_TAG);
    let min = q
        .get("minDuration")
        .map(|v| params::go_duration_nanos("minDuration", v))
        .transpose()?;
    let max = q
        .get("maxDuration")
        .map(|v| params::go_duration_nanos("maxDuration", v))
        .transpose()?;
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(ParamError::new(
            "minDuration",
            "is greater than maxDuration",
        ));
    }
    let limit = match q.get("limit") {
        Some(v) => (params::unsigned("limit", v)? as usize).min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
    Ok(TraceQuery {
        service,
        operation: q.get("operation").map(str::to_owned),
        tags,
        start_unix_nanos: start,
        end_unix_nanos: end,
        min_duration_nanos: min,
        max_duration_nanos: max,
        errors_only,
        incomplete_only: q.get("incompleteOnly") == Some("true"),
        limit,
    })
}

fn trace_ids(q: &Query) -> Result<Vec<TraceId>, ParamError> {
    q.all("traceID")
        .map(|id| {
            id.parse().map_err(|e: throughline_store::IdParseError| {
                ParamError::new("traceID", e.to_string())
            })
        })
        .collect()
}

async fn search_traces(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw);
    let ids = trace_ids(&q)?;
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
    let traces = read(&state.reader, move |r| {
        ids.into_iter()
            .map(|id| r.trace(id))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let data: Vec<jaeger::Trace> = traces
        .iter()
        .filter_map(|spans| jaeger::trace(spans))
        .collect();
    Ok(ok(data))
}

async fn get_trace(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id: TraceId = raw_id
        .parse()
        .map_err(|e: throughline_store::IdParseError| ParamError::new("traceID", e.to_string()))?;
    let spans = read(&state.reader, move |r| r.trace(id)).await?;
    let trace = jaeger::trace(&spans).ok_or(ApiError::TraceNotFound(id.to_string()))?;
    Ok(ok(vec![trace]))
}

#[derive(Debug, Serialize)]
struct DependencyLink {
    parent: String,
    child: String,
    #[serde(rename = "callCount")]
    call_count: u64,
}

async fn dependencies(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw);
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

/// One trace's integrity, as `/api/throughline/integrity` reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct IntegrityReport {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// `whole`, `settling` or `incomplete`.
    pub integrity: String,
    /// Every reason a trace is incomplete, in words.
    pub problems: Vec<String>,
    #[serde(rename = "rootService")]
    pub root_service: Option<String>,
    #[serde(rename = "rootName")]
    pub root_name: Option<String>,
    pub services: Vec<String>,
    #[serde(rename = "spanCount")]
    pub span_count: u64,
    /// Microseconds since the epoch.
    #[serde(rename = "startTime")]
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    #[serde(rename = "hasError")]
    pub has_error: bool,
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

impl From<&TraceSummary> for IntegrityReport {
    fn from(s: &TraceSummary) -> Self {
        let (integrity, problems) = match &s.integrity {
            TraceIntegrity::Whole => ("whole", Vec::new()),
            TraceIntegrity::Settling => ("settling", Vec::new()),
            TraceIntegrity::Incomplete(problems) => (
                "incomplete",
                problems.iter().map(describe_problem).collect(),
            ),
        };
        Self {
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
}

/// `/api/throughline/integrity`: the same parameters as `/api/traces` (service optional), plus
/// `traceID` (repeatable) and `incompleteOnly=true`. Data: [`IntegrityReport`]s.
async fn integrity(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw);
    let ids = trace_ids(&q)?;
    let data: Vec<IntegrityReport> = if ids.is_empty() {
        let query = trace_query(&q, false)?;
        let found = read(&state.reader, move |r| r.find_traces(&query)).await?;
        found.iter().map(IntegrityReport::from).collect()
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
    IntegrityReport::from(&throughline_store::summarize_trace(trace_id, spans, false))
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

    fn q(s: &str) -> Query {
        Query::parse(Some(s.to_owned()))
    }

    #[test]
    fn query_decoding_handles_percent_and_plus() {
        let query = q("tags=%7B%22a%22%3A%22b+c%22%7D&service=x");
        assert_eq!(query.get("tags"), Some(r#"{"a":"b c"}"#));
        assert_eq!(query.get("service"), Some("x"));
        assert_eq!(decode_component("100%"), "100%");
    }

    #[test]
    fn trace_query_reads_jaeger_formats() {
        let tq = trace_query(
            &q("service=a&start=1000&end=5000&minDuration=1.5ms&maxDuration=1s&limit=7&tags=%7B%22error%22%3A%22true%22%2C%22k%22%3A%22v%22%7D"),
            true,
        )
        .expect("valid");
        assert_eq!(tq.start_unix_nanos, 1_000_000);
        assert_eq!(tq.end_unix_nanos, 5_000_000);
        assert_eq!(tq.min_duration_nanos, Some(1_500_000));
        assert_eq!(tq.max_duration_nanos, Some(1_000_000_000));
        assert_eq!(tq.limit, 7);
        assert!(tq.errors_only);
        assert_eq!(tq.tags, vec![("k".to_owned(), "v".to_owned())]);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, param) in [
            ("end=1", "service"),
            ("service=a&start=x", "start"),
            ("service=a&minDuration=fast", "minDuration"),
            ("service=a&lookback=yesterday", "lookback"),
            ("service=a&tags=nope", "tags"),
            ("service=a&limit=-1", "limit"),
        ] {
            let err = trace_query(&q(query), true).expect_err(query);
            assert_eq!(err.param, param, "{query}");
        }
    }
}
