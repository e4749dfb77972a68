//! No e-mail address in the API's metric labels or in its OTLP log records, on every path that
//! records either: accepted, invalid, duplicate, and a queue that refuses the message. (Spans
//! and log files are checked elsewhere.) One test: it owns the process's global subscriber.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use http::Request;
use onboarding_api::customers::CustomerStore;
use onboarding_api::queue::{MessageQueue, OutgoingMessage, QueueError};
use onboarding_api::{ApiConfig, App, Telemetry};
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::json;
use throughline_telemetry::testing::TestTracing;
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug, Clone, Default)]
struct Refusing(Arc<AtomicBool>);

impl MessageQueue for Refusing {
    fn name(&self) -> &str {
        "onboarding-queue"
    }
    async fn send(&self, _message: OutgoingMessage) -> Result<String, QueueError> {
        if self.0.load(Ordering::SeqCst) {
            return Err(QueueError::Send {
                queue: "onboarding-queue".into(),
                message: "refused for the test".into(),
            });
        }
        Ok("m-1".to_owned())
    }
    async fn probe(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

#[tokio::test]
async fn no_email_address_in_metric_labels_or_log_records() {
    let logs = InMemoryLogExporter::default();
    let logger_provider = SdkLoggerProvider::builder()
        .with_simple_exporter(logs.clone())
        .build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(&logger_provider)),
    )
    .expect("the only subscriber of this test binary");
    let metrics = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();

    let dir = tempfile::tempdir().expect("a temp dir");
    let env = HashMap::from([(
        "DATABASE_URL".to_owned(),
        dir.path().join("db.sqlite3").display().to_string(),
    )]);
    let config = ApiConfig::from_env(&env).expect("a valid configuration");
    let store = CustomerStore::open(&config.database)
        .await
        .expect("the store opens");
    let tracing = TestTracing::new();
    let telemetry = Telemetry {
        tracer: BoxedTracer::new(Box::new(tracing.tracer("onboarding-api"))),
        meter: meter_provider.meter("onboarding-api"),
    };
    let queue = Refusing::default();
    let app = Arc::new(App::new(store, queue.clone(), telemetry, 8000));
    let router = onboarding_api::routes::router(app, config.max_body_bytes);
    let post = |body: serde_json::Value| {
        Request::post("/onboard")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("a request")
    };
    let customer = |id: &str| {
        json!({"customer_id": id, "email": format!("{id}.person@mail.example"),
               "company_name": "Acme", "type": "premium"})
    };
    let mut statuses = Vec::new();
    for request in [
        post(customer("E-1")),
        post(customer("E-1")),
        post(json!({"customer_id": "E-2", "email": "not-an-address@", "type": "premium"})),
    ] {
        statuses.push(
            router
                .clone()
                .oneshot(request)
                .await
                .expect("an answer")
                .status()
                .as_u16(),
        );
    }
    queue.0.store(true, Ordering::SeqCst);
    let refused = router
        .clone()
        .oneshot(post(customer("E-3")))
        .await
        .expect("an answer");
    statuses.push(refused.status().as_u16());
    assert_eq!(statuses, [200, 409, 400, 503]);

    meter_provider.force_flush().expect("metrics flushed");
    let exported = format!("{:?}", metrics.get_finished_metrics().expect("metrics"));
    assert!(
        exported.contains("premium") && exported.contains("duplicate"),
        "{exported}"
    );
    assert!(
        !exported.contains("mail.example") && !exported.contains('@'),
        "{exported}"
    );

    logger_provider.force_flush().expect("logs flushed");
    let records = format!("{:?}", logs.get_emitted_logs().expect("log records"));
    assert!(records.contains("could not be queued"), "{records}");
    assert!(
        !records.contains("mail.example") && !records.contains("not-an-address"),
        "{records}"
    );
}
