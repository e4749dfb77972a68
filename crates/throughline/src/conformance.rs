//! `throughline conformance trace-context`: a service that speaks the official W3C Trace Context
//! test suite's protocol, propagating with our strict `TraceContextPropagator`.
//!
//! The harness sends `POST /test` with a JSON list of `{"url": …, "arguments": […]}`. For each
//! entry, in order, the service sends `POST url` with `arguments` as the JSON body and the
//! incoming trace context propagated, with a new span id per call (a pass-through participant).
//! An invalid or absent `traceparent` starts a new trace (random ids, the random flag set).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry::{Context, SpanId, TraceId};
use serde::Deserialize;
use throughline_carriers::{HeaderExtractor, HeaderInjector};
use throughline_propagation::{RANDOM_TRACE_FLAG, TraceContextPropagator};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Requests larger than this are refused (413).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A whole `/test` request, callbacks included, must finish within this.
const REQUEST_TIMEOUT_SECS: u64 = 30;
/// Each callback must answer within this.
const CALLBACK_TIMEOUT_SECS: u64 = 10;

/// The conformance suites the service can speak.
#[derive(Debug, clap::Subcommand)]
pub enum Suite {
    /// Serve the W3C Trace Context test suite's protocol (`POST /test`).
    TraceContext {
        /// Address to listen on (keep it on loopback: the service POSTs to any URL it is given).
        #[arg(long, default_value = "127.0.0.1:5000")]
        listen: SocketAddr,
    },
}

/// Runs the chosen conformance service until interrupted.
pub fn run(suite: Suite) -> anyhow::Result<()> {
    let Suite::TraceContext { listen } = suite;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(serve(listen))
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}: cannot bind"))?;
    println!("trace-context conformance service listening on http://{listen}/test");
    axum::serve(listener, router()?)
        .with_graceful_shutdown(async {
            // An error here means no signal handler could be installed: run until killed.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the conformance service")
}

#[derive(Debug, Clone)]
struct AppState {
    client: reqwest::Client,
    propagator: TraceContextPropagator,
}

/// The service's routes, with body limit and timeout.
pub fn router() -> anyhow::Result<Router> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(CALLBACK_TIMEOUT_SECS))
        .build()
        .context("building the HTTP client")?;
    let state = AppState {
        client,
        propagator: TraceContextPropagator::new(),
    };
    Ok(Router::new()
        .route("/test", post(test))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(REQUEST_TIMEOUT_SECS),
        ))
        .with_state(state))
}

/// One entry of the harness's list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    url: String,
    arguments: Vec<serde_json::Value>,
}

/// Why a `/test` request could not be served.
#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error("request body is not a JSON list of {{\"url\", \"arguments\"}}")]
    Body(#[from] serde_json::Error),
    #[error("url {0:?} is not an http:// URL")]
    Url(String),
    #[error("callback to {url} failed")]
    Callback { url: String, source: reqwest::Error },
}

impl IntoResponse for TestError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Body(_) | Self::Url(_) => StatusCode::BAD_REQUEST,
            Self::Callback { .. } => StatusCode::BAD_GATEWAY,
        };
        let message = throughline_service_kit::ErrorChain(&self).to_string();
        (status, message).into_response()
    }
}

fn random_nonzero_u64() -> u64 {
    loop {
        let value: u64 = rand::random();
        if value != 0 {
            return value;
        }
    }
}

/// The context for one outgoing call: the incoming trace with a new span id, or a new trace.
fn child_context(incoming: &Context) -> Context {
    let span = incoming.span();
    let parent = span.span_context();
    let span_id = SpanId::from(random_nonzero_u64());
    let child = if parent.is_valid() {
        SpanContext::new(
            parent.trace_id(),
            span_id,
            parent.trace_flags(),
            false,
            parent.trace_state().clone(),
        )
    } else {
        let trace_id = TraceId::from(
            (u128::from(random_nonzero_u64()) << 64) | u128::from(rand::random::<u64>()),
        );
        SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED | RANDOM_TRACE_FLAG,
            false,
            Default::default(),
        )
    };
    // Built on `incoming` so a level 2 tracestate carried beside the span context survives.
    incoming.with_remote_span_context(child)
}

async fn test(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, TestError> {
    let actions: Vec<Action> = serde_json::from_slice(&body)?;
    for action in &actions {
        let url = reqwest::Url::parse(&action.url)
            .ok()
            .filter(|url| url.scheme() == "http")
            .ok_or_else(|| TestError::Url(action.url.clone()))?;
        let incoming = state
            .propagator
            .extract_with_context(&Context::new(), &HeaderExtractor(&headers));
        let cx = child_context(&incoming);
        let mut outgoing = HeaderMap::new();
        state
            .propagator
            .inject_context(&cx, &mut HeaderInjector(&mut outgoing));
        state
            .client
            .post(url)
            .headers(outgoing)
            .json(&action.arguments)
            .send()
            .await
            .map_err(|source| TestError::Callback {
                url: action.url.clone(),
                source,
            })?;
    }
    Ok(StatusCode::OK)
}
