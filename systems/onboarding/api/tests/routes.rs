//! The routes on SQLite with a queue in memory (or a real SQS client whose broker is down):
//! the `Content-Type` rule of `POST /onboard`, the `traceresponse` header, the SERVER span's
//! parent, and `/health` answering 503 when the queue does not answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::Request;
use onboarding_api::customers::CustomerStore;
use onboarding_api::queue::{MessageQueue, OutgoingMessage, QueueError, SqsQueue, sqs_client};
use onboarding_api::{ApiConfig, App, Telemetry};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::SpanKind;
use serde_json::{Value, json};
use throughline_instrument::{SendOperation, SendReceipt};
use throughline_telemetry::testing::TestTracing;
use tower::ServiceExt as _;

/// A queue that keeps what it is sent.
#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<OutgoingMessage>>>);

impl MessageQueue for Kept {
    fn name(&self) -> &str {
        "onboarding-queue"
    }
    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        let mut sent = self.0.lock().expect("queue lock");
        sent.push(message);
        Ok(format!("m-{}", sent.len()))
    }
    async fn probe(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

struct Api<Q> {
    router: Router,
    queue: Q,
    tracing: TestTracing,
    _dir: tempfile::TempDir,
}

async fn api<Q: MessageQueue + Clone>(queue: Q) -> Api<Q> {
    api_with(queue, &[]).await
}

async fn api_with<Q: MessageQueue + Clone>(queue: Q, extra: &[(&str, &str)]) -> Api<Q> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut env = HashMap::from([(
        "DATABASE_URL".to_owned(),
        dir.path().join("db.sqlite3").display().to_string(),
    )]);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = ApiConfig::from_env(&env).expect("a valid configuration");
    let store = CustomerStore::open(&config.database)
        .await
        .expect("the SQLite store opens");
    let tracing = TestTracing::new();
    let telemetry = Telemetry {
        tracer: BoxedTracer::new(Box::new(tracing.tracer("onboarding-api"))),
        meter: opentelemetry::global::meter("test"),
    };
    let app = Arc::new(
        App::new(store, queue.clone(), telemetry, 8000).with_db_semconv(config.db_semconv),
    );
    Api {
        router: onboarding_api::routes::router(app, config.max_body_bytes),
        queue,
        tracing,
        _dir: dir,
    }
}

fn onboard(content_type: Option<&str>, id: &str) -> Request<Body> {
    let mut request = Request::post("/onboard");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let body = json!({"customer_id": id, "email": format!("{id}@example.com"),
                      "company_name": "Acme", "type": "premium"});
    request
        .body(Body::from(body.to_string()))
        .expect("a request")
}

async fn answer(router: &Router, request: Request<Body>) -> (u16, http::HeaderMap, Value) {
    let response = router.clone().oneshot(request).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("a body");
    (
        parts.status.as_u16(),
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn onboard_answers_415_unless_the_body_is_declared_json() {
    let api = api(Kept::default()).await;
    for (n, content_type) in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _, body) = answer(&api.router, onboard(content_type, &format!("C-{n}"))).await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert_eq!(body["fields"][0]["field"], "content-type", "{body}");
    }
    assert!(
        api.queue.0.lock().unwrap().is_empty(),
        "a refused request was queued"
    );
    for (n, content_type) in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _, body) =
            answer(&api.router, onboard(Some(content_type), &format!("OK-{n}"))).await;
        assert_eq!(status, 200, "{content_type}: {body}");
    }
}

#[tokio::test]
async fn traceresponse_names_the_server_span_of_the_callers_trace_and_health_has_none() {
    opentelemetry::global::set_text_map_propagator(
        throughline_propagation::TraceContextPropagator::new(),
    );
    let api = api(Kept::default()).await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = onboard(Some("application/json"), "TR-1");
    request
        .headers_mut()
        .insert("traceparent", caller.parse().unwrap());
    let (status, headers, body) = answer(&api.router, request).await;
    assert_eq!(status, 200, "{body}");
    let traceresponse = headers["traceresponse"].to_str().expect("ASCII");
    let spans = api.tracing.spans();
    let server = spans.find("POST /onboard");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(
        traceresponse,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            server.span_context.span_id()
        )
    );
    assert_eq!(body["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // The message carries the PRODUCER span, a child of the SERVER span.
    spans.assert_parent("send onboarding-queue", "POST /onboard");
    let sent = api.queue.0.lock().unwrap()[0].attributes["traceparent"].clone();
    let producer = spans.find("send onboarding-queue");
    assert_eq!(
        sent,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            producer.span_context.span_id()
        )
    );

    // A 404 is traced and named; a health check is neither.
    let (status, headers, _) = answer(
        &api.router,
        Request::get("/customers/NOBODY")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(headers.contains_key("traceresponse"));
    let (status, headers, _) = answer(
        &api.router,
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("traceresponse"), "{headers:?}");
    let spans = api.tracing.spans();
    assert!(
        spans.find_all("GET /health").is_empty(),
        "{}",
        spans.render()
    );
    assert_eq!(
        spans.find_all("GET /customers/{id}").len(),
        1,
        "{}",
        spans.render()
    );
}

#[tokio::test]
async fn health_answers_503_naming_the_queue_when_its_broker_is_down() {
    // A real SQS client pointed at a port nothing listens on.
    let port = throughline_testkit::free_loopback_addr().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = sqs_client(Some(&endpoint), "us-east-1").await;
    let url = format!("{endpoint}/000000000000/onboarding-queue");
    let queue = SqsQueue::at_url(client, "onboarding-queue", &url, Duration::from_secs(2));
    let api = api(queue).await;
    let (status, _, health) = answer(
        &api.router,
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["dependencies"]["database"]["status"], "healthy");
    assert_eq!(health["dependencies"]["queue"]["status"], "unhealthy");
    let error = health["dependencies"]["queue"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.starts_with("queue onboarding-queue"), "{error}");

    // And an onboarding request is a 503 whose customer is not kept.
    let (status, _, body) = answer(&api.router, onboard(Some("application/json"), "DOWN-1")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"],
        "onboarding queue onboarding-queue unavailable"
    );
    let spans = api.tracing.spans();
    spans
        .assert_attribute("send onboarding-queue", "error.type", "queue")
        .assert_attribute("POST /onboard", "error.type", "queue");
}

/// A queue whose every message left in a batch of three.
#[derive(Debug, Clone, Default)]
struct Batched;

impl MessageQueue for Batched {
    fn name(&self) -> &str {
        "onboarding-queue"
    }
    async fn send(&self, _message: OutgoingMessage) -> Result<String, QueueError> {
        Ok("m-1".to_owned())
    }
    async fn send_message(&self, _message: OutgoingMessage) -> Result<SendReceipt, QueueError> {
        Ok(SendReceipt::new(
            "m-1",
            SendOperation::SendMessageBatch { message_count: 3 },
        ))
    }
    async fn probe(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

#[tokio::test]
async fn the_send_span_names_the_call_that_carried_the_message() {
    let alone = api(Kept::default()).await;
    let (status, _, body) = answer(&alone.router, onboard(Some("application/json"), "S-1")).await;
    assert_eq!(status, 200, "{body}");
    let spans = alone.tracing.spans();
    spans
        .assert_attribute(
            "send onboarding-queue",
            "messaging.operation.name",
            "SendMessage",
        )
        .assert_attribute("send onboarding-queue", "messaging.message.id", "m-1");
    assert!(
        spans
            .find("send onboarding-queue")
            .attributes
            .iter()
            .all(|kv| kv.key.as_str() != "messaging.batch.message_count")
    );

    let batched = api(Batched).await;
    let (status, _, body) = answer(&batched.router, onboard(Some("application/json"), "S-2")).await;
    assert_eq!(status, 200, "{body}");
    batched
        .tracing
        .spans()
        .assert_attribute(
            "send onboarding-queue",
            "messaging.operation.name",
            "SendMessageBatch",
        )
        .assert_attribute(
            "send onboarding-queue",
            "messaging.batch.message_count",
            3_i64,
        );
}

#[tokio::test]
async fn database_dup_in_the_env_map_adds_the_old_database_names() {
    let stable = api(Kept::default()).await;
    answer(&stable.router, onboard(Some("application/json"), "D-1")).await;
    let spans = stable.tracing.spans();
    let insert = spans.find("INSERT customers");
    assert!(
        insert
            .attributes
            .iter()
            .all(|kv| kv.key.as_str() != "db.system"),
        "{:?}",
        insert.attributes
    );

    let dup = api_with(
        Kept::default(),
        &[("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database/dup")],
    )
    .await;
    let (status, _, body) = answer(&dup.router, onboard(Some("application/json"), "D-2")).await;
    assert_eq!(status, 200, "{body}");
    dup.tracing
        .spans()
        .assert_attribute("INSERT customers", "db.system.name", "sqlite")
        .assert_attribute("INSERT customers", "db.system", "sqlite")
        .assert_attribute("INSERT customers", "db.operation.name", "INSERT")
        .assert_attribute("INSERT customers", "db.operation", "INSERT")
        .assert_attribute("INSERT customers", "db.sql.table", "customers");
}
