//! The API's routes on a real PostgreSQL server: POST /onboard stores the row, a duplicate is a
//! 409, GET /customers/{id} reads what the worker wrote, /health checks the database, the
//! database spans name PostgreSQL, and the URL's password shows nowhere: not in /health, not in
//! an answer, not on a span, not in a start-up error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use http::Request;
use onboarding_api::customers::CustomerStore;
use onboarding_api::queue::{MessageQueue, OutgoingMessage, QueueError};
use onboarding_api::{ApiConfig, App, Telemetry};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Value, json};
use throughline_testkit::PostgresServer;
use tower::ServiceExt as _;

const PASSWORD: &str = "pg-secret-7731";

/// A queue that keeps what it is sent, and can be told to fail.
#[derive(Debug, Default)]
struct Queue {
    sent: Mutex<Vec<OutgoingMessage>>,
    fail: AtomicBool,
    count: AtomicUsize,
}

/// The queue as the app holds it; the test keeps another handle.
#[derive(Debug, Clone)]
struct SharedQueue(Arc<Queue>);

impl MessageQueue for SharedQueue {
    fn name(&self) -> &str {
        "onboarding-queue"
    }
    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        if self.0.fail.load(Ordering::SeqCst) {
            return Err(QueueError::Send {
                queue: "onboarding-queue".into(),
                message: "refused for the test".into(),
            });
        }
        self.0.sent.lock().expect("queue lock").push(message);
        Ok(format!("m-{}", self.0.count.fetch_add(1, Ordering::SeqCst)))
    }
    async fn probe(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

struct Api {
    router: Router,
    queue: Arc<Queue>,
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
}

fn config(database_url: &str) -> ApiConfig {
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("DATABASE_CONNECT_TIMEOUT_MS".to_owned(), "1000".to_owned()),
    ]);
    ApiConfig::from_env(&env).expect("a valid configuration")
}

fn telemetry() -> (Telemetry, InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let telemetry = Telemetry {
        tracer: BoxedTracer::new(Box::new(provider.tracer("onboarding-api"))),
        meter: opentelemetry::global::meter("test"),
    };
    (telemetry, exporter, provider)
}

async fn api(database_url: &str) -> Api {
    let config = config(database_url);
    let store = CustomerStore::open(&config.database)
        .await
        .expect("the PostgreSQL store opens");
    let queue = Arc::new(Queue::default());
    let (telemetry, exporter, provider) = telemetry();
    let app = Arc::new(App::new(store, SharedQueue(queue.clone()), telemetry, 8000));
    Api {
        router: onboarding_api::routes::router(app, config.max_body_bytes),
        queue,
        exporter,
        _provider: provider,
    }
}

async fn call(router: &Router, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(!text.contains(PASSWORD), "{method} {uri} answered {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn customer(id: &str) -> Value {
    json!({"customer_id": id, "email": format!("{id}@example.com"), "company_name": "Acme",
           "type": "premium"})
}

fn attr(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn assert_no_password_on(spans: &[SpanData]) {
    for s in spans {
        let shown = format!("{:?} {:?} {:?}", s.name, s.attributes, s.status);
        assert!(!shown.contains(PASSWORD), "span {}: {shown}", s.name);
    }
}

#[tokio::test]
async fn onboard_duplicate_get_and_health_on_postgres() {
    let pg = PostgresServer::start();
    let api = api(&pg.url_with_password(PASSWORD)).await;

    let (status, answer) = call(&api.router, "POST", "/onboard", Some(customer("PG-1"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "success");
    let request_id = answer["request_id"]
        .as_str()
        .expect("request_id")
        .to_owned();
    assert_eq!(
        pg.psql(
            "SELECT status, email, customer_type, request_id, attempts FROM customers
             WHERE customer_id = 'PG-1'"
        ),
        format!("received|PG-1@example.com|premium|{request_id}|0")
    );
    assert_eq!(api.queue.sent.lock().expect("lock").len(), 1);

    // The same id again: the same 409 as on SQLite, and nothing queued.
    let (status, answer) = call(&api.router, "POST", "/onboard", Some(customer("PG-1"))).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "customer PG-1 already exists");
    assert_eq!(answer["fields"][0]["field"], "customer_id");
    assert_eq!(api.queue.sent.lock().expect("lock").len(), 1);

    // What the worker writes shows on GET.
    let (status, answer) = call(&api.router, "GET", "/customers/PG-1", None).await;
    assert_eq!((status, &answer["status"]), (200, &json!("received")));
    pg.psql(
        "UPDATE customers SET status = 'completed', risk_score = 12.5, attempts = 2
         WHERE customer_id = 'PG-1'",
    );
    let (status, answer) = call(&api.router, "GET", "/customers/PG-1", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["risk_score"], 12.5);
    assert_eq!(answer["attempts"], 2);
    assert_eq!(answer["type"], "premium");
    assert_eq!(answer["request_id"], request_id.as_str());
    let (status, _) = call(&api.router, "GET", "/customers/NOBODY", None).await;
    assert_eq!(status, 404);

    // A failed send removes the row, so the client's retry succeeds.
    api.queue.fail.store(true, Ordering::SeqCst);
    let (status, _) = call(&api.router, "POST", "/onboard", Some(customer("PG-2"))).await;
    assert_eq!(status, 503);
    assert_eq!(
        pg.psql("SELECT count(*) FROM customers WHERE customer_id = 'PG-2'"),
        "0"
    );
    api.queue.fail.store(false, Ordering::SeqCst);
    let (status, _) = call(&api.router, "POST", "/onboard", Some(customer("PG-2"))).await;
    assert_eq!(status, 200);

    let (status, health) = call(&api.router, "GET", "/health", None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["dependencies"]["database"]["status"], "healthy");

    let spans = api.exporter.get_finished_spans().expect("spans");
    let inserts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "INSERT customers")
        .collect();
    assert_eq!(inserts.len(), 4);
    for s in inserts {
        assert_eq!(
            attr(s, "db.system.name").map(|v| v.to_string()).as_deref(),
            Some("postgresql")
        );
        assert_eq!(
            attr(s, "db.namespace").map(|v| v.to_string()).as_deref(),
            Some("throughline")
        );
        assert_eq!(
            attr(s, "server.address").map(|v| v.to_string()).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            attr(s, "server.port"),
            Some(opentelemetry::Value::I64(i64::from(pg.port())))
        );
        assert_eq!(
            attr(s, "db.collection.name")
                .map(|v| v.to_string())
                .as_deref(),
            Some("customers")
        );
    }
    assert_no_password_on(&spans);
}

#[tokio::test]
async fn a_database_outage_is_a_503_that_never_shows_the_password() {
    let pg = PostgresServer::start();
    let api = api(&pg.url_with_password(PASSWORD)).await;
    let (status, _) = call(&api.router, "POST", "/onboard", Some(customer("OUT-1"))).await;
    assert_eq!(status, 200);
    drop(pg);

    let (status, health) = call(&api.router, "GET", "/health", None).await;
    assert_eq!(status, 503, "{health}");
    let db = &health["dependencies"]["database"];
    assert_eq!(db["status"], "unhealthy");
    let error = db["error"].as_str().expect("an error");
    assert!(
        error.starts_with("customer database postgres://postgres:***@127.0.0.1:"),
        "{error}"
    );
    let (status, answer) = call(&api.router, "POST", "/onboard", Some(customer("OUT-2"))).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "customer database unavailable");
    let (status, _) = call(&api.router, "GET", "/customers/OUT-1", None).await;
    assert_eq!(status, 503);
    assert_no_password_on(&api.exporter.get_finished_spans().expect("spans"));
}

#[tokio::test]
async fn a_bad_database_stops_start_up_naming_database_url_without_the_password() {
    let serve = |url: String| async move {
        let (telemetry, _exporter, _provider) = telemetry();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let e = onboarding_api::serve(config(&url), telemetry, listener, std::future::pending())
            .await
            .expect_err("start-up must fail");
        // The message names the URL, and its cause follows it once.
        throughline_service_kit::ErrorChain(&e).to_string()
    };

    // Nothing listens there.
    let port = throughline_testkit::free_loopback_addr().port();
    let e = serve(format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/shop")).await;
    assert!(
        e.starts_with(&format!(
            "DATABASE_URL postgres://app:***@127.0.0.1:{port}/shop: cannot open"
        )),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");

    // The server is there, the database is not: PostgreSQL's own reason.
    let pg = PostgresServer::start();
    let e = serve(format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/nosuchdb",
        pg.port()
    ))
    .await;
    assert!(
        e.starts_with("DATABASE_URL postgresql://postgres:***@"),
        "{e}"
    );
    assert!(e.contains("\"nosuchdb\" does not exist"), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");
}

#[tokio::test]
async fn tls_with_the_servers_ca_verified_carries_every_connection() {
    let pg = PostgresServer::start_with_tls();
    let ca = pg.tls_ca().expect("a TLS server has a CA");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        ca.display()
    );
    let api = api(&url).await;
    let (status, answer) = call(&api.router, "POST", "/onboard", Some(customer("TLS-1"))).await;
    assert_eq!(status, 200, "{answer}");
    // Every connection of the API's pool is encrypted; psql's own (this query's) is not counted.
    let connections = pg.psql(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.datname = 'throughline' AND s.pid <> pg_backend_pid()",
    );
    let (all, encrypted) = connections.split_once('|').expect("two counts");
    assert!(all.parse::<u32>().expect("a count") > 0, "{connections}");
    assert_eq!(all, encrypted, "connections, encrypted ones: {connections}");
}

#[tokio::test]
async fn tls_required_of_a_server_without_it_stops_start_up_naming_database_url() {
    let pg = PostgresServer::start();
    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/throughline?sslmode=require",
        pg.port()
    );
    let (telemetry, _exporter, _provider) = telemetry();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let e = onboarding_api::serve(config(&url), telemetry, listener, std::future::pending())
        .await
        .expect_err("start-up must fail");
    let e = throughline_service_kit::ErrorChain(&e).to_string();
    assert!(
        e.starts_with("DATABASE_URL postgres://postgres:***@"),
        "{e}"
    );
    assert!(!e.contains(PASSWORD), "{e}");
}
