//! The API's serving settings for the service kit's `serve_http`: its request deadline (503), its
//! body limit answered in the API's `{"status": "error", …}` shape, and its allowed hosts.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use throughline_service_kit::{BodyLimit, ServeConfig, too_large_message};

/// How long in-flight requests may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The service kit's defaults with the API's deadline, body limit, hosts and grace.
pub fn serve_config(config: &crate::ApiConfig) -> ServeConfig {
    ServeConfig {
        request_timeout: Some(config.request_timeout),
        request_timeout_status: StatusCode::SERVICE_UNAVAILABLE,
        body_limit: Some(BodyLimit::with_rejection(config.max_body_bytes, too_large)),
        allowed_hosts: config.allowed_hosts.clone(),
        shutdown_grace: SHUTDOWN_GRACE,
        ..ServeConfig::default()
    }
}

/// `413 {"status": "error", "error": "request body over N bytes", "fields": [{"field": "body", …}]}`.
fn too_large(max_bytes: usize) -> Response {
    let message = too_large_message(max_bytes);
    let body = serde_json::json!({
        "status": "error",
        "error": message,
        "fields": [{"field": "body", "problem": message}],
    });
    let mut response = (StatusCode::PAYLOAD_TOO_LARGE, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
