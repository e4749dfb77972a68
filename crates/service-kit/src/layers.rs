//! The per-request checks `serve_http` puts around every router (applied there as one service,
//! see `guard`), and the same checks as axum middleware functions for routers served by other
//! means: the allowed-hosts check of loopback listeners, the body limit answered in the server's
//! own shape, and the request deadline (answered in gRPC's terms to gRPC requests).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::Limited;

use crate::config::{AllowedHosts, BodyLimit};
use crate::guard::CountedBody;

pub use crate::guard::BodyDeadlineError;

/// Whether a request speaks gRPC (`content-type: application/grpc`, `+proto`, …).
pub fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The host a request is addressed to: `Host`, or the HTTP/2 `:authority`.
fn request_host<B>(request: &http::Request<B>) -> Option<&str> {
    match request.headers().get(header::HOST) {
        Some(value) => Some(value.to_str().unwrap_or("\u{fffd}")),
        None => request.uri().authority().map(|a| a.as_str()),
    }
}

/// The 403 of a request addressed to a host `allowed` does not allow; `None` when it may pass
/// (also when it names no host at all: HTTP/1.0, which no browser sends, so nothing to rebind).
pub(crate) fn refuse_host<B>(
    allowed: &AllowedHosts,
    request: &http::Request<B>,
) -> Option<Response> {
    let host = request_host(request)?;
    if allowed.allows(host) {
        return None;
    }
    let message = format!(
        "host {host:?} is not allowed: this server listens on loopback and answers only \
         to localhost, 127.0.0.1, [::1] and the hosts of --allowed-host / \
         THROUGHLINE_ALLOWED_HOSTS\n"
    );
    tracing::debug!(host, "request refused: host not allowed");
    let mut response = (StatusCode::FORBIDDEN, message).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(response)
}

/// Refuses requests addressed to a host that is neither a loopback name nor allowed (a page on
/// another site reaching a loopback server through DNS rebinding names its own host).
pub async fn check_host(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    match refuse_host(&allowed, &request) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

/// The `Content-Length` a request declares, if it declares a readable one.
pub(crate) fn declared_length<B>(request: &http::Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Answers a body over the limit with the server's own 413, whether it says so up front
/// (`Content-Length`) or only turns out longer while the handler reads it.
pub async fn limit_body(
    State(limit): State<Arc<BodyLimit>>,
    request: Request,
    next: Next,
) -> Response {
    if declared_length(&request).is_some_and(|len| len > limit.max_bytes as u64) {
        return limit.reject();
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(CountedBody {
            inner: Limited::new(body, limit.max_bytes),
            exceeded: Arc::clone(&exceeded),
        })
    });
    let response = next.run(request).await;
    if exceeded.load(Ordering::Acquire) {
        limit.reject()
    } else {
        response
    }
}

/// The deadline of one request and the status its timeout gets.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline {
    pub timeout: Duration,
    pub status: StatusCode,
}

/// The deadline a gRPC client set on its call (`grpc-timeout`: at most 8 digits and a unit,
/// `H`, `M`, `S`, `m`, `u` or `n`); `None` when there is none or it is malformed (as tonic's own
/// server, which then serves the call without one).
pub fn grpc_timeout<B>(request: &http::Request<B>) -> Option<Duration> {
    parse_grpc_timeout(request.headers().get("grpc-timeout")?.as_bytes())
}

fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 ASCII digits: always valid UTF-8 and within a u64.
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The deadline of one request: the server's own, or a gRPC client's `grpc-timeout` when that
/// comes first (a gRPC request is never served past the deadline its client set).
pub(crate) fn deadline_of<B>(
    request: &http::Request<B>,
    grpc: bool,
    server: Option<RequestDeadline>,
    default_status: StatusCode,
) -> Option<RequestDeadline> {
    let client = grpc.then(|| grpc_timeout(request)).flatten();
    match (server, client) {
        (Some(server), Some(client)) if client < server.timeout => Some(RequestDeadline {
            timeout: client,
            status: server.status,
        }),
        (server @ Some(_), _) => server,
        (None, Some(client)) => Some(RequestDeadline {
            timeout: client,
            status: default_status,
        }),
        (None, None) => None,
    }
}

/// The answer to a request out of time: `status` over HTTP, `DEADLINE_EXCEEDED` to gRPC.
pub(crate) fn out_of_time(grpc: bool, status: StatusCode) -> Response {
    if !grpc {
        return (status, "request not answered in time\n").into_response();
    }
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static("4"));
    headers.insert(
        "grpc-message",
        HeaderValue::from_static("request%20not%20answered%20in%20time"),
    );
    response
}

/// Answers a request that is not done within its deadline (or, for gRPC, the client's
/// `grpc-timeout` when that is sooner): `status` over HTTP, and `DEADLINE_EXCEEDED` (HTTP 200,
/// `grpc-status: 4`) to gRPC, whose clients read only that.
pub async fn bound_request(
    State(deadline): State<RequestDeadline>,
    request: Request,
    next: Next,
) -> Response {
    let grpc = is_grpc(&request);
    let deadline = deadline_of(&request, grpc, Some(deadline), deadline.status).unwrap_or(deadline);
    match tokio::time::timeout(deadline.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => out_of_time(grpc, deadline.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_is_told_by_its_content_type() {
        let with = |ct: &str| {
            Request::builder()
                .header(header::CONTENT_TYPE, ct)
                .body(Body::empty())
                .unwrap()
        };
        assert!(is_grpc(&with("application/grpc")));
        assert!(is_grpc(&with("application/grpc+proto")));
        assert!(!is_grpc(&with("application/x-protobuf")));
        assert!(!is_grpc(&with("application/json")));
    }

    #[test]
    fn grpc_timeout_follows_the_spec() {
        for (value, expected) in [
            ("1H", Some(Duration::from_secs(3600))),
            ("2M", Some(Duration::from_secs(120))),
            ("3S", Some(Duration::from_secs(3))),
            ("250m", Some(Duration::from_millis(250))),
            ("7u", Some(Duration::from_micros(7))),
            ("0n", Some(Duration::ZERO)),
            ("99999999S", Some(Duration::from_secs(99_999_999))),
            ("123456789S", None),
            ("S", None),
            ("10", None),
            ("10s", None),
            ("-1S", None),
            ("1.5S", None),
            ("", None),
        ] {
            assert_eq!(parse_grpc_timeout(value.as_bytes()), expected, "{value:?}");
        }
    }

    #[test]
    fn the_sooner_deadline_wins_and_only_grpc_sets_one() {
        let request = |ct: &str| {
            Request::builder()
                .header(header::CONTENT_TYPE, ct)
                .header("grpc-timeout", "100m")
                .body(Body::empty())
                .unwrap()
        };
        let server = |secs| {
            Some(RequestDeadline {
                timeout: Duration::from_secs(secs),
                status: StatusCode::REQUEST_TIMEOUT,
            })
        };
        let grpc = request("application/grpc");
        let timeout = |d: Option<RequestDeadline>| d.map(|d| d.timeout);
        let status = StatusCode::REQUEST_TIMEOUT;
        assert_eq!(
            timeout(deadline_of(&grpc, true, server(60), status)),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            timeout(deadline_of(&grpc, true, None, status)),
            Some(Duration::from_millis(100))
        );
        let soon = Some(RequestDeadline {
            timeout: Duration::from_millis(10),
            status,
        });
        assert_eq!(
            timeout(deadline_of(&grpc, true, soon, status)),
            Some(Duration::from_millis(10))
        );
        let plain = request("application/json");
        assert_eq!(
            timeout(deadline_of(&plain, false, server(60), status)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(timeout(deadline_of(&plain, false, None, status)), None);
    }
}
