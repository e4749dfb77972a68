//! The APM web pages: search, trace waterfall (with each span's log records), service map,
//! services, database, errors, logs, trace integrity.
//!
//! [`router`] serves server-rendered HTML over any [`TraceReader`]; charts, the waterfall's axis
//! and the service map are SVG written here in Rust, with one small stylesheet and script
//! embedded in the binary. Every store call runs on the blocking pool, and every page does work
//! proportional to what it shows.

mod error;
mod histogram;
mod html;
mod pages;
mod params;
mod svg;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use throughline_store::TraceReader;

pub use error::PageError;
pub use pages::dashboards::Dashboard;
pub use pages::pipeline::{DestinationView, PipelineView, SamplingView};

/// Reads the collector's forwarding figures when `/pipeline` is requested.
pub type PipelineSource = Arc<dyn Fn() -> PipelineView + Send + Sync>;

use params::Params;

const STYLESHEET: &str = include_str!("../assets/apm.css");
const SCRIPT: &str = include_str!("../assets/apm.js");

/// The pages' Content-Security-Policy: scripts only from `/static/apm.js` (no inline script, no
/// `eval`), nothing loaded from elsewhere, no framing, forms only to the APM itself. Inline
/// `style` attributes stay allowed: the waterfall and the colours are positioned with them, and
/// every value in them is a number or a colour written here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

/// Where the collector's OTLP receivers listen, as the pages' empty state tells a newcomer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoints {
    /// The OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub grpc: String,
    /// The OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318`.
    pub http: String,
}

impl OtlpEndpoints {
    /// The endpoints of receivers bound to these addresses.
    pub fn from_addrs(grpc: std::net::SocketAddr, http: std::net::SocketAddr) -> Self {
        Self {
            grpc: format!("http://{grpc}"),
            http: format!("http://{http}"),
        }
    }
}

impl Default for OtlpEndpoints {
    /// The collector's default ports, 4317 and 4318 on loopback.
    fn default() -> Self {
        Self {
            grpc: "http://127.0.0.1:4317".to_owned(),
            http: "http://127.0.0.1:4318".to_owned(),
        }
    }
}

#[derive(Clone)]
struct Apm {
    reader: Arc<dyn TraceReader>,
    alerts: Option<Arc<throughline_alerts::Alerts>>,
    map_memory: Arc<pages::queue_hops::MapMemory>,
    endpoints: Arc<OtlpEndpoints>,
    dashboards: Arc<Vec<Dashboard>>,
    pipeline: Option<PipelineSource>,
}

/// The APM pages over `reader`, telling a newcomer the default OTLP ports; see [`router_with`].
pub fn router(reader: Arc<dyn TraceReader>) -> Router {
    router_with(reader, OtlpEndpoints::default())
}

/// The APM pages over `reader`: `/`, `/search`, `/trace/{traceId}`, `/map`, `/services`,
/// `/services/{service}`, `/database`, `/errors`, `/logs`, `/integrity`, `/alerts`, `/dashboards`, `/pipeline` and `/static/*`, with `endpoints` named on the empty
/// state. Routes are disjoint from the Jaeger API's `/api/*`, so the query server can merge this
/// router into its own. Every answer carries [`CONTENT_SECURITY_POLICY`] and
/// `X-Content-Type-Options: nosniff`.
pub fn router_with(reader: Arc<dyn TraceReader>, endpoints: OtlpEndpoints) -> Router {
    router_full(reader, endpoints, Vec::new(), None)
}

/// [`router_with`] plus `/dashboards` and `/dashboards/{system}` for `dashboards` (an unknown
/// system is a 404 page).
pub fn router_with_dashboards(
    reader: Arc<dyn TraceReader>,
    endpoints: OtlpEndpoints,
    dashboards: Vec<Dashboard>,
) -> Router {
    router_full(reader, endpoints, dashboards, None)
}

/// [`router_with`] plus `/alerts`, the page of the running alert rules (`None`: it says how to
/// load some).
pub fn router_with_alerts(
    reader: Arc<dyn TraceReader>,
    endpoints: OtlpEndpoints,
    alerts: Option<Arc<throughline_alerts::Alerts>>,
) -> Router {
    router_full(reader, endpoints, Vec::new(), alerts)
}

/// Every page: [`router_with`], the `dashboards` and the running `alerts`.
pub fn router_full(
    reader: Arc<dyn TraceReader>,
    endpoints: OtlpEndpoints,
    dashboards: Vec<Dashboard>,
    alerts: Option<Arc<throughline_alerts::Alerts>>,
) -> Router {
    router_with_pipeline(reader, endpoints, dashboards, alerts, None)
}

/// [`router_full`] with `/pipeline` showing the collector's export queues and tail sampling
/// from `pipeline` (`None`: the page says the collector forwards nothing).
pub fn router_with_pipeline(
    reader: Arc<dyn TraceReader>,
    endpoints: OtlpEndpoints,
    dashboards: Vec<Dashboard>,
    alerts: Option<Arc<throughline_alerts::Alerts>>,
    pipeline: Option<PipelineSource>,
) -> Router {
    Router::new()
        .route("/pipeline", get(pipeline_page))
        .route("/dashboards", get(dashboard_list))
        .route("/dashboards/{system}", get(dashboard))
        .route("/", get(|| async { Redirect::to("/search") }))
        .route("/search", get(search))
        .route("/trace", get(trace_box))
        .route("/trace/{trace_id}", get(trace))
        .route("/map", get(map))
        .route("/services", get(services))
        .route("/services/{service}", get(service))
        .route("/integrity", get(integrity))
        .route("/database", get(database))
        .route("/errors", get(errors))
        .route("/alerts", get(alerts_page))
        .route("/logs", get(logs))
        .route(
            "/static/apm.css",
            get(|| async { asset(STYLESHEET, "text/css; charset=utf-8") }),
        )
        .route(
            "/static/apm.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .fallback(|| async { PageError::NotFound("page".to_owned()) })
        .with_state(Apm {
            reader,
            alerts,
            map_memory: Arc::default(),
            endpoints: Arc::new(endpoints),
            dashboards: Arc::new(dashboards),
            pipeline,
        })
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Runs a page's store reads and rendering on the blocking pool (the store does file I/O).
async fn render<F>(apm: Apm, f: F) -> Result<Html<String>, PageError>
where
    F: FnOnce(&dyn TraceReader) -> Result<String, PageError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(apm.reader.as_ref()))
        .await
        .map_err(|_| PageError::Internal)?
        .map(Html)
}

async fn search(
    State(apm): State<Apm>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    let endpoints = Arc::clone(&apm.endpoints);
    render(apm, move |r| {
        pages::search::page(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
            &endpoints,
        )
    })
    .await
}

/// The header's trace-id box submits here; a valid id redirects to its trace page.
async fn trace_box(RawQuery(query): RawQuery) -> Result<Redirect, PageError> {
    let params = Params::parse(query.as_deref().unwrap_or_default());
    let raw = params.get("id").unwrap_or_default();
    let id = params::trace_id("id", raw)?;
    Ok(Redirect::to(&format!("/trace/{id}")))
}

async fn trace(
    State(apm): State<Apm>,
    Path(trace_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    let id = params::trace_id("traceId", &trace_id)?;
    render(apm, move |r| {
        pages::trace::page(r, id, &Params::parse(query.as_deref().unwrap_or_default()))
    })
    .await
}

async fn map(State(apm): State<Apm>, RawQuery(query): RawQuery) -> Result<Html<String>, PageError> {
    let memory = Arc::clone(&apm.map_memory);
    let endpoints = Arc::clone(&apm.endpoints);
    render(apm, move |r| {
        pages::map::page(
            r,
            &memory,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
            &endpoints,
        )
    })
    .await
}

async fn services(
    State(apm): State<Apm>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    let endpoints = Arc::clone(&apm.endpoints);
    render(apm, move |r| {
        pages::services::overview(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
            &endpoints,
        )
    })
    .await
}

async fn service(
    State(apm): State<Apm>,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    render(apm, move |r| {
        pages::services::detail(
            r,
            &service,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
        )
    })
    .await
}

async fn integrity(
    State(apm): State<Apm>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    let endpoints = Arc::clone(&apm.endpoints);
    render(apm, move |r| {
        pages::integrity::page(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
            &endpoints,
        )
    })
    .await
}

async fn database(
    State(apm): State<Apm>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    render(apm, move |r| {
        pages::database::page(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
        )
    })
    .await
}

async fn errors(
    State(apm): State<Apm>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    render(apm, move |r| {
        pages::errors::page(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
        )
    })
    .await
}

async fn alerts_page(State(apm): State<Apm>) -> Result<Html<String>, PageError> {
    render(apm.clone(), move |_| {
        Ok(pages::alerts::page(apm.alerts.as_deref()))
    })
    .await
}

async fn pipeline_page(State(apm): State<Apm>) -> Result<Html<String>, PageError> {
    // The figures take locks the forwarders also take: off the runtime's workers.
    render(apm.clone(), move |_| {
        let view = apm.pipeline.as_ref().map(|read| read());
        Ok(pages::pipeline::page(view.as_ref()))
    })
    .await
}

async fn dashboard_list(State(apm): State<Apm>) -> Html<String> {
    Html(pages::dashboards::list(&apm.dashboards))
}

async fn dashboard(
    State(apm): State<Apm>,
    Path(system): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    let dashboards = Arc::clone(&apm.dashboards);
    render(apm, move |r| {
        pages::dashboards::page(
            r,
            &dashboards,
            &system,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
        )
    })
    .await
}

async fn logs(
    State(apm): State<Apm>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    render(apm, move |r| {
        pages::logs::page(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
        )
    })
    .await
}
