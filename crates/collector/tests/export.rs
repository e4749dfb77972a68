//! Forwarding upstream against peers nobody here wrote: the official `opentelemetry-proto`
//! Python package's generated OTLP services (gRPC, via grpcio) and an OTLP/HTTP receiver, told
//! to fail, throttle or hang; and a second throughline collector as upstream.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::upstream::Upstream;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use serde_json::json;
use throughline_collector::export::{
    Destination, ExportDefaults, ExportSettings, Exporter, QueueConfig, RetryPolicy,
};
use throughline_collector::{Collector, CollectorConfig, ForwardOnly, RunningCollector};
use throughline_store::ExportTraceServiceRequest;
use throughline_store::testdata::seeds_like_batch;
use tonic_types::StatusExt;

/// Long enough for a slow CI machine, short enough to fail fast.
const ARRIVAL: Duration = Duration::from_secs(30);

fn spans_in(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

struct Forwarder {
    running: RunningCollector,
    exporter: Arc<Exporter>,
    _dir: tempfile::TempDir,
}

impl Forwarder {
    fn grpc(&self) -> String {
        format!("http://{}", self.running.grpc_addr)
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    }
}

/// A forward-only collector exporting to `urls`, with `tune` applied to the settings.
async fn forwarder(
    urls: &[String],
    defaults: ExportDefaults,
    tune: impl FnOnce(&mut ExportSettings),
) -> Forwarder {
    let destinations = urls
        .iter()
        .map(|u| Destination::parse("--export-otlp", u, &defaults).expect("a valid URL"))
        .collect();
    forwarder_to(destinations, tune).await
}

/// A forward-only collector exporting to `destinations`, with `tune` applied to the settings.
async fn forwarder_to(
    destinations: Vec<Destination>,
    tune: impl FnOnce(&mut ExportSettings),
) -> Forwarder {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = ExportSettings::new(destinations, dir.path().join("export"));
    settings.retry = fast_retries();
    tune(&mut settings);
    let exporter = Exporter::open(settings).expect("the exporter opens");
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        query_addr: loopback,
        ..CollectorConfig::default()
    };
    let running = Collector::start_forwarding(
        config,
        Arc::new(ForwardOnly),
        Arc::new(ForwardOnly),
        None,
        Some(Arc::clone(&exporter)),
    )
    .await
    .expect("the forwarder starts");
    Forwarder {
        running,
        exporter,
        _dir: dir,
    }
}

async fn upstream() -> Upstream {
    tokio::task::spawn_blocking(Upstream::start)
        .await
        .expect("the upstream starts")
}

fn figure(
    exporter: &Exporter,
    pick: impl Fn(&throughline_collector::export::OutputFigures) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    pick(&exporter.outputs()[0].figures).load(std::sync::atomic::Ordering::Relaxed)
}

async fn send_batches(url: String, batches: std::ops::Range<u64>, start: u64) -> u64 {
    let mut client = TraceServiceClient::connect(url)
        .await
        .expect("gRPC connects");
    let mut spans = 0;
    for batch in batches {
        let request = seeds_like_batch(batch, 8, start);
        spans += spans_in(&request);
        client
            .export(request)
            .await
            .expect("the forwarder acknowledges");
    }
    spans
}

fn log_request(n: usize) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        body: Some(throughline_store::AnyValue {
                            value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                format!("log line {i}"),
                            )),
                        }),
                        ..LogRecord::default()
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn metric_request(n: usize) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: (0..n)
                    .map(|i| Metric {
                        name: format!("m{i}"),
                        ..Metric::default()
                    })
                    .collect(),
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_logs_and_metrics_reach_a_grpc_upstream_with_the_configured_headers() {
    let up = upstream().await;
    let defaults = ExportDefaults {
        headers: vec![("authorization".into(), "Bearer test-token".into())],
        ..ExportDefaults::default()
    };
    let fwd = forwarder(&[up.grpc_url()], defaults, |_| {}).await;
    let start = common::now_nanos();
    let spans = send_batches(fwd.grpc(), 0..20, start).await;
    LogsServiceClient::connect(fwd.grpc())
        .await
        .expect("connects")
        .export(log_request(7))
        .await
        .expect("logs acknowledged");
    MetricsServiceClient::connect(fwd.grpc())
        .await
        .expect("connects")
        .export(metric_request(5))
        .await
        .expect("metrics acknowledged");
    let stats = up
        .wait_for(ARRIVAL, |s| {
            s.spans >= spans && s.logs >= 7 && s.metrics >= 5
        })
        .await;
    assert_eq!(
        (stats.spans, stats.logs, stats.metrics),
        (spans, 7, 5),
        "{stats:?}"
    );
    assert_eq!(stats.duplicates, 0);
    assert_eq!(
        stats.headers.get("authorization").map(String::as_str),
        Some("Bearer test-token")
    );
    assert!(
        stats.requests < 22,
        "consecutive trace exports are batched: {} requests",
        stats.requests
    );
    fwd.exporter.flush(ARRIVAL).await;
    assert_eq!(
        fwd.exporter.outputs()[0].queue.depth().records,
        0,
        "the queue empties once accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_gets_gzip_protobuf_and_its_429_retry_after_is_honoured() {
    let up = upstream().await;
    up.control(json!({"mode": "throttle", "times": 2, "retry_after": 1}))
        .await;
    let fwd = forwarder(&[up.http_url()], ExportDefaults::default(), |_| {}).await;
    let began = std::time::Instant::now();
    let spans = send_batches(fwd.grpc(), 0..5, common::now_nanos()).await;
    let stats = up.wait_for(ARRIVAL, |s| s.spans >= spans).await;
    assert_eq!(stats.spans, spans, "{stats:?}");
    assert_eq!(stats.refused, 2);
    assert_eq!(figure(&fwd.exporter, |f| &f.retries), 2);
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "two Retry-After: 1 waits, not 50 ms backoffs"
    );
    assert_eq!(
        stats.headers.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_resource_exhausted_with_retry_info_is_retried_after_the_delay() {
    let up = upstream().await;
    up.control(json!({"mode": "throttle", "times": 2, "retry_after": 1}))
        .await;
    let fwd = forwarder(&[up.grpc_url()], ExportDefaults::default(), |_| {}).await;
    let began = std::time::Instant::now();
    let spans = send_batches(fwd.grpc(), 0..3, common::now_nanos()).await;
    let stats = up.wait_for(ARRIVAL, |s| s.spans >= spans).await;
    assert_eq!((stats.spans, stats.duplicates), (spans, 0), "{stats:?}");
    assert_eq!(figure(&fwd.exporter, |f| &f.retries), 2);
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "the RetryInfo delay is waited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_and_partial_successes_are_counted_not_retried() {
    let up = upstream().await;
    let fwd = forwarder(&[up.grpc_url()], ExportDefaults::default(), |_| {}).await;
    up.control(json!({"mode": "invalid", "times": 1})).await;
    let first = send_batches(fwd.grpc(), 0..1, common::now_nanos()).await;
    let stats = up.wait_for(ARRIVAL, |s| s.refused >= 1).await;
    assert_eq!(stats.refused, 1);
    assert!(
        fwd.exporter.flush(ARRIVAL).await,
        "a permanent error leaves the queue"
    );
    assert_eq!(figure(&fwd.exporter, |f| &f.failed_items), first);
    assert_eq!(
        figure(&fwd.exporter, |f| &f.retries),
        0,
        "INVALID_ARGUMENT is not retried"
    );
    up.control(json!({"mode": "partial", "times": 1})).await;
    let second = send_batches(fwd.grpc(), 1..2, common::now_nanos()).await;
    up.wait_for(ARRIVAL, |s| s.spans >= second).await;
    assert!(fwd.exporter.flush(ARRIVAL).await);
    assert_eq!(
        figure(&fwd.exporter, |f| &f.rejected_items),
        1,
        "the partial success's rejection"
    );
    assert_eq!(figure(&fwd.exporter, |f| &f.sent_items), second - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_upstream_times_out_and_the_data_is_sent_again() {
    let up = upstream().await;
    up.control(json!({"mode": "hang", "times": 1})).await;
    let defaults = ExportDefaults {
        timeout: Duration::from_millis(500),
        ..ExportDefaults::default()
    };
    let fwd = forwarder(&[up.grpc_url()], defaults, |_| {}).await;
    let spans = send_batches(fwd.grpc(), 0..2, common::now_nanos()).await;
    let stats = up.wait_for(ARRIVAL, |s| s.spans >= spans).await;
    assert_eq!(stats.spans, spans, "{stats:?}");
    assert!(figure(&fwd.exporter, |f| &f.retries) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_resource_exhausted_and_429_and_keeps_nothing_it_refused() {
    let up = upstream().await;
    up.control(json!({"mode": "unavailable", "times": -1}))
        .await;
    let fwd = forwarder(&[up.grpc_url()], ExportDefaults::default(), |s| {
        s.queue = QueueConfig {
            max_bytes: 20_000,
            ..QueueConfig::default()
        };
    })
    .await;
    let mut client = TraceServiceClient::connect(fwd.grpc())
        .await
        .expect("connects");
    let start = common::now_nanos();
    let mut acknowledged = 0;
    let mut refusal = None;
    for batch in 0..200 {
        let request = seeds_like_batch(batch, 8, start);
        let spans = spans_in(&request);
        match client.export(request).await {
            Ok(_) => acknowledged += spans,
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let status = refusal.expect("the bounded queue fills up");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.get_details_retry_info().is_some(),
        "retryable: RetryInfo present"
    );
    let http = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", fwd.running.http_addr))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&seeds_like_batch(
            999, 8, start,
        )))
        .send()
        .await
        .expect("OTLP/HTTP answers");
    assert_eq!(http.status(), 429);
    assert!(http.headers().contains_key("retry-after"));
    let metrics = reqwest::get(format!("http://{}/metrics", fwd.running.query_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("reason=\"export_queue_full\""),
        "refusals counted"
    );
    assert!(
        metrics.contains("throughline_export_queue_items{destination="),
        "depth on /metrics"
    );
    // The upstream comes back: everything acknowledged arrives, nothing refused does.
    up.control(json!({"mode": "ok"})).await;
    let stats = up.wait_for(ARRIVAL, |s| s.spans >= acknowledged).await;
    assert_eq!(
        (stats.spans, stats.duplicates),
        (acknowledged, 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_throughline_collector_as_upstream_stores_what_the_first_forwards() {
    let second = common::start().await;
    let url = format!("grpc://{}", second.running.grpc_addr);
    let fwd = forwarder(&[url], ExportDefaults::default(), |_| {}).await;
    let start = common::now_nanos();
    send_batches(fwd.grpc(), 0..4, start).await;
    assert!(
        fwd.exporter.flush(ARRIVAL).await,
        "the second collector accepted everything"
    );
    let trace = throughline_store::testdata::TwoServiceTrace::new(3 * 8 + 1, start);
    let url = second.query_url(&format!("/api/traces/{}", trace.trace_id));
    let body: serde_json::Value = reqwest::get(url)
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(
        body["data"][0]["traceID"],
        trace.trace_id.to_string(),
        "{body}"
    );
    assert!(
        second
            .running
            .ingest()
            .metrics()
            .stored(throughline_collector::Signal::Traces)
            >= 4 * 8 * 4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_email_or_bearer_token_reaches_the_store_or_the_upstream() {
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use throughline_collector::processors::{Processors, Redaction};
    let up = upstream().await;
    up.control(json!({"record": true})).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (sink, reader) = common::open_store(dir.path());
    let destination =
        Destination::parse("--export-otlp", &up.grpc_url(), &ExportDefaults::default())
            .expect("url");
    let mut settings = ExportSettings::new(vec![destination], dir.path().join("export"));
    settings.retry = fast_retries();
    let exporter = Exporter::open(settings).expect("opens");
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        query_addr: loopback,
        ..CollectorConfig::default()
    };
    let pipeline = throughline_collector::Pipeline {
        processors: Arc::new(Processors {
            redaction: Some(Redaction::default()),
            ..Processors::default()
        }),
        exporter: Some(Arc::clone(&exporter)),
        tail_sampling: None,
    };
    let running = Collector::start_pipeline(config, sink, Arc::clone(&reader), None, pipeline)
        .await
        .expect("starts");
    let url = format!("http://{}", running.grpc_addr);
    let mut request = common::two_service_trace(7, common::now_nanos());
    let span = &mut request.resource_spans[0].scope_spans[0].spans[0];
    span.attributes
        .push(common::kv("user.email", "jane.doe@example.com"));
    span.attributes.push(common::kv(
        "http.request.header.authorization",
        "Bearer s3cr3t-token",
    ));
    span.attributes.push(common::kv(
        "note",
        "paid with 4111 1111 1111 1111 by bob@corp.io",
    ));
    span.events.push(Event {
        name: "login".into(),
        attributes: vec![common::kv("who", "mail me at eve@example.org")],
        ..Event::default()
    });
    let trace_id = throughline_store::TraceId::from_slice(&span.trace_id).expect("16 bytes");
    TraceServiceClient::connect(url.clone())
        .await
        .expect("connects")
        .export(request)
        .await
        .expect("acknowledged");
    let mut logs = log_request(1);
    logs.resource_logs[0].scope_logs[0].log_records[0].body = Some(throughline_store::AnyValue {
        value: Some(
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                "sent receipt to jane.doe@example.com with header Authorization: Bearer abc.def"
                    .into(),
            ),
        ),
    });
    LogsServiceClient::connect(url)
        .await
        .expect("connects")
        .export(logs)
        .await
        .expect("acknowledged");
    assert!(exporter.flush(ARRIVAL).await, "forwarded");
    let secrets = [
        "@example.com",
        "@corp.io",
        "@example.org",
        "s3cr3t-token",
        "abc.def",
        "4111 1111",
    ];
    let upstream_strings = up.strings().await;
    assert!(
        upstream_strings.iter().any(|s| s.contains("[REDACTED]")),
        "the upstream got the masked values"
    );
    for s in &upstream_strings {
        assert!(
            !secrets.iter().any(|secret| s.contains(secret)),
            "upstream received {s:?}"
        );
    }
    let stored = format!("{:?}", reader.trace(trace_id).expect("read"));
    assert!(
        stored.contains("[REDACTED]"),
        "the store holds the masked values"
    );
    for secret in secrets {
        assert!(!stored.contains(secret), "the store kept {secret}");
    }
    let metrics = reqwest::get(format!("http://{}/metrics", running.query_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("throughline_collector_redacted_values_total{rule=\"email\"} 4"),
        "{metrics}"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_signal_variables_route_each_signal_to_its_own_endpoint() {
    let up = upstream().await;
    let traces = format!("{}/v1/traces", up.http_url());
    let logs = format!("http://127.0.0.1:{}", up.grpc_port);
    let vars = [
        // Used as-is over HTTP: the path is not appended to.
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces.as_str()),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs.as_str()),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "true"),
        // No metrics endpoint: metrics are not forwarded.
    ];
    let var = |k: &str| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    };
    let destinations = Destination::all_from_env(var, |_| Ok(())).expect("valid variables");
    assert_eq!(destinations.len(), 2, "{destinations:#?}");
    let fwd = forwarder_to(destinations, |_| {}).await;
    let exporter = Arc::clone(&fwd.exporter);
    let url = fwd.grpc();
    let spans = send_batches(url.clone(), 0..3, common::now_nanos()).await;
    LogsServiceClient::connect(url.clone())
        .await
        .expect("connects")
        .export(log_request(4))
        .await
        .expect("logs acknowledged");
    MetricsServiceClient::connect(url)
        .await
        .expect("connects")
        .export(metric_request(3))
        .await
        .expect("metrics acknowledged (kept nowhere: no destination takes them)");
    assert!(exporter.flush(ARRIVAL).await, "the queues empty");
    let stats = up.stats().await;
    assert_eq!(
        (stats.spans, stats.logs, stats.metrics),
        (spans, 4, 0),
        "{stats:?}"
    );
    for output in exporter.outputs() {
        assert_eq!(
            output
                .figures
                .failed_items
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "{} took every request it was sent",
            output.destination.name
        );
    }
    fwd.running.shutdown().await;
}
