//! The OTLP/HTTP server's timeouts: a client that never finishes its headers is disconnected,
//! and a body that stops arriving gets 408.

mod common;

use std::time::Duration;

use common::*;
use throughline_collector::{CollectorConfig, HttpTimeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn short_timeouts() -> TestCollector {
    let timeouts = HttpTimeouts {
        header_read: Duration::from_millis(300),
        body: Duration::from_millis(300),
        ..HttpTimeouts::default()
    };
    start_with_config(CollectorConfig {
        timeouts,
        ..CollectorConfig::default()
    })
    .await
}

/// Reads until the server closes the connection (bounded, so a server that never closes fails
/// the test instead of hanging it).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn unfinished_headers_close_the_connection() {
    let c = short_timeouts().await;
    let mut stream = TcpStream::connect(c.running.http_addr)
        .await
        .expect("connects");
    stream
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408() {
    let c = short_timeouts().await;
    let mut stream = TcpStream::connect(c.running.http_addr)
        .await
        .expect("connects");
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n0123456789",
        )
        .await
        .expect("writes");
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
