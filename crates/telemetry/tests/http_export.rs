//! OTLP over http/protobuf (the spec's default protocol) against a real HTTP receiver on
//! loopback: the generic endpoint gets `/v1/traces` appended, and the headers from
//! `OTEL_EXPORTER_OTLP_HEADERS` arrive decoded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use opentelemetry::trace::Tracer as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use throughline_telemetry::{Telemetry, TelemetryConfig};

#[derive(Debug, Default, Clone)]
struct Seen {
    paths: Vec<String>,
    authorization: Vec<String>,
    span_names: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

async fn receive(
    State(seen): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut seen = seen.lock().expect("receiver lock");
    seen.paths.push(uri.path().to_owned());
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        seen.authorization.push(auth.to_owned());
    }
    for rs in request.resource_spans {
        for ss in rs.scope_spans {
            seen.span_names.extend(ss.spans.into_iter().map(|s| s.name));
        }
    }
    StatusCode::OK
}

#[test]
fn http_protobuf_export_uses_the_signal_path_and_decoded_headers() {
    let seen = Shared::default();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let state = Arc::clone(&seen);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            addr_tx
                .send(listener.local_addr().expect("bound address"))
                .expect("send address");
            let app = Router::new()
                .route("/{*path}", post(receive))
                .with_state(state);
            axum::serve(listener, app).await.expect("receiver serves");
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("receiver address");

    let endpoint = format!("http://{addr}");
    let config = TelemetryConfig::from_env([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .expect("valid");
    let telemetry = Telemetry::builder(config)
        .build()
        .expect("telemetry builds");
    let tracer = telemetry.tracer("http-test").expect("enabled");
    tracer.in_span("checkout", |_| {});
    let outcome = telemetry.flush(Duration::from_secs(5));
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");

    let seen = seen.lock().expect("receiver lock").clone();
    assert_eq!(seen.paths, vec!["/v1/traces".to_owned()]);
    assert_eq!(seen.authorization, vec!["Bearer abc".to_owned()]);
    assert_eq!(seen.span_names, vec!["checkout".to_owned()]);
}

#[test]
fn with_otlp_and_console_listed_the_spans_still_reach_the_otlp_endpoint() {
    let seen = Shared::default();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let state = Arc::clone(&seen);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            addr_tx
                .send(listener.local_addr().expect("bound address"))
                .expect("send address");
            let app = Router::new()
                .route("/{*path}", post(receive))
                .with_state(state);
            axum::serve(listener, app).await.expect("receiver serves");
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("receiver address");
    let endpoint = format!("http://{addr}");
    let config = TelemetryConfig::from_env([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_TRACES_EXPORTER", "otlp,console"),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .expect("valid");
    let telemetry = Telemetry::builder(config)
        .build()
        .expect("telemetry builds");
    let tracer = telemetry.tracer("fan-out-test").expect("enabled");
    tracer.in_span("both-ways", |_| {});
    let outcome = telemetry.flush(Duration::from_secs(5));
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    let seen = seen.lock().expect("receiver lock").clone();
    assert_eq!(seen.span_names, vec!["both-ways".to_owned()]);
}
