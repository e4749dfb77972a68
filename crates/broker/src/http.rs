//! The HTTP front: one POST route that dispatches on `X-Amz-Target` to SQS or EventBridge, and
//! `GET /metrics`. Served by the service kit's `serve_http`, whose request deadline and body
//! limit (answered in AWS's `__type` shape) the broker configures here.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, header};
use std::sync::Arc;
use std::time::Duration;
use throughline_service_kit::BodyLimit;

use crate::error::ApiError;
use crate::state::{Shared, now_ms};
use crate::{events, metrics, sqs};

/// Largest request body accepted: a batch of ten 256 KiB messages, JSON-escaped, fits.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Longest a request may take; long polls wait at most 20 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .fallback(post(dispatch))
        .route("/", post(dispatch))
        .with_state(shared)
}

/// The body limit, answered `413` with `{"__type": "RequestEntityTooLarge", "message"}`.
pub fn body_limit() -> BodyLimit {
    BodyLimit::with_rejection(MAX_BODY_BYTES, |max| {
        ApiError::request_too_large(max).into_response()
    })
}

async fn metrics_page(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let text = metrics::render(&shared.lock(), &shared.writer.stats, now_ms());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

fn json_response(content_type: &'static str, value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        value.to_string(),
    )
        .into_response()
}

async fn dispatch(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match route(&shared, &headers, &body).await {
        Ok(response) => response,
        Err(err) => {
            if err.status.is_server_error() {
                tracing::error!(error = %err, "request failed inside the broker");
            }
            err.into_response()
        }
    }
}

async fn route(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::malformed(
                "MissingAction",
                "header X-Amz-Target is missing or not ASCII",
            )
        })?;
    check_authorization(headers)?;
    check_content_type(headers)?;
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    if let Some(op) = target.strip_prefix("AmazonSQS.") {
        let ctx = sqs::RequestContext {
            base_url: base_url(headers),
        };
        let value = sqs::handle(shared, &ctx, op, body).await?;
        Ok(json_response("application/x-amz-json-1.0", &value))
    } else if let Some(op) = target.strip_prefix("AWSEvents.") {
        let value = events::handle(shared, op, body).await?;
        Ok(json_response("application/x-amz-json-1.1", &value))
    } else {
        Err(ApiError::malformed(
            "UnknownOperationException",
            format!("header X-Amz-Target {target:?} names neither AmazonSQS nor AWSEvents"),
        ))
    }
}

/// Signatures are not verified (any credentials work), but a present `Authorization` header must
/// look like SigV4, so a client that is misconfigured in a way AWS would reject hears about it.
fn check_authorization(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let well_formed = text.starts_with("AWS4-HMAC-SHA256 ")
        && text.contains("Credential=")
        && text.contains("SignedHeaders=")
        && text.contains("Signature=");
    if well_formed {
        Ok(())
    } else {
        Err(ApiError::malformed(
            "IncompleteSignature",
            "header Authorization is not a well-formed AWS4-HMAC-SHA256 signature",
        ))
    }
}

/// The AWS JSON protocols send `application/x-amz-json-1.0` (SQS) or `-1.1` (EventBridge).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    if text.starts_with("application/x-amz-json") || text.starts_with("application/json") {
        Ok(())
    } else {
        Err(ApiError::malformed(
            "UnsupportedMediaType",
            format!("header Content-Type {text:?}: expected application/x-amz-json-1.0 or -1.1"),
        ))
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}")
}
