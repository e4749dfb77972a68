//! The broker's HTTP serving, over real sockets: a body over the limit gets the documented
//! `__type` JSON, a connection that sends nothing and a keep-alive
//! connection left idle are closed by the broker, and a foreign `Host` is refused on loopback.

mod common;

use std::time::Duration;

use throughline_broker::{Broker, BrokerConfig, BrokerHandle, default_serve_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: usize = 8 * 1024 * 1024;

async fn start_short(dir: &std::path::Path) -> BrokerHandle {
    let broker = Broker::open(BrokerConfig::new(dir))
        .await
        .expect("open broker");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let config = throughline_service_kit::ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..default_serve_config()
    };
    broker.serve_with(listener, config).expect("serve")
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the broker kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

fn assert_too_large(status: u16, content_type: &str, body: &str) {
    assert_eq!(status, 413, "{body}");
    assert_eq!(content_type, "application/x-amz-json-1.0");
    let value: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(
        value,
        serde_json::json!({
            "__type": "RequestEntityTooLarge",
            "message": format!("request body over {LIMIT} bytes"),
        })
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_the_aws_error_shape() {
    let running = common::start().await;
    let response = reqwest::Client::new()
        .post(running.handle.endpoint_url())
        .header("x-amz-target", "AmazonSQS.SendMessage")
        .header("content-type", "application/x-amz-json-1.0")
        .body(vec![b' '; LIMIT + 1])
        .send()
        .await
        .expect("the broker answers");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_too_large(status, &content_type, &response.text().await.unwrap());
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let handle = start_short(dir.path()).await;
    let mut stream = TcpStream::connect(handle.local_addr()).await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, "");
    handle.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let handle = start_short(dir.path()).await;
    let mut stream = TcpStream::connect(handle.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_foreign_host_is_refused() {
    let running = common::start().await;
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", running.handle.endpoint_url()))
        .header("host", "rebound.example")
        .send()
        .await
        .expect("the broker answers");
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
}
