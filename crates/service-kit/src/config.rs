//! What a server is configured with: timeouts, limits, the allowed hosts, and the one documented
//! set of defaults every server of the workspace starts from.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The environment variable listing extra host names a loopback server answers to.
pub const ALLOWED_HOSTS_ENV: &str = "THROUGHLINE_ALLOWED_HOSTS";

/// How a server treats its connections and requests. Start from [`ServeConfig::default`] and
/// override what a server needs (`ServeConfig { body_limit: None, ..ServeConfig::default() }`).
///
/// | setting | default | what happens when it runs out |
/// |---|---|---|
/// | `header_read_timeout` | 10 s | a connection that has not sent a whole request head is closed |
/// | `idle_timeout` | 60 s | a connection with no request in flight for this long is closed |
/// | `body_timeout` | 30 s | a request body that has not arrived whole fails (the handler answers, usually 408) |
/// | `request_timeout` | 60 s | the request is answered `request_timeout_status` (gRPC: `DEADLINE_EXCEEDED`, sooner when the client's `grpc-timeout` is) |
/// | `body_limit` | 16 MiB | 413 with the server's own error shape |
/// | `max_connections` | 1,024 | a connection over the limit is closed at once |
/// | `http2_keep_alive_interval` / `_timeout` | 30 s / 10 s | a peer that does not answer a ping is dropped |
/// | `http2_max_concurrent_streams` | 256 | more streams wait (HTTP/2 flow control) |
/// | `shutdown_grace` | 10 s | connections still open after it are dropped |
/// | `allowed_hosts` | none | on a loopback listener, other `Host`s get 403 |
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Time from a connection's opening (or a request's start) to a whole request head.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight (the keep-alive timeout).
    pub idle_timeout: Duration,
    /// Time for a whole request body to arrive.
    pub body_timeout: Duration,
    /// Time for a request to be answered; `None` for servers whose handlers bound themselves.
    pub request_timeout: Option<Duration>,
    /// The HTTP status of a request that ran out of `request_timeout`.
    pub request_timeout_status: StatusCode,
    /// The largest request body; `None` for servers that enforce their own (after decompression).
    pub body_limit: Option<BodyLimit>,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// HTTP/2 keep-alive pings; `None` sends none.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long a peer has to answer an HTTP/2 ping.
    pub http2_keep_alive_timeout: Duration,
    /// Streams an HTTP/2 (gRPC) client may open at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// Time requests in flight get to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// Host names, beyond the loopback names, that a loopback listener answers to.
    pub allowed_hosts: AllowedHosts,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            request_timeout: Some(Duration::from_secs(60)),
            request_timeout_status: StatusCode::REQUEST_TIMEOUT,
            body_limit: Some(BodyLimit::new(16 * 1024 * 1024)),
            max_connections: 1024,
            http2_keep_alive_interval: Some(Duration::from_secs(30)),
            http2_keep_alive_timeout: Duration::from_secs(10),
            http2_max_concurrent_streams: 256,
            shutdown_grace: Duration::from_secs(10),
            allowed_hosts: AllowedHosts::default(),
        }
    }
}

/// Builds the 413 answer of a server from the limit, in that server's documented error shape.
pub type RejectionFn = Arc<dyn Fn(usize) -> Response + Send + Sync>;

/// A request body limit and the answer a body over it gets.
#[derive(Clone)]
pub struct BodyLimit {
    /// Bytes a body may have.
    pub max_bytes: usize,
    rejection: RejectionFn,
}

impl BodyLimit {
    /// A limit answered with `{"error": "request body over N bytes"}`.
    pub fn new(max_bytes: usize) -> Self {
        Self::with_rejection(max_bytes, |max| {
            let body = serde_json::json!({ "error": too_large_message(max) });
            json_response(StatusCode::PAYLOAD_TOO_LARGE, &body)
        })
    }

    /// A limit answered by `rejection(max_bytes)`, e.g. a server's own JSON error shape.
    pub fn with_rejection(
        max_bytes: usize,
        rejection: impl Fn(usize) -> Response + Send + Sync + 'static,
    ) -> Self {
        Self {
            max_bytes,
            rejection: Arc::new(rejection),
        }
    }

    /// The answer to a body over the limit.
    pub fn reject(&self) -> Response {
        (self.rejection)(self.max_bytes)
    }
}

impl fmt::Debug for BodyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyLimit")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// The message of a 413, for servers that put it in their own shape.
pub fn too_large_message(max_bytes: usize) -> String {
    format!("request body over {max_bytes} bytes")
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Host names a loopback listener answers to beyond `localhost`, `*.localhost`, `127.0.0.0/8`
/// and `[::1]`. An entry starting with `.` also allows every subdomain; `*` allows any host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
}

/// A bad allowed-hosts setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {entry:?} is not a host name (give names without scheme, port or path)")]
pub struct AllowedHostsError {
    pub setting: String,
    pub entry: String,
}

impl AllowedHosts {
    /// Parses host names, naming `setting` (a flag or variable) in the error for a bad one.
    pub fn parse<I, S>(setting: &str, entries: I) -> Result<Self, AllowedHostsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            let valid = entry == "*"
                || entry
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !valid {
                return Err(AllowedHostsError {
                    setting: setting.to_owned(),
                    entry: entry.to_owned(),
                });
            }
            names.push(entry.trim_end_matches('.').to_ascii_lowercase());
        }
        Ok(Self { names })
    }

    /// `THROUGHLINE_ALLOWED_HOSTS` (comma-separated) from an environment map; unset is none.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, AllowedHostsError> {
        match env.get(ALLOWED_HOSTS_ENV) {
            Some(list) => Self::parse(ALLOWED_HOSTS_ENV, list.split(',')),
            None => Ok(Self::default()),
        }
    }

    /// These names and `other`'s.
    pub fn merged(mut self, other: &AllowedHosts) -> Self {
        self.names.extend(other.names.iter().cloned());
        self
    }

    /// The configured names (not the loopback ones, which are always allowed).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether a `Host` value (with or without a port) names a loopback name or an allowed one.
    /// Compares without regard to ASCII case and without allocating (it runs on every request).
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).trim_end_matches('.');
        if is_loopback_name(name) {
            return true;
        }
        // The configured names are lowercase (see `parse`).
        self.names.iter().any(|allowed| {
            allowed == "*"
                || allowed.eq_ignore_ascii_case(name)
                || (allowed.starts_with('.')
                    && (ends_with_ignoring_case(name, allowed)
                        || allowed[1..].eq_ignore_ascii_case(name)))
        })
    }
}

/// `name.ends_with(suffix)`, without regard to ASCII case.
fn ends_with_ignoring_case(name: &str, suffix: &str) -> bool {
    name.len() >= suffix.len()
        && name.as_bytes()[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// The name part of a `Host` value: `[::1]:80` → `[::1]`, `localhost:8000` → `localhost`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_loopback_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost")
        || ends_with_ignoring_case(name, ".localhost")
        || name == "[::1]"
    {
        return true;
    }
    name.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_allowed_with_any_port() {
        let none = AllowedHosts::default();
        for host in [
            "localhost",
            "localhost:8000",
            "LocalHost:1",
            "api.localhost:80",
            "127.0.0.1",
            "127.0.0.1:4318",
            "127.1.2.3:9",
            "[::1]",
            "[::1]:16686",
            "localhost.",
        ] {
            assert!(none.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "",
        ] {
            assert!(!none.allows(host), "{host}");
        }
    }

    #[test]
    fn configured_names_and_subdomains_are_allowed() {
        let hosts = AllowedHosts::parse("--allowed-host", ["devbox", ".example.test", ""]).unwrap();
        assert!(hosts.allows("devbox:8000"));
        assert!(hosts.allows("DEVBOX"));
        assert!(hosts.allows("a.example.test"));
        assert!(hosts.allows("example.test:1"));
        assert!(!hosts.allows("devbox2"));
        assert!(!hosts.allows("example.test.evil"));
        let any = AllowedHosts::parse("--allowed-host", ["*"]).unwrap();
        assert!(any.allows("anything.at.all:1"));
    }

    #[test]
    fn a_bad_entry_names_the_setting() {
        let env = HashMap::from([(
            ALLOWED_HOSTS_ENV.to_owned(),
            "devbox, http://x:80".to_owned(),
        )]);
        let err = AllowedHosts::from_env(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "THROUGHLINE_ALLOWED_HOSTS: \"http://x:80\" is not a host name (give names without scheme, port or path)"
        );
        let env = HashMap::from([(ALLOWED_HOSTS_ENV.to_owned(), "a,b".to_owned())]);
        assert_eq!(AllowedHosts::from_env(&env).unwrap().names(), ["a", "b"]);
    }
}
