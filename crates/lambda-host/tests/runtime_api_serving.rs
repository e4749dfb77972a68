//! The Runtime API's serving, over real sockets: a connection that sends nothing and a keep-alive
//! connection left idle are closed, while a `/next` long poll with no invocation in sight stays
//! open however long it waits.

use std::time::Duration;

use throughline_lambda_host::RuntimeApi;
use throughline_lambda_host::runtime_api::{Invocation, RuntimeEvent, serve_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn short() -> (
    RuntimeApi,
    tokio::sync::mpsc::UnboundedReceiver<RuntimeEvent>,
) {
    let config = throughline_service_kit::ServeConfig {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(200),
        ..serve_config()
    };
    RuntimeApi::start_with(config)
        .await
        .expect("runtime api starts")
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the runtime api kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let (api, _events) = short().await;
    let mut stream = TcpStream::connect(api.addr()).await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, "");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (api, _events) = short().await;
    let mut stream = TcpStream::connect(api.addr()).await.unwrap();
    stream
        .write_all(b"GET /2018-06-01/nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_long_poll_outlives_the_idle_timeout() {
    let (api, mut events) = short().await;
    let mut stream = TcpStream::connect(api.addr()).await.unwrap();
    stream
        .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let polling = events.recv().await.expect("an event");
    assert!(
        matches!(polling, RuntimeEvent::Polling { .. }),
        "{polling:?}"
    );
    // Five idle timeouts with the poll waiting; then the invocation still reaches it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    api.offer(Invocation {
        request_id: "req-1".to_owned(),
        deadline_unix_ms: 0,
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".to_owned(),
        trace_id: String::new(),
        payload: "{}".into(),
    });
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
        .await
        .expect("an answer")
        .expect("reads");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("lambda-runtime-aws-request-id: req-1"),
        "{answer}"
    );
}
