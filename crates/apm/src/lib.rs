//! The APM web pages: search, trace waterfall, service map, services, trace integrity.
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
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use throughline_store::TraceReader;

pub use error::PageError;
use params::Params;

const STYLESHEET: &str = include_str!("../assets/apm.css");
const SCRIPT: &str = include_str!("../assets/apm.js");

#[derive(Clone)]
struct Apm {
    reader: Arc<dyn TraceReader>,
    map_memory: Arc<pages::queue_hops::MapMemory>,
}

/// The APM pages over `reader`: `/`, `/search`, `/trace/{traceId}`, `/map`, `/services`,
/// `/services/{service}`, `/integrity` and `/static/*`. Routes are disjoint from the Jaeger API's
/// `/api/*`, so the query server can merge this router into its own.
pub fn router(reader: Arc<dyn TraceReader>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/search") }))
        .route("/search", get(search))
        .route("/trace", get(trace_box))
        .route("/trace/{trace_id}", get(trace))
        .route("/map", get(map))
        .route("/services", get(services))
        .route("/services/{service}", get(service))
        .route("/integrity", get(integrity))
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
            map_memory: Arc::default(),
        })
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
    render(apm, move |r| {
        pages::search::page(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
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
    render(apm, move |r| {
        pages::map::page(
            r,
            &memory,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
        )
    })
    .await
}

async fn services(
    State(apm): State<Apm>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    render(apm, move |r| {
        pages::services::overview(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
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
    render(apm, move |r| {
        pages::integrity::page(
            r,
            &Params::parse(query.as_deref().unwrap_or_default()),
            now_unix_nanos(),
        )
    })
    .await
}
