//! OTLP over http/protobuf (the spec's default protocol) against a real HTTP receiver on
//! loopback: the generic endpoint gets `/v1/traces` appended, the headers from
//! `OTEL_EXPORTER_OTLP_HEADERS` arrive decoded, gzip is sent when asked, and the receiver's
//! answers are honoured (429 with `Retry-After` retried after that delay, 400 not retried).
//! Log records go the same way, to `/v1/logs`, with their trace.

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry::trace::Tracer as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use throughline_telemetry::config::ExporterKind;
use throughline_telemetry::{FlushOutcome, InitError, Telemetry, TelemetryConfig};

#[derive(Debug, Default, Clone)]
struct Seen {
    paths: Vec<String>,
    authorization: Vec<String>,
    content_encoding: Vec<String>,
    span_names: Vec<String>,
    service_names: Vec<String>,
    /// Each log record's body and trace id.
    logs: Vec<(String, Vec<u8>)>,
    /// When each request arrived, answered or not.
    arrivals: Vec<Instant>,
}

#[derive(Default)]
struct Receiver {
    seen: Mutex<Seen>,
    /// Answers to give before the default 200, in order: status and `Retry-After`.
    script: Mutex<VecDeque<(StatusCode, Option<&'static str>)>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut seen = receiver.seen.lock().expect("receiver lock");
    seen.arrivals.push(Instant::now());
    if let Some((status, retry_after)) = receiver.script.lock().expect("script lock").pop_front() {
        return match retry_after {
            Some(after) => (status, [("retry-after", after)]).into_response(),
            None => status.into_response(),
        };
    }
    let encoding = header("content-encoding");
    let body = match encoding.as_deref() {
        Some("gzip") => {
            let mut plain = Vec::new();
            if flate2::read::GzDecoder::new(body.as_ref())
                .read_to_end(&mut plain)
                .is_err()
            {
                return StatusCode::BAD_REQUEST.into_response();
            }
            Bytes::from(plain)
        }
        _ => body,
    };
    seen.paths.push(uri.path().to_owned());
    seen.authorization.extend(header("authorization"));
    seen.content_encoding.extend(encoding);
    if uri.path() == "/v1/logs" {
        let Ok(request) = ExportLogsServiceRequest::decode(body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let records = request
            .resource_logs
            .into_iter()
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records);
        for record in records {
            let body = match record.body.and_then(|b| b.value) {
                Some(any_value::Value::StringValue(body)) => body,
                other => format!("{other:?}"),
            };
            seen.logs.push((body, record.trace_id));
        }
        return StatusCode::OK.into_response();
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    for rs in request.resource_spans {
        for kv in rs.resource.map(|r| r.attributes).unwrap_or_default() {
            if let ("service.name", Some(any_value::Value::StringValue(name))) =
                (kv.key.as_str(), kv.value.and_then(|v| v.value))
            {
                seen.service_names.push(name);
            }
        }
        for ss in rs.scope_spans {
            seen.span_names.extend(ss.spans.into_iter().map(|s| s.name));
        }
    }
    StatusCode::OK.into_response()
}

/// A receiver on a loopback port of its own, answering as `script` says, then 200.
fn start_receiver(script: &[(StatusCode, Option<&'static str>)]) -> (SocketAddr, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    receiver
        .script
        .lock()
        .expect("script lock")
        .extend(script.iter().copied());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let state = Arc::clone(&receiver);
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
    (addr, receiver)
}

/// Telemetry exporting over http/protobuf to `addr`, with `extra` settings; one span named
/// `name` ended, then a flush of up to 10 s.
fn export_one(addr: SocketAddr, extra: &[(&str, &str)], name: &'static str) -> FlushOutcome {
    let endpoint = format!("http://{addr}");
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_SERVICE_NAME", "checkout"),
    ];
    env.extend_from_slice(extra);
    let config = TelemetryConfig::from_env(env).expect("valid");
    let telemetry = Telemetry::builder(config)
        .build()
        .expect("telemetry builds");
    let tracer = telemetry.tracer("http-test").expect("enabled");
    tracer.in_span(name, |_| {});
    telemetry.flush(Duration::from_secs(10))
}

fn seen(receiver: &Receiver) -> Seen {
    receiver.seen.lock().expect("receiver lock").clone()
}

#[test]
fn http_protobuf_export_uses_the_signal_path_and_decoded_headers() {
    let (addr, receiver) = start_receiver(&[]);
    let outcome = export_one(
        addr,
        &[("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc")],
        "checkout",
    );
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    let seen = seen(&receiver);
    assert_eq!(seen.paths, vec!["/v1/traces".to_owned()]);
    assert_eq!(seen.authorization, vec!["Bearer abc".to_owned()]);
    assert_eq!(seen.span_names, vec!["checkout".to_owned()]);
    assert_eq!(seen.service_names, vec!["checkout".to_owned()]);
    assert!(seen.content_encoding.is_empty(), "{seen:?}");
}

#[test]
fn with_otlp_and_console_listed_the_spans_still_reach_the_otlp_endpoint() {
    let (addr, receiver) = start_receiver(&[]);
    let outcome = export_one(
        addr,
        &[("OTEL_TRACES_EXPORTER", "otlp,console")],
        "both-ways",
    );
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    assert_eq!(seen(&receiver).span_names, vec!["both-ways".to_owned()]);
}

#[test]
fn with_gzip_asked_the_body_is_sent_gzipped() {
    let (addr, receiver) = start_receiver(&[]);
    let outcome = export_one(
        addr,
        &[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")],
        "zipped",
    );
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    let seen = seen(&receiver);
    assert_eq!(seen.content_encoding, vec!["gzip".to_owned()]);
    assert_eq!(seen.span_names, vec!["zipped".to_owned()]);
}

#[test]
fn a_429_with_retry_after_is_retried_after_the_delay_the_receiver_asked() {
    let (addr, receiver) = start_receiver(&[(StatusCode::TOO_MANY_REQUESTS, Some("1"))]);
    let outcome = export_one(addr, &[], "throttled");
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    let seen = seen(&receiver);
    assert_eq!(seen.span_names, vec!["throttled".to_owned()]);
    assert_eq!(seen.arrivals.len(), 2, "one refusal, one retry: {seen:?}");
    // The backoff alone would have waited about 100 ms.
    let waited = seen.arrivals[1] - seen.arrivals[0];
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
}

#[test]
fn a_400_is_not_retried_and_the_flush_fails_naming_the_status() {
    let (addr, receiver) = start_receiver(&[(StatusCode::BAD_REQUEST, None)]);
    let outcome = export_one(addr, &[], "refused");
    let FlushOutcome::Failed(error) = &outcome else {
        panic!("a refused export should fail the flush: {outcome:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains("400") && message.contains(&format!("http://{addr}/v1/traces")),
        "{message}"
    );
    let seen = seen(&receiver);
    assert_eq!(seen.arrivals.len(), 1, "not retried: {seen:?}");
    assert!(seen.span_names.is_empty());
}

#[test]
fn log_records_reach_the_logs_path_gzipped_with_their_trace_id() {
    let (addr, receiver) = start_receiver(&[(StatusCode::SERVICE_UNAVAILABLE, None)]);
    let endpoint = format!("http://{addr}");
    let config = TelemetryConfig::from_env([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_SERVICE_NAME", "checkout"),
    ])
    .expect("valid");
    let telemetry = Telemetry::builder(config)
        .build()
        .expect("telemetry builds");
    let filter = telemetry.log_filter().expect("default filter");
    let mut trace_id = None;
    tracing::subscriber::with_default(telemetry.subscriber(filter, std::io::sink), || {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let span = tracing::info_span!("checkout");
        let _entered = span.enter();
        trace_id = Some(span.context().span().span_context().trace_id());
        tracing::info!(order.id = "ord-1", "order_created");
    });
    let outcome = telemetry.flush(Duration::from_secs(10));
    assert!(outcome.is_exported(), "flush outcome: {outcome:?}");
    let seen = seen(&receiver);
    // One 503, then the retry.
    assert_eq!(seen.arrivals.len(), 2, "{seen:?}");
    assert_eq!(seen.paths, vec!["/v1/logs".to_owned()]);
    assert_eq!(seen.authorization, vec!["Bearer abc".to_owned()]);
    assert_eq!(seen.content_encoding, vec!["gzip".to_owned()]);
    let trace_id = trace_id.expect("a span context").to_bytes().to_vec();
    assert!(
        seen.logs
            .iter()
            .any(|(body, tid)| body.contains("order_created") && *tid == trace_id),
        "{seen:?}"
    );
}

#[test]
fn a_header_http_cannot_carry_stops_set_up_naming_it() {
    // `from_env` refuses such a header itself; a configuration built in code reaches the
    // exporter with it.
    let mut config = TelemetryConfig::from_env([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
    ])
    .expect("valid");
    for exporter in &mut config.traces_exporters {
        if let ExporterKind::Otlp(otlp) = exporter {
            otlp.headers.push(("x tenant".to_owned(), "a".to_owned()));
        }
    }
    match Telemetry::builder(config).build() {
        Err(error @ InitError::HttpHeader { .. }) => {
            assert!(error.to_string().contains("x tenant"), "{error}");
        }
        Err(other) => panic!("expected the header named, got {other}"),
        Ok(_) => panic!("a header name with a space was accepted"),
    }
}
