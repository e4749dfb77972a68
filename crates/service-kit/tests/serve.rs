//! `serve_http` over real sockets: idle and silent connections are closed, requests in flight
//! are not, the connection limit, the allowed-hosts check, the body limit's own 413, the body
//! deadline (from the request, not per part), the request deadline (in gRPC's terms for gRPC),
//! and the graceful shutdown.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::StatusCode;
use throughline_service_kit::{AllowedHosts, BodyLimit, HttpServer, ServeConfig, spawn_http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "slow"
            }),
        )
}

fn short() -> ServeConfig {
    ServeConfig {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(200),
        ..ServeConfig::default()
    }
}

async fn start(router: Router, config: ServeConfig) -> HttpServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    spawn_http(listener, router, config).expect("serves")
}

/// Reads until the server closes the connection; a server that keeps it open fails the test
/// (after a bound far above the configured timeouts) instead of hanging it.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response (its body as long as its `Content-Length`), leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("an answer")
            .expect("reads");
        assert!(
            n > 0,
            "closed before a whole answer: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let server = start(router(), short()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(
        answer, "",
        "nothing is sent on a connection that asked nothing"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_http2_connection_that_sends_only_its_preface_is_closed() {
    let server = start(router(), short()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // The server answers with its SETTINGS (and a GOAWAY when it closes), then closes.
    let _ = read_until_closed(&mut stream).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_once_idle() {
    let server = start(router(), short()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    assert_eq!(read_until_closed(&mut stream).await, "");
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    // The handler takes three idle timeouts; the connection stays until it answers.
    let server = start(router(), short()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let config = ServeConfig {
        max_connections: 1,
        ..ServeConfig::default()
    };
    let server = start(router(), config).await;
    let mut first = TcpStream::connect(server.local_addr()).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // Answered, so accepted and holding the one permit.
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = TcpStream::connect(server.local_addr()).await.unwrap();
    let _ = second
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut second).await;
    assert_eq!(answer, "", "the second connection is closed unanswered");
    drop(first);
    server.shutdown().await;
}

async fn get_with_host(server: &HttpServer, host: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    let status = answer[9..12].parse().expect("a status line");
    (status, answer)
}

#[tokio::test]
async fn a_loopback_server_refuses_foreign_hosts() {
    let config = ServeConfig {
        allowed_hosts: AllowedHosts::parse("--allowed-host", ["devbox"]).unwrap(),
        ..ServeConfig::default()
    };
    let server = start(router(), config).await;
    for host in ["localhost:8000", "127.0.0.1", "[::1]:1", "devbox:8000"] {
        let (status, answer) = get_with_host(&server, host).await;
        assert_eq!(status, 200, "{host}: {answer}");
    }
    let (status, answer) = get_with_host(&server, "evil.example").await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains("host \"evil.example\" is not allowed"),
        "{answer}"
    );
    assert!(answer.contains("THROUGHLINE_ALLOWED_HOSTS"), "{answer}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_on_every_address_does_not_check_hosts() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("binds");
    let port = listener.local_addr().unwrap().port();
    let server = spawn_http(listener, router(), ServeConfig::default()).unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown().await;
}

fn own_shape_limit() -> ServeConfig {
    ServeConfig {
        body_limit: Some(BodyLimit::with_rejection(8, |max| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(http::header::CONTENT_TYPE, "application/json")],
                format!("{{\"status\":\"error\",\"max\":{max}}}"),
            )
                .into_response()
        })),
        ..ServeConfig::default()
    }
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_the_servers_413() {
    let server = start(router(), own_shape_limit()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/echo", server.local_addr());
    let response = client.post(&url).body("0123456789").send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.text().await.unwrap(),
        "{\"status\":\"error\",\"max\":8}"
    );
    let response = client.post(&url).body("01234567").send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "01234567");
    server.shutdown().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_the_servers_413() {
    let server = start(router(), own_shape_limit()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.ends_with("{\"status\":\"error\",\"max\":8}"),
        "{answer}"
    );
    server.shutdown().await;
}

/// A handler that reads the whole body and says how long it was, or why it could not.
fn body_reader() -> Router {
    Router::new().route(
        "/read",
        post(|body: axum::body::Body| async move {
            match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => format!("read {}", bytes.len()),
                Err(err) => {
                    let cause = std::error::Error::source(&err).map(|c| c.to_string());
                    format!("body failed: {}", cause.unwrap_or_else(|| err.to_string()))
                }
            }
        }),
    )
}

fn body_deadline(body_timeout: Duration) -> ServeConfig {
    ServeConfig {
        body_timeout,
        request_timeout: Some(Duration::from_secs(30)),
        ..ServeConfig::default()
    }
}

#[tokio::test]
async fn a_body_that_stops_arriving_fails_naming_the_body_timeout() {
    let server = start(body_reader(), body_deadline(Duration::from_millis(200))).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(
            b"POST /read HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\
              Connection: close\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.ends_with("body failed: request body not received whole within 200 ms"),
        "{answer}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_body_deadline_runs_from_the_request_not_from_each_part() {
    // Each part comes well within the timeout of the one before; the whole body does not.
    let server = start(body_reader(), body_deadline(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(
            b"POST /read HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n",
        )
        .await
        .unwrap();
    for _ in 0..8 {
        // The server may answer (and close) before the last parts: later writes then fail.
        if stream.write_all(b"2\r\nab\r\n").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.ends_with("body failed: request body not received whole within 300 ms"),
        "{answer}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_in_parts_within_the_limit_is_read_whole() {
    let server = start(body_reader(), own_shape_limit()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(
            b"POST /read HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n4\r\n0123\r\n4\r\n4567\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("read 8"), "{answer}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_grpc_request_out_of_time_gets_deadline_exceeded() {
    let config = ServeConfig {
        request_timeout: Some(Duration::from_millis(100)),
        request_timeout_status: StatusCode::SERVICE_UNAVAILABLE,
        ..ServeConfig::default()
    };
    let server = start(router(), config).await;
    let url = format!("http://{}/slow", server.local_addr());
    let client = reqwest::Client::new();
    let plain = client.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let grpc = client
        .get(&url)
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(grpc.status(), reqwest::StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "4");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_stops_accepting() {
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let started = std::sync::Mutex::new(Some(started_tx));
    let release = std::sync::Mutex::new(Some(release_rx));
    let shared = std::sync::Arc::new((started, release));
    let router = Router::new().route(
        "/held",
        get(move || {
            let shared = shared.clone();
            async move {
                let started = shared.0.lock().unwrap().take();
                let release = shared.1.lock().unwrap().take();
                if let Some(started) = started {
                    let _ = started.send(());
                }
                if let Some(release) = release {
                    let _ = release.await;
                }
                "done"
            }
        }),
    );
    let server = start(router, ServeConfig::default()).await;
    let addr = server.local_addr();
    let request = tokio::spawn(reqwest::get(format!("http://{addr}/held")));
    started_rx.await.expect("the request reached its handler");
    let stopping = tokio::spawn(server.shutdown());
    // The listener closes: new connections are refused while the held request is in flight.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener stayed open after shutdown began");
    release_tx.send(()).expect("the handler waits");
    let response = request
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(response.text().await.unwrap(), "done");
    stopping.await.unwrap();
}

#[tokio::test]
async fn binding_an_address_in_use_fails_naming_it() {
    let taken = throughline_service_kit::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("an ephemeral port binds");
    let addr = taken.local_addr().unwrap();
    let err = throughline_service_kit::bind(addr)
        .await
        .expect_err("the port is taken");
    assert_eq!(err.to_string(), format!("cannot listen on {addr}"));
    assert_eq!(err.addr, addr);
    assert_eq!(err.source.kind(), std::io::ErrorKind::AddrInUse);
}
