//! Each worker on a `placement.created` record as a rule delivers it: the record's CONSUMER span
//! continues the API's PRODUCER span (from `detail._trace`, or from `AWSTraceHeader` alone), the
//! steps are its children, the database moves, the webhook gets `traceparent`; an injected
//! failure lands in `batchItemFailures`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use events_workers::{Kind, Worker, WorkerConfig, WorkerTelemetry};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use serde_json::json;
use throughline_instrument::{EventBridgeProducer, Invocation, SharedTracer};
use throughline_propagation::{PropagatorName, Propagators, format_xray_header};
use throughline_telemetry::testing::TestTracing;
use throughline_testkit::{MOTO_CREDENTIALS, MotoS3};

struct Setup {
    dir: tempfile::TempDir,
    tracing: TestTracing,
    placement: String,
}

fn setup() -> Setup {
    opentelemetry::global::set_text_map_propagator(Propagators::from_names(&[
        PropagatorName::TraceContext,
        PropagatorName::XRay,
    ]));
    let dir = tempfile::tempdir().unwrap();
    let conn = events_db::open(&dir.path().join("events.sqlite3")).unwrap();
    conn.execute(
        "INSERT INTO placements (id, video_id, product_id, start_time, end_time, status, created_at)
         VALUES ('p-1', 'vid-002', 'prod-003', 100, 110, 'created', 'now')",
        [],
    )
    .unwrap();
    Setup {
        dir,
        tracing: TestTracing::new(),
        placement: "p-1".into(),
    }
}

async fn worker(s: &Setup, kind: Kind, extra: &[(&str, &str)]) -> Worker {
    let mut env: HashMap<String, String> = HashMap::from([
        (
            "DATABASE_URL".into(),
            s.dir.path().join("events.sqlite3").display().to_string(),
        ),
        (
            "NEDLIA_FILES_URL".into(),
            s.dir.path().join("files").display().to_string(),
        ),
        ("NEDLIA_WEBHOOK_URL".into(), "http://127.0.0.1:9/".into()),
    ]);
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let tracer: SharedTracer = Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(
        s.tracing.tracer(kind.service_name()),
    )));
    let config = WorkerConfig::from_env(kind, &env).unwrap();
    Worker::new(
        config,
        WorkerTelemetry {
            tracer,
            flush: None,
        },
    )
    .await
    .unwrap()
}

/// A record as the rule delivers it, and the PRODUCER span's context. `detail_trace` false
/// leaves only the `AWSTraceHeader` system attribute.
fn record(s: &Setup, detail_trace: bool) -> (SqsEvent, SpanContext) {
    let producer = EventBridgeProducer::new(s.tracing.tracer("nedlia-api"), "nedlia-events");
    let mut detail = json!({"placement_id": s.placement});
    let span = producer.start_put(&mut detail, []).unwrap();
    let sc = span.context().span().span_context().clone();
    span.end();
    if !detail_trace {
        detail.as_object_mut().unwrap().remove("_trace");
    }
    let envelope =
        json!({"source": "nedlia.api", "detail-type": "placement.created", "detail": detail});
    let mut message = SqsMessage::default();
    message.message_id = Some("m-1".into());
    message.body = Some(envelope.to_string());
    message
        .attributes
        .insert("AWSTraceHeader".into(), format_xray_header(&sc).unwrap());
    let mut event = SqsEvent::default();
    event.records.push(message);
    (event, sc)
}

fn column(s: &Setup, name: &str) -> Option<String> {
    let conn = events_db::open(&s.dir.path().join("events.sqlite3")).unwrap();
    conn.query_row(
        &format!("SELECT {name} FROM placements WHERE id = 'p-1'"),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn the_file_generator_continues_the_trace_from_detail_and_writes_the_file() {
    let s = setup();
    let w = worker(&s, Kind::FileGenerator, &[]).await;
    let (event, producer) = record(&s, true);
    let response = w.handle(event, Invocation::default()).await;
    assert!(response.batch_item_failures.is_empty());
    let spans = s.tracing.spans();
    let process = spans.find("process file-generator-queue");
    assert_eq!(process.parent_span_id, producer.span_id());
    assert_eq!(process.span_context.trace_id(), producer.trace_id());
    spans
        .assert_parent("file_generator.generate", "process file-generator-queue")
        .assert_parent("file_generator.upload_s3", "process file-generator-queue")
        .assert_parent("SELECT products", "file_generator.generate")
        .assert_parent("UPDATE placements", "file_generator.upload_s3");
    let file = std::fs::read_to_string(s.dir.path().join("files/placements/p-1.json")).unwrap();
    let file: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(file["product"]["name"], "Chef Knife");
    assert_eq!(
        column(&s, "file_key").as_deref(),
        Some("placements/p-1.json")
    );
}

#[tokio::test]
async fn the_file_generator_uploads_to_s3_when_configured_moto_as_the_peer() {
    let moto = tokio::task::spawn_blocking(|| MotoS3::start("nedlia-files"))
        .await
        .unwrap();
    let s = setup();
    let endpoint = moto.endpoint();
    let mut env = vec![
        ("NEDLIA_FILES_URL", "s3://nedlia-files/generated"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_MAX_ATTEMPTS", "2"),
    ];
    env.extend(MOTO_CREDENTIALS);
    let w = worker(&s, Kind::FileGenerator, &env).await;
    let (event, producer) = record(&s, true);
    let response = w.handle(event, Invocation::default()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let spans = s.tracing.spans();
    assert_eq!(
        spans.find("process file-generator-queue").parent_span_id,
        producer.span_id()
    );
    spans.assert_parent("file_generator.upload_s3", "process file-generator-queue");
    // The object is in the bucket under the URL's prefix, as another S3 client reads it.
    let objects = tokio::task::spawn_blocking(move || {
        let objects = moto.json_objects("nedlia-files", "generated/");
        (objects, moto)
    })
    .await
    .unwrap()
    .0;
    let file = &objects["generated/placements/p-1.json"];
    assert_eq!(file["placement_id"], "p-1");
    assert_eq!(file["product"]["name"], "Chef Knife");
    assert!(
        !s.dir.path().join("files").exists(),
        "nothing written locally"
    );
    assert_eq!(
        column(&s, "file_key").as_deref(),
        Some("placements/p-1.json")
    );
}

#[tokio::test]
async fn an_unreachable_s3_endpoint_fails_the_record_not_the_batch() {
    let s = setup();
    let endpoint = format!("http://{}", throughline_testkit::free_loopback_addr());
    let mut env = vec![
        ("NEDLIA_FILES_URL", "s3://nedlia-files"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ];
    env.extend(MOTO_CREDENTIALS);
    let w = worker(&s, Kind::FileGenerator, &env).await;
    let (event, _) = record(&s, true);
    let response = w.handle(event, Invocation::default()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    s.tracing
        .spans()
        .assert_attribute("file_generator.upload_s3", "error.type", "object_store");
    assert_eq!(column(&s, "file_key"), None);
}

#[tokio::test]
async fn without_detail_trace_the_xray_header_alone_joins_the_trace() {
    let s = setup();
    let w = worker(&s, Kind::Validator, &[]).await;
    let (event, producer) = record(&s, false);
    let response = w.handle(event, Invocation::default()).await;
    assert!(response.batch_item_failures.is_empty());
    let spans = s.tracing.spans();
    let process = spans.find("process validator-queue");
    assert_eq!(
        (process.span_context.trace_id(), process.parent_span_id),
        (producer.trace_id(), producer.span_id())
    );
    spans.assert_parent("validator.validate", "process validator-queue");
    spans.assert_attribute("validator.validate", "placement.status", "valid");
    assert_eq!(column(&s, "status").as_deref(), Some("valid"));
}

#[tokio::test]
async fn the_notifier_calls_the_webhook_under_its_client_span() {
    let s = setup();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let router = {
        let seen = Arc::clone(&seen);
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = Arc::clone(&seen);
                async move {
                    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                        seen.lock().unwrap().push(tp.to_owned());
                    }
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let w = worker(&s, Kind::Notifier, &[("NEDLIA_WEBHOOK_URL", &url)]).await;
    let (event, _) = record(&s, true);
    let response = w.handle(event, Invocation::default()).await;
    assert!(response.batch_item_failures.is_empty());
    let spans = s.tracing.spans();
    spans
        .assert_parent("notifier.send_notification", "process notifier-queue")
        .assert_parent("POST", "notifier.send_notification");
    let client = spans.find("POST").span_context.clone();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("00-{}-{}-01", client.trace_id(), client.span_id())]
    );
    assert!(column(&s, "notified_at").is_some());
}

#[tokio::test]
async fn an_injected_failure_is_a_batch_item_failure_and_the_record_is_left_alone() {
    let s = setup();
    let w = worker(&s, Kind::Validator, &[("NEDLIA_FAILURE_RATE", "1")]).await;
    let (event, _) = record(&s, true);
    let response = w.handle(event, Invocation::default()).await;
    assert_eq!(response.batch_item_failures[0].item_identifier, "m-1");
    s.tracing
        .spans()
        .assert_attribute("process validator-queue", "error.type", "injected");
    assert_eq!(column(&s, "status").as_deref(), Some("created"));
}

#[tokio::test]
async fn a_webhook_that_answers_an_error_fails_the_record() {
    let s = setup();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let w = worker(&s, Kind::Notifier, &[("NEDLIA_WEBHOOK_URL", &url)]).await;
    let (event, _) = record(&s, true);
    let response = w.handle(event, Invocation::default()).await;
    assert_eq!(response.batch_item_failures[0].item_identifier, "m-1");
    s.tracing
        .spans()
        .assert_attribute("notifier.send_notification", "error.type", "webhook")
        .assert_attribute("process notifier-queue", "error.type", "webhook");
    assert!(column(&s, "notified_at").is_none());
}
