//! The HTTP routes: `POST /onboard`, `GET /customers/{id}`, `GET /health`, and the one place
//! that maps domain errors to HTTP status. The spans of each hop (the SERVER span, the
//! database's CLIENT span, the queue's PRODUCER span) come from `throughline-instrument`;
//! this file holds what onboarding does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use serde_json::json;
use throughline_instrument::{
    DbClient, DbOperation, DbSemconv, DbTarget, ErrorType, HttpServerLayer, SharedTracer,
    SqsProducer,
};

use throughline_service_kit::ErrorChain;

use crate::customers::{CustomerStore, CustomerStoreError, NewCustomer};
use crate::names;
use crate::queue::{MessageQueue, OutgoingMessage};
use crate::validation::{self, ValidationError};

/// The tracer and meter the API reports through. [`Telemetry::global`] takes them from the
/// global providers (set up by `throughline-telemetry`); tests pass their own.
#[derive(Debug)]
pub struct Telemetry {
    pub tracer: BoxedTracer,
    pub meter: Meter,
}

impl Telemetry {
    pub fn global() -> Self {
        Self {
            tracer: global::tracer("onboarding-api"),
            meter: global::meter("onboarding-api"),
        }
    }
}

#[derive(Debug)]
struct Metrics {
    requests: Counter<u64>,
    success: Counter<u64>,
    duration: Histogram<f64>,
}

/// What every handler shares.
#[derive(Debug)]
pub struct App<Q> {
    pub store: CustomerStore,
    pub queue: Q,
    tracer: SharedTracer,
    metrics: Metrics,
    server_port: u16,
    /// The CLIENT spans of the customer store.
    db: DbClient,
    /// The PRODUCER spans of the queue.
    producer: SqsProducer,
}

impl<Q: MessageQueue> App<Q> {
    pub fn new(store: CustomerStore, queue: Q, telemetry: Telemetry, server_port: u16) -> Self {
        let meter = telemetry.meter;
        let metrics = Metrics {
            requests: meter
                .u64_counter(names::METRIC_REQUESTS)
                .with_description("POST /onboard requests by customer type and outcome")
                .build(),
            success: meter
                .u64_counter(names::METRIC_SUCCESS)
                .with_description("onboarding requests accepted and queued")
                .build(),
            duration: meter
                .f64_histogram(names::METRIC_DURATION)
                .with_unit("s")
                .with_description("POST /onboard duration by customer type")
                .build(),
        };
        let tracer: SharedTracer = Arc::new(telemetry.tracer);
        let target = store.target();
        let mut db_target = DbTarget::new(target.system);
        db_target.namespace = target.namespace;
        db_target.server_address = target.server_address;
        db_target.server_port = target.server_port;
        let db = DbClient::shared(Arc::clone(&tracer), db_target);
        let producer = SqsProducer::shared(Arc::clone(&tracer), queue.name());
        Self {
            store,
            queue,
            tracer,
            metrics,
            server_port,
            db,
            producer,
        }
    }

    /// Which database attribute names the store's spans carry
    /// (`OTEL_SEMCONV_STABILITY_OPT_IN`, see [`crate::ApiConfig::db_semconv`]).
    pub fn with_db_semconv(mut self, db_semconv: DbSemconv) -> Self {
        self.db = self.db.semconv(db_semconv);
        self
    }
}

/// The router with its body limit and its SERVER spans (health checks untraced: they would
/// drown the traces people look for); timeouts are the server's (see [`crate::server`]).
pub fn router<Q: MessageQueue>(app: Arc<App<Q>>, max_body_bytes: usize) -> Router {
    let traced = HttpServerLayer::shared(Arc::clone(&app.tracer))
        .server_port(app.server_port)
        .exclude_path("/health");
    Router::new()
        .route("/onboard", post(onboard::<Q>))
        .route("/customers/{id}", get(customer::<Q>))
        .route("/health", get(health::<Q>))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(traced)
        .with_state(app)
}

/// A handler's answer, with what went wrong for `error.type` on 5xx answers.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    error_type: Option<&'static str>,
}

impl Answer {
    fn ok(status: StatusCode, body: serde_json::Value) -> Self {
        Self {
            status,
            body,
            error_type: None,
        }
    }
    fn error(status: StatusCode, error_type: &'static str, body: serde_json::Value) -> Self {
        Self {
            status,
            body,
            error_type: Some(error_type),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(kind) = self.error_type {
            response.extensions_mut().insert(ErrorType(kind));
        }
        response
    }
}

/// What became of a `POST /onboard`, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Invalid,
    Duplicate,
    Unavailable,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Invalid => "invalid",
            Self::Duplicate => "duplicate",
            Self::Unavailable => "unavailable",
        }
    }
}

async fn onboard<Q: MessageQueue>(
    State(app): State<Arc<App<Q>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let (answer, customer_type, outcome) = match json_content_type(&headers) {
        Ok(()) => accept(&app, &body).await,
        Err(problem) => {
            let body = json!({"status": "error", "error": "request body must be application/json",
                              "fields": [{"field": "content-type", "problem": problem}]});
            (
                Answer::ok(StatusCode::UNSUPPORTED_MEDIA_TYPE, body),
                "unknown",
                Outcome::Invalid,
            )
        }
    };
    let type_attr = KeyValue::new(names::CUSTOMER_TYPE, customer_type);
    app.metrics.requests.add(
        1,
        &[
            type_attr.clone(),
            KeyValue::new(names::ONBOARDING_OUTCOME, outcome.as_str()),
        ],
    );
    if outcome == Outcome::Accepted {
        app.metrics.success.add(1, std::slice::from_ref(&type_attr));
    }
    app.metrics
        .duration
        .record(started.elapsed().as_secs_f64(), &[type_attr]);
    answer.into_response()
}

/// `Ok` when `Content-Type` is `application/json`, with or without parameters
/// (`; charset=utf-8`); otherwise what is wrong with it. A body of any other type could come
/// from a cross-site form or `fetch` that no preflight stopped.
fn json_content_type(headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Err("missing; must be application/json".to_owned());
    };
    let Ok(value) = value.to_str() else {
        return Err("is not visible ASCII; must be application/json".to_owned());
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        // At most 64 characters of what was sent, so the answer stays small.
        let shown: String = value.chars().take(64).collect();
        Err(format!("{shown:?} is not application/json"))
    }
}

/// Validates, stores and queues one request. Returns the answer, the customer type (`unknown`
/// when the body did not say) and the outcome for the metrics.
async fn accept<Q: MessageQueue>(app: &App<Q>, body: &[u8]) -> (Answer, &'static str, Outcome) {
    let request = match validation::validate(body) {
        Ok(r) => r,
        Err(ValidationError::NotAnObject(problem)) => {
            let body = json!({"status": "error", "error": "request body must be a JSON object",
                              "fields": [{"field": "body", "problem": problem}]});
            return (
                Answer::ok(StatusCode::BAD_REQUEST, body),
                "unknown",
                Outcome::Invalid,
            );
        }
        Err(ValidationError::Fields(fields)) => {
            let names: Vec<_> = fields.iter().map(|f| f.field).collect();
            let body = json!({"status": "error", "error": format!("invalid fields: {}", names.join(", ")),
                              "fields": fields});
            return (
                Answer::ok(StatusCode::BAD_REQUEST, body),
                "unknown",
                Outcome::Invalid,
            );
        }
    };
    let customer_type = request.customer_type.as_str();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    // The SERVER span is the current context (the instrumentation layer runs us inside it).
    let cx = Context::current();
    let server = cx.span();
    server.set_attribute(KeyValue::new(
        names::CUSTOMER_ID,
        request.customer_id.clone(),
    ));
    server.set_attribute(KeyValue::new(names::CUSTOMER_TYPE, customer_type));
    server.set_attribute(KeyValue::new(
        names::ONBOARDING_REQUEST_ID,
        request_id.clone(),
    ));
    let trace_id = server.span_context().trace_id().to_string();
    let now = now_rfc3339();

    // 1. Store the customer (a CLIENT span for the database, as the service map shows it).
    let stored = app
        .db
        .start(DbOperation::new("INSERT").collection("customers"));
    let inserted = stored
        .run(app.store.insert(NewCustomer {
            customer_id: request.customer_id.clone(),
            email: request.email.clone(),
            name: request.name.clone(),
            customer_type: customer_type.to_owned(),
            company_size: request.company_size.clone(),
            request_id: request_id.clone(),
            trace_id: trace_id.clone(),
            created_at: now.clone(),
        }))
        .await;
    match inserted {
        Ok(()) => stored.end(),
        Err(CustomerStoreError::Duplicate(id)) => {
            stored.end();
            let body = json!({"status": "error", "error": format!("customer {id} already exists"),
                              "fields": [{"field": "customer_id", "problem": "already exists"}]});
            return (
                Answer::ok(StatusCode::CONFLICT, body),
                customer_type,
                Outcome::Duplicate,
            );
        }
        Err(e) => {
            stored.fail_status(ErrorChain(&e));
            stored.end();
            tracing::error!(error = %ErrorChain(&e), trace_id = %trace_id, "customer could not be stored");
            let body = json!({"status": "error", "error": "customer database unavailable", "trace_id": trace_id});
            return (
                Answer::error(StatusCode::SERVICE_UNAVAILABLE, "database", body),
                customer_type,
                Outcome::Unavailable,
            );
        }
    }

    // 2. Queue the work; the PRODUCER span's context travels in the message attributes.
    let message = json!({
        "customer_id": request.customer_id,
        "email": request.email,
        "name": request.name,
        "type": customer_type,
        "company_size": request.company_size,
        "request_id": request_id,
        "requested_at": now,
    })
    .to_string();
    let mut attributes = HashMap::new();
    let sent = match app.producer.start_send(
        &mut attributes,
        [
            KeyValue::new(names::CUSTOMER_ID, request.customer_id.clone()),
            KeyValue::new(semconv::MESSAGING_MESSAGE_BODY_SIZE, message.len() as i64),
        ],
    ) {
        Ok(span) => {
            let attributes = attributes
                .into_iter()
                .filter_map(|(k, v)| v.string_value.map(|v| (k, v)))
                .collect();
            let outcome = app
                .queue
                .send_message(OutgoingMessage {
                    body: message,
                    attributes,
                })
                .await;
            match &outcome {
                Ok(receipt) => receipt.record(&span),
                Err(e) => span.fail("queue", e),
            }
            outcome.map(|_| ()).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        tracing::error!(error = %e, trace_id = %trace_id, "onboarding message could not be queued");
        // Without a message the worker never sees the customer: undo, so a retry succeeds.
        if let Err(e) = app.store.delete(request.customer_id.clone()).await {
            tracing::error!(error = %ErrorChain(&e), "customer could not be removed after a failed send");
        }
        let body = json!({"status": "error",
                          "error": format!("onboarding queue {} unavailable", app.queue.name()),
                          "trace_id": trace_id});
        return (
            Answer::error(StatusCode::SERVICE_UNAVAILABLE, "queue", body),
            customer_type,
            Outcome::Unavailable,
        );
    }

    let body = json!({
        "status": "success",
        "request_id": request_id,
        "customer_id": request.customer_id,
        "type": customer_type,
        "message": "Customer onboarding initiated",
        "trace_id": trace_id,
    });
    (
        Answer::ok(StatusCode::OK, body),
        customer_type,
        Outcome::Accepted,
    )
}

async fn customer<Q: MessageQueue>(
    State(app): State<Arc<App<Q>>>,
    Path(id): Path<String>,
) -> Response {
    let answer = match app.store.get(id.clone()).await {
        Ok(Some(c)) => Answer::ok(StatusCode::OK, json!(c)),
        Ok(None) => Answer::ok(
            StatusCode::NOT_FOUND,
            json!({"status": "error", "error": format!("no customer {id}"),
                   "fields": [{"field": "id", "problem": "no such customer"}]}),
        ),
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "customer could not be read");
            Answer::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "database",
                json!({"status": "error", "error": "customer database unavailable"}),
            )
        }
    };
    answer.into_response()
}

async fn health<Q: MessageQueue>(State(app): State<Arc<App<Q>>>) -> Response {
    let t = Instant::now();
    let db = app.store.ping().await;
    let db_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let queue = app.queue.probe().await;
    let queue_ms = t.elapsed().as_secs_f64() * 1e3;
    let dep = |r: &Result<(), String>, ms: f64| match r {
        Ok(()) => json!({"status": "healthy", "latency_ms": ms}),
        Err(e) => json!({"status": "unhealthy", "error": e, "latency_ms": ms}),
    };
    let db = db.map_err(|e| ErrorChain(&e).to_string());
    let queue = queue.map_err(|e| e.to_string());
    let healthy = db.is_ok() && queue.is_ok();
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "service": "onboarding-api",
        "version": env!("CARGO_PKG_VERSION"),
        "dependencies": {
            "database": dep(&db, db_ms),
            "queue": dep(&queue, queue_ms),
        },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        // Formatting the current UTC time as RFC 3339 cannot fail (the year is in range).
        .unwrap_or_default()
}
