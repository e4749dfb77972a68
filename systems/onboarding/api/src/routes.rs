//! The HTTP routes: `POST /onboard`, `GET /customers/{id}`, `GET /health`, each traced with a
//! SERVER span; the one place that maps domain errors to HTTP status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_semantic_conventions::attribute as semconv;
use serde_json::json;

use crate::customers::{CustomerStore, CustomerStoreError, NewCustomer};
use crate::names;
use crate::queue::{MessageQueue, OutgoingMessage};
use crate::validation::{self, ValidationError};
use throughline_carriers::{HeaderExtractor, SqsAttributeCollector};

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
    tracer: BoxedTracer,
    metrics: Metrics,
    server_port: i64,
    /// `db.*` and `server.*` attributes of the store's CLIENT spans, built once.
    db_attributes: Vec<KeyValue>,
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
        let target = store.target();
        let mut db_attributes = vec![KeyValue::new(semconv::DB_SYSTEM_NAME, target.system)];
        if let Some(namespace) = target.namespace {
            db_attributes.push(KeyValue::new(semconv::DB_NAMESPACE, namespace));
        }
        if let Some(address) = target.server_address {
            db_attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, address));
        }
        if let Some(port) = target.server_port {
            db_attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
        }
        Self {
            store,
            queue,
            tracer: telemetry.tracer,
            metrics,
            server_port: i64::from(server_port),
            db_attributes,
        }
    }
}

/// The router with its body limit; timeouts are the server's (see [`crate::server`]).
pub fn router<Q: MessageQueue>(app: Arc<App<Q>>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/onboard", post(onboard::<Q>))
        .route("/customers/{id}", get(customer::<Q>))
        .route("/health", get(health::<Q>))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

/// A handler's answer before the SERVER span is closed.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    /// What went wrong, for `error.type` on 5xx answers.
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

/// Starts the SERVER span of a request, continuing the caller's trace when it sent one.
fn server_span<Q: MessageQueue>(
    app: &App<Q>,
    headers: &HeaderMap,
    method: &'static str,
    route: &'static str,
    path: String,
) -> Context {
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let mut attributes = vec![
        KeyValue::new(semconv::HTTP_REQUEST_METHOD, method),
        KeyValue::new(semconv::HTTP_ROUTE, route),
        KeyValue::new(semconv::URL_PATH, path),
        KeyValue::new(semconv::URL_SCHEME, "http"),
        KeyValue::new(semconv::SERVER_PORT, app.server_port),
    ];
    if let Some(ua) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new(semconv::USER_AGENT_ORIGINAL, ua.to_owned()));
    }
    let span = app
        .tracer
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&app.tracer, &parent);
    parent.with_span(span)
}

/// Ends the SERVER span and builds the response with its `traceresponse` header.
fn finish(cx: &Context, answer: Answer) -> Response {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        semconv::HTTP_RESPONSE_STATUS_CODE,
        i64::from(answer.status.as_u16()),
    ));
    if let Some(kind) = answer.error_type {
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, kind));
        span.set_status(Status::error(kind));
    }
    let sc = span.span_context().clone();
    span.end();
    let mut response = (answer.status, axum::Json(answer.body)).into_response();
    if sc.is_valid() {
        // W3C Trace Context Level 2 `traceresponse`: version-traceid-childid-flags.
        let value = format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert("traceresponse", v);
        }
    }
    response
}

async fn onboard<Q: MessageQueue>(
    State(app): State<Arc<App<Q>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let cx = server_span(&app, &headers, "POST", "/onboard", "/onboard".to_owned());
    let (answer, customer_type, outcome) = accept(&app, &cx, &body).with_context(cx.clone()).await;
    let type_attr = KeyValue::new(names::CUSTOMER_TYPE, customer_type);
    app.metrics.requests.add(
        1,
        &[
            type_attr.clone(),
            KeyValue::new(names::ONBOARDING_OUTCOME, outcome),
        ],
    );
    if outcome == "accepted" {
        app.metrics.success.add(1, std::slice::from_ref(&type_attr));
    }
    app.metrics
        .duration
        .record(started.elapsed().as_secs_f64(), &[type_attr]);
    finish(&cx, answer)
}

/// Validates, stores and queues one request. Returns the answer, the customer type (`unknown`
/// when the body did not say) and the outcome for the metrics.
async fn accept<Q: MessageQueue>(
    app: &App<Q>,
    cx: &Context,
    body: &[u8],
) -> (Answer, &'static str, &'static str) {
    let span = cx.span();
    let request = match validation::validate(body) {
        Ok(r) => r,
        Err(ValidationError::NotAnObject(problem)) => {
            let body = json!({"status": "error", "error": "request body must be a JSON object",
                              "fields": [{"field": "body", "problem": problem}]});
            return (
                Answer::ok(StatusCode::BAD_REQUEST, body),
                "unknown",
                "invalid",
            );
        }
        Err(ValidationError::Fields(fields)) => {
            let names: Vec<_> = fields.iter().map(|f| f.field).collect();
            let body = json!({"status": "error", "error": format!("invalid fields: {}", names.join(", ")),
                              "fields": fields});
            return (
                Answer::ok(StatusCode::BAD_REQUEST, body),
                "unknown",
                "invalid",
            );
        }
    };
    let customer_type = request.customer_type.as_str();
    span.set_attribute(KeyValue::new(
        names::CUSTOMER_ID,
        request.customer_id.clone(),
    ));
    span.set_attribute(KeyValue::new(names::CUSTOMER_TYPE, customer_type));
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    span.set_attribute(KeyValue::new(
        names::ONBOARDING_REQUEST_ID,
        request_id.clone(),
    ));
    let trace_id = span.span_context().trace_id().to_string();
    let now = now_rfc3339();

    // 1. Store the customer (a CLIENT span for the database, as the service map shows it).
    let mut db_attributes = Vec::with_capacity(app.db_attributes.len() + 2);
    db_attributes.extend(app.db_attributes.iter().cloned());
    db_attributes.push(KeyValue::new(semconv::DB_OPERATION_NAME, "INSERT"));
    db_attributes.push(KeyValue::new(semconv::DB_COLLECTION_NAME, "customers"));
    let db_span = app
        .tracer
        .span_builder("INSERT customers")
        .with_kind(SpanKind::Client)
        .with_attributes(db_attributes)
        .start_with_context(&app.tracer, cx);
    let db_cx = cx.with_span(db_span);
    let stored = app
        .store
        .insert(NewCustomer {
            customer_id: request.customer_id.clone(),
            email: request.email.clone(),
            name: request.name.clone(),
            customer_type: customer_type.to_owned(),
            company_size: request.company_size.clone(),
            request_id: request_id.clone(),
            trace_id: trace_id.clone(),
            created_at: now.clone(),
        })
        .await;
    match stored {
        Ok(()) => db_cx.span().end(),
        Err(CustomerStoreError::Duplicate(id)) => {
            db_cx.span().end();
            let body = json!({"status": "error", "error": format!("customer {id} already exists"),
                              "fields": [{"field": "customer_id", "problem": "already exists"}]});
            return (
                Answer::ok(StatusCode::CONFLICT, body),
                customer_type,
                "duplicate",
            );
        }
        Err(e) => {
            db_cx.span().set_status(Status::error(e.to_string()));
            db_cx.span().end();
            tracing::error!(error = %e, trace_id = %trace_id, "customer could not be stored");
            let body = json!({"status": "error", "error": "customer database unavailable", "trace_id": trace_id});
            return (
                Answer::error(StatusCode::SERVICE_UNAVAILABLE, "database", body),
                customer_type,
                "unavailable",
            );
        }
    }

    // 2. Queue the work with the PRODUCER span's context in the message attributes.
    let queue = app.queue.name().to_owned();
    let producer = app
        .tracer
        .span_builder(format!("send {queue}"))
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new(semconv::MESSAGING_SYSTEM, "aws_sqs"),
            KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "send"),
            KeyValue::new(semconv::MESSAGING_OPERATION_NAME, "SendMessage"),
            KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, queue.clone()),
            KeyValue::new(names::CUSTOMER_ID, request.customer_id.clone()),
        ])
        .start_with_context(&app.tracer, cx);
    let producer_cx = cx.with_span(producer);
    let mut collector = SqsAttributeCollector::default();
    global::get_text_map_propagator(|p| p.inject_context(&producer_cx, &mut collector));
    let attributes: HashMap<String, String> = collector.fields.into_iter().collect();
    let message = json!({
        "customer_id": request.customer_id,
        "email": request.email,
        "name": request.name,
        "type": customer_type,
        "company_size": request.company_size,
        "request_id": request_id,
        "requested_at": now,
    });
    let body = message.to_string();
    producer_cx.span().set_attribute(KeyValue::new(
        semconv::MESSAGING_MESSAGE_BODY_SIZE,
        body.len() as i64,
    ));
    match app.queue.send(OutgoingMessage { body, attributes }).await {
        Ok(message_id) => {
            producer_cx
                .span()
                .set_attribute(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, message_id));
            producer_cx.span().end();
        }
        Err(e) => {
            producer_cx
                .span()
                .set_attribute(KeyValue::new(semconv::ERROR_TYPE, "queue"));
            producer_cx.span().set_status(Status::error(e.to_string()));
            producer_cx.span().end();
            tracing::error!(error = %e, trace_id = %trace_id, "onboarding message could not be queued");
            // Without a message the worker never sees the customer: undo, so a retry succeeds.
            if let Err(e) = app.store.delete(request.customer_id.clone()).await {
                tracing::error!(error = %e, "customer could not be removed after a failed send");
            }
            let body = json!({"status": "error", "error": format!("onboarding queue {queue} unavailable"),
                              "trace_id": trace_id});
            return (
                Answer::error(StatusCode::SERVICE_UNAVAILABLE, "queue", body),
                customer_type,
                "unavailable",
            );
        }
    }

    let body = json!({
        "status": "success",
        "request_id": request_id,
        "customer_id": request.customer_id,
        "type": customer_type,
        "message": "Customer onboarding initiated",
        "trace_id": trace_id,
    });
    (Answer::ok(StatusCode::OK, body), customer_type, "accepted")
}

async fn customer<Q: MessageQueue>(
    State(app): State<Arc<App<Q>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let cx = server_span(
        &app,
        &headers,
        "GET",
        "/customers/{id}",
        format!("/customers/{id}"),
    );
    let answer = match app.store.get(id.clone()).with_context(cx.clone()).await {
        Ok(Some(c)) => Answer::ok(StatusCode::OK, json!(c)),
        Ok(None) => Answer::ok(
            StatusCode::NOT_FOUND,
            json!({"status": "error", "error": format!("no customer {id}"),
                   "fields": [{"field": "id", "problem": "no such customer"}]}),
        ),
        Err(e) => {
            tracing::error!(error = %e, "customer could not be read");
            Answer::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "database",
                json!({"status": "error", "error": "customer database unavailable"}),
            )
        }
    };
    finish(&cx, answer)
}

async fn health<Q: MessageQueue>(State(app): State<Arc<App<Q>>>) -> Response {
    // Not traced: health probes would drown the traces people look for.
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
    let db = db.map_err(|e| e.to_string());
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
