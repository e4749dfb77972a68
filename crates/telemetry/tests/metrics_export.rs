//! Metrics follow the same `OTEL_*` settings as traces: with the generic endpoint on an HTTP
//! receiver and the specification's default protocol (`http/protobuf`), the service's metrics
//! arrive at `/v1/metrics` over HTTP, from the builder and from `metrics::install` alike; and a
//! bad metrics setting stops start-up naming it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::post;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message as _;
use throughline_telemetry::{Telemetry, TelemetryConfig};

type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

async fn receive(State(seen): State<Seen>, uri: Uri, body: Bytes) -> StatusCode {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let names = request
        .resource_metrics
        .into_iter()
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
        .map(|m| m.name)
        .collect();
    seen.lock()
        .expect("receiver lock")
        .push((uri.path().to_owned(), names));
    StatusCode::OK
}

/// An OTLP/HTTP (HTTP/1.1 only) receiver on loopback, on its own runtime thread.
fn http_receiver() -> (String, Seen) {
    let seen = Seen::default();
    let state = Arc::clone(&seen);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
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
    (format!("http://{addr}"), seen)
}

fn received(seen: &Seen) -> Vec<(String, Vec<String>)> {
    seen.lock().expect("receiver lock").clone()
}

#[test]
fn the_builder_exports_metrics_over_http_protobuf_by_default() {
    let (endpoint, seen) = http_receiver();
    let config = TelemetryConfig::from_env([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_TRACES_EXPORTER", "none"),
    ])
    .expect("valid config");
    let telemetry = Telemetry::builder(config)
        .default_service_name("metrics-test")
        .build()
        .expect("telemetry builds");
    let provider = telemetry
        .meter_provider()
        .expect("metrics are on by default");
    let counter = provider.meter("test").u64_counter("test.requests").build();
    counter.add(3, &[]);
    let outcome = telemetry.shutdown(Duration::from_secs(5));
    assert!(outcome.is_exported(), "{outcome:?}");
    let got = received(&seen);
    assert!(
        got.iter().any(
            |(path, names)| path == "/v1/metrics" && names.iter().any(|n| n == "test.requests")
        ),
        "{got:?}"
    );
}

#[test]
fn metrics_install_honours_the_protocol_too() {
    let (endpoint, seen) = http_receiver();
    let env = HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint)]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let provider = {
        let _entered = rt.enter();
        throughline_telemetry::metrics::install(&env, "metrics-test", Duration::from_secs(60))
            .expect("metrics are on")
    };
    provider
        .meter("test")
        .u64_counter("test.installed")
        .build()
        .add(1, &[]);
    let shut = rt.block_on(async move {
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .expect("shutdown task")
    });
    assert!(shut.is_ok(), "{shut:?}");
    let got = received(&seen);
    assert!(
        got.iter()
            .any(|(path, names)| path == "/v1/metrics"
                && names.iter().any(|n| n == "test.installed")),
        "{got:?}"
    );
}

#[test]
fn bad_metrics_settings_stop_start_up_naming_them() {
    for (variable, value) in [
        ("OTEL_METRICS_EXPORTER", "bogus"),
        ("OTEL_METRICS_EXPORTER", "console"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "carrier-pigeon"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "not a url"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "sideways",
        ),
    ] {
        let err = TelemetryConfig::from_env([(variable, value)]).expect_err(value);
        assert!(
            err.to_string().contains(variable),
            "{variable}={value}: {err}"
        );
    }
    let off =
        TelemetryConfig::from_env([("OTEL_METRICS_EXPORTER", "none")]).expect("none is valid");
    let telemetry = Telemetry::builder(off).build().expect("builds");
    assert!(telemetry.meter_provider().is_none());
}
