//! A flush that fails says why: the endpoint, the protocol, the exporter's error, and, when an
//! OTLP/HTTP export reached a gRPC (HTTP/2-only) port or a gRPC export reached an HTTP/1.1 port,
//! that mismatch, against real listeners of each kind.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use throughline_telemetry::{FlushOutcome, Telemetry, TelemetryConfig};

async fn answer(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::new())))
}

/// A listener that speaks only HTTP/2 (as a gRPC server does) or only HTTP/1.1, on its own
/// runtime thread.
fn listener(http2_only: bool) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("listener runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            tx.send(listener.local_addr().expect("address"))
                .expect("send");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let io = TokioIo::new(stream);
                    let service = hyper::service::service_fn(answer);
                    if http2_only {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("listener address")
}

fn failed_flush(protocol: &str, addr: SocketAddr) -> String {
    let endpoint = format!("http://{addr}");
    let config = TelemetryConfig::from_env([
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        // The exporter cannot tell a wrong protocol from a collector that is down, so it would
        // retry until its timeout; retries off, the first attempt is diagnosed at once.
        ("THROUGHLINE_OTLP_RETRIES", "0"),
    ])
    .expect("valid config");
    let telemetry = Telemetry::builder(config).build().expect("builds");
    let tracer = telemetry.tracer("mismatch").expect("enabled");
    opentelemetry::trace::Tracer::in_span(&tracer, "lost", |_| {});
    let outcome = telemetry.flush(Duration::from_secs(5));
    assert!(matches!(outcome, FlushOutcome::Failed(_)), "{outcome:?}");
    outcome.to_string()
}

#[test]
fn http_protobuf_to_a_grpc_port_says_so() {
    let addr = listener(true);
    let message = failed_flush("http/protobuf", addr);
    eprintln!("{message}");
    for needle in [
        format!("http://{addr}/v1/traces"),
        "http/protobuf".to_owned(),
    ] {
        assert!(message.contains(needle.as_str()), "{message}");
    }
    assert!(message.contains("gRPC"), "{message}");
}

#[test]
fn grpc_to_an_http_1_port_says_so() {
    let addr = listener(false);
    let message = failed_flush("grpc", addr);
    eprintln!("{message}");
    for needle in [format!("http://{addr}"), "grpc".to_owned()] {
        assert!(message.contains(needle.as_str()), "{message}");
    }
    assert!(message.contains("HTTP/1.1"), "{message}");
}
