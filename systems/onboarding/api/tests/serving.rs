//! The API as the service kit serves it, over real sockets: a body over the limit gets the API's
//! documented `{"status": "error", …}` JSON (declared up front or streamed), a foreign `Host` is
//! refused on loopback while an allowed one is served, and silent and idle connections are closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use onboarding_api::customers::CustomerStore;
use onboarding_api::queue::{MessageQueue, OutgoingMessage, QueueError};
use onboarding_api::{ApiConfig, App, Telemetry};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use throughline_service_kit::{HttpServer, ServeConfig, spawn_http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
struct AcceptingQueue;

impl MessageQueue for AcceptingQueue {
    fn name(&self) -> &str {
        "onboarding-queue"
    }
    async fn send(&self, _message: OutgoingMessage) -> Result<String, QueueError> {
        Ok("m-1".to_owned())
    }
    async fn probe(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

struct Api {
    server: HttpServer,
    _dir: tempfile::TempDir,
}

/// The API's routes under its own serving settings (`server::serve_config`), with the header
/// and idle timeouts shortened for the test.
async fn start() -> Api {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            dir.path().join("customers.db").display().to_string(),
        ),
        ("ONBOARDING_MAX_BODY_BYTES".to_owned(), "64".to_owned()),
        (
            "THROUGHLINE_ALLOWED_HOSTS".to_owned(),
            "api.test".to_owned(),
        ),
    ]);
    let config = ApiConfig::from_env(&env).expect("a valid configuration");
    let store = CustomerStore::open(&config.database)
        .await
        .expect("the SQLite store opens");
    let provider = SdkTracerProvider::builder().build();
    let telemetry = Telemetry {
        tracer: BoxedTracer::new(Box::new(provider.tracer("onboarding-api"))),
        meter: opentelemetry::global::meter("test"),
    };
    let app = Arc::new(App::new(store, AcceptingQueue, telemetry, 8000));
    let router = onboarding_api::routes::router(app, config.max_body_bytes);
    let serve = ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..onboarding_api::server::serve_config(&config)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    Api {
        server: spawn_http(listener, router, serve).expect("serves"),
        _dir: dir,
    }
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the API kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

async fn exchange(api: &Api, request: &str) -> String {
    let mut stream = TcpStream::connect(api.server.local_addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut stream).await
}

fn json_body(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").expect("a head").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

fn expected_413() -> serde_json::Value {
    serde_json::json!({
        "status": "error",
        "error": "request body over 64 bytes",
        "fields": [{"field": "body", "problem": "request body over 64 bytes"}],
    })
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_the_api_error_shape() {
    let api = start().await;
    let body = format!("{{\"customer_id\":\"{}\"}}", "C".repeat(80));
    let answer = exchange(
        &api,
        &format!(
            "POST /onboard HTTP/1.1\r\nHost: localhost:8000\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert_eq!(json_body(&answer), expected_413());
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_gets_the_api_error_shape() {
    let api = start().await;
    let chunk = "x".repeat(40);
    let answer = exchange(
        &api,
        &format!(
            "POST /onboard HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             28\r\n{chunk}\r\n28\r\n{chunk}\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(json_body(&answer), expected_413());
}

#[tokio::test]
async fn a_foreign_host_is_refused_and_an_allowed_one_served() {
    let api = start().await;
    let get =
        |host: &str| format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let refused = exchange(&api, &get("evil.example:8000")).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        refused.contains("host \"evil.example:8000\" is not allowed"),
        "{refused}"
    );
    for host in ["localhost:8000", "127.0.0.1:8000", "api.test:8000"] {
        let served = exchange(&api, &get(host)).await;
        assert!(served.starts_with("HTTP/1.1 200"), "{host}: {served}");
    }
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let api = start().await;
    let mut silent = TcpStream::connect(api.server.local_addr()).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");
    let idle = exchange(&api, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(idle.starts_with("HTTP/1.1 200"), "{idle}");
    assert!(
        !idle.to_ascii_lowercase().contains("connection: close"),
        "{idle}"
    );
}
