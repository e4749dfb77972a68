//! The collector's listeners and their timeouts, exactly: a client that never finishes its
//! headers is disconnected unanswered, a body that stops arriving gets 408 with an OTLP status,
//! and on each of the three ports (OTLP/gRPC, OTLP/HTTP, query) a connection that sends nothing,
//! an HTTP/2 connection that sends only its preface, and a keep-alive connection left idle are
//! closed by the server.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use prost::Message;
use throughline_collector::{CollectorConfig, default_serve_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn short_timeouts() -> TestCollector {
    let serve = throughline_service_kit::ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..default_serve_config()
    };
    start_with_config(CollectorConfig {
        serve,
        ..CollectorConfig::default()
    })
    .await
}

/// Reads until the server closes the connection (bounded far above the configured timeouts, so
/// a server that never closes fails the test instead of hanging it).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    out
}

#[tokio::test]
async fn unfinished_headers_close_the_connection_unanswered() {
    let c = short_timeouts().await;
    let mut stream = TcpStream::connect(c.running.http_addr)
        .await
        .expect("connects");
    stream
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("writes");
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(String::from_utf8_lossy(&answer), "");
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_with_deadline_exceeded() {
    let c = short_timeouts().await;
    let mut stream = TcpStream::connect(c.running.http_addr)
        .await
        .expect("connects");
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n0123456789",
        )
        .await
        .expect("writes");
    let answer = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/x-protobuf"),
        "{text}"
    );
    let body = &answer[text.find("\r\n\r\n").expect("a head") + 4..];
    let status = tonic_types::Status::decode(body).expect("a google.rpc.Status body");
    assert_eq!(status.code, tonic::Code::DeadlineExceeded as i32);
    assert!(
        status.message.contains("did not arrive whole"),
        "{}",
        status.message
    );
}

fn ports(c: &TestCollector) -> [(&'static str, SocketAddr); 3] {
    [
        ("OTLP/gRPC", c.running.grpc_addr),
        ("OTLP/HTTP", c.running.http_addr),
        ("query", c.running.query_addr),
    ]
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_on_every_port() {
    let c = short_timeouts().await;
    for (name, addr) in ports(&c) {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.is_empty(), "{name}: {answer:?}");
    }
}

#[tokio::test]
async fn an_http2_connection_that_sends_only_its_preface_is_closed_on_every_port() {
    let c = short_timeouts().await;
    for (name, addr) in ports(&c) {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .expect("writes");
        let answer = read_until_closed(&mut stream).await;
        // The server's SETTINGS frame (type 4) first; then it closes.
        assert!(answer.len() >= 9 && answer[3] == 4, "{name}: {answer:?}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_on_every_port() {
    let c = short_timeouts().await;
    for (name, addr) in ports(&c) {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        // Any request: every port answers it (here 404), then keeps the connection alive.
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("writes");
        let answer = read_until_closed(&mut stream).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 "), "{name}: {text}");
        assert!(
            !text.to_ascii_lowercase().contains("connection: close"),
            "{name}: the server closed for idleness, not because it said so: {text}"
        );
    }
}
