//! The part of Lambda's Telemetry API (version 2022-07-01) an extension needs to know when the
//! function finished an invocation: `PUT /2022-07-01/telemetry` subscribes an extension's HTTP
//! listener to `platform` events, and each invocation's end (the runtime posting its response or
//! error) is delivered to it as a `platform.runtimeDone` event (schema 2022-12-13), in a JSON
//! array, before the environment can freeze (the extension is not idle until it is done with it).
//!
//! As on AWS the destination must be `http://sandbox.localdomain:PORT/…`; locally that name
//! means 127.0.0.1. Only `platform.runtimeDone` is delivered (no `function` or `extension` log
//! streams), at once rather than buffered for up to `buffering.timeoutMs`.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The host name AWS requires in a subscription's destination.
pub const SANDBOX_HOST: &str = "sandbox.localdomain";
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a subscribed extension listens, as given, and where the host connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub uri: String,
    connect: http::Uri,
}

/// Why a subscription body is refused; the message names the field.
pub fn parse_subscription(body: &[u8]) -> Result<Destination, String> {
    #[derive(serde::Deserialize)]
    struct DestinationBody {
        protocol: String,
        #[serde(rename = "URI")]
        uri: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Subscription {
        #[serde(default)]
        schema_version: Option<String>,
        destination: DestinationBody,
        types: Vec<String>,
    }
    let sub: Subscription = serde_json::from_slice(body).map_err(|e| {
        format!("the body must be {{\"destination\": {{\"protocol\": \"HTTP\", \"URI\": …}}, \"types\": [\"platform\"]}} ({e})")
    })?;
    if let Some(v) = &sub.schema_version
        && !matches!(v.as_str(), "2022-07-01" | "2022-12-13" | "2025-01-29")
    {
        return Err(format!(
            "schemaVersion: {v:?} is not a known schema version"
        ));
    }
    if sub.destination.protocol != "HTTP" {
        return Err(format!(
            "destination.protocol: {:?} is not HTTP (the local host delivers over HTTP only)",
            sub.destination.protocol
        ));
    }
    for t in &sub.types {
        if !matches!(t.as_str(), "platform" | "function" | "extension") {
            return Err(format!(
                "types: {t:?} is not platform, function or extension"
            ));
        }
    }
    if !sub.types.iter().any(|t| t == "platform") {
        return Err(
            "types: the local host delivers platform events only; list \"platform\"".into(),
        );
    }
    let parsed: http::Uri = sub.destination.uri.parse().map_err(|e| {
        format!(
            "destination.URI: {:?} is not a URI ({e})",
            sub.destination.uri
        )
    })?;
    if parsed.scheme_str() != Some("http") || parsed.host() != Some(SANDBOX_HOST) {
        return Err(format!(
            "destination.URI: {:?} must be http://{SANDBOX_HOST}:PORT/…",
            sub.destination.uri
        ));
    }
    let port = parsed
        .port_u16()
        .ok_or_else(|| format!("destination.URI: {:?} has no port", sub.destination.uri))?;
    let path = parsed.path_and_query().map_or("/", |p| p.as_str());
    let connect = format!("http://127.0.0.1:{port}{path}")
        .parse()
        .map_err(|e| format!("destination.URI: {e}"))?;
    Ok(Destination {
        uri: sub.destination.uri,
        connect,
    })
}

/// Delivers telemetry batches to subscribed extensions.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Deliverer {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

/// The `platform.runtimeDone` event of `request_id`: `status` is `success`, `error` or
/// `failure`, as AWS names them.
pub fn runtime_done(request_id: &str, status: &str) -> serde_json::Value {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "time": time,
        "type": "platform.runtimeDone",
        "record": {"requestId": request_id, "status": status},
    })
}

impl Deliverer {
    /// Posts `events` (a JSON array) to `destination`; a failure is logged, not retried.
    pub async fn deliver(&self, destination: &Destination, events: &[serde_json::Value]) {
        let body = match serde_json::to_vec(events) {
            Ok(body) => body,
            Err(_) => return,
        };
        let request = match http::Request::post(destination.connect.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
        {
            Ok(request) => request,
            Err(_) => return,
        };
        match tokio::time::timeout(DELIVERY_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => {}
            Ok(Ok(response)) => tracing::warn!(uri = %destination.uri, status = %response.status(),
                "the extension refused a telemetry delivery"),
            Ok(Err(err)) => tracing::warn!(uri = %destination.uri, error = %err,
                "could not deliver telemetry to an extension"),
            Err(_) => tracing::warn!(uri = %destination.uri, "a telemetry delivery timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_names_the_field_it_gets_wrong() {
        let ok = br#"{"schemaVersion":"2022-12-13","destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/t"},"types":["platform"]}"#;
        let d = parse_subscription(ok).expect("valid");
        assert_eq!(d.connect, "http://127.0.0.1:4243/t");
        for (body, field) in [
            (&br#"{"destination":{"protocol":"TCP","URI":"http://sandbox.localdomain:1/"},"types":["platform"]}"#[..], "destination.protocol"),
            (br#"{"destination":{"protocol":"HTTP","URI":"http://example.com:1/"},"types":["platform"]}"#, "destination.URI"),
            (br#"{"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain/"},"types":["platform"]}"#, "destination.URI"),
            (br#"{"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/"},"types":["function"]}"#, "types"),
            (br#"{"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/"},"types":["nope"]}"#, "types"),
            (br#"{"schemaVersion":"1999","destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/"},"types":["platform"]}"#, "schemaVersion"),
        ] {
            let err = parse_subscription(body).expect_err("refused");
            assert!(err.starts_with(field), "{err}");
        }
    }
}
