//! The catalog's HTTP routes and the one place that maps its errors to HTTP status. The SERVER
//! span comes from the instrumentation layer and the database's CLIENT span from its `DbClient`;
//! this file holds what the catalog does and the attributes only it knows (rows read, the slow
//! query and full scan of the degradation phase).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use serde_json::{Value, json};
use shop_db::names;
use throughline_instrument::{DbClient, DbOperation, ErrorType, HttpServerLayer};

use crate::{CatalogConfig, CatalogStore, StoreError, Telemetry};

/// A category page holds at most this many products.
pub const MAX_LIMIT: u32 = 100;
const DEFAULT_LIMIT: u32 = 20;

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    store: CatalogStore,
    db: DbClient,
    telemetry: Telemetry,
    config: CatalogConfig,
    port: u16,
}

impl App {
    pub fn new(
        store: CatalogStore,
        telemetry: Telemetry,
        config: &CatalogConfig,
        port: u16,
    ) -> Self {
        let db = DbClient::shared(
            telemetry.tracer.clone(),
            shop_db::database::db_target(&config.database),
        )
        .semconv(config.db_semconv);
        Self {
            store,
            db,
            telemetry,
            config: config.clone(),
            port,
        }
    }
}

/// The routes under the instrumentation layer (`/health` untraced).
pub fn router(app: Arc<App>) -> Router {
    let layer = HttpServerLayer::shared(app.telemetry.tracer.clone())
        .server_port(app.port)
        .exclude_path("/health")
        .exclude_path("/demo");
    Router::new()
        .route("/products", get(category_page))
        .route("/products/{id}", get(product))
        .route("/health", get(health))
        .route("/demo", axum::routing::post(demo))
        .layer(layer)
        .with_state(app)
}

/// A 4xx naming the field that was wrong.
fn bad_field(status: StatusCode, field: &str, problem: String) -> Response {
    let body = json!({"error": format!("{field}: {problem}"), "field": field});
    (status, axum::Json(body)).into_response()
}

/// The one mapping of store errors to HTTP: 503 with a JSON body naming the reason.
fn unavailable(e: &StoreError) -> Response {
    let reason = match e {
        StoreError::Busy(_) => "ConnectionPoolExhausted",
        _ => "DatabaseError",
    };
    tracing::error!(error = %throughline_service_kit::ErrorChain(e), "catalog query failed");
    let body = json!({"error": "catalog database unavailable", "reason": reason});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response.extensions_mut().insert(ErrorType("database"));
    response
}

fn product_json(p: &crate::store::Product) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "category": p.category,
        "price_cents": p.price_cents,
        "price": p.price_cents as f64 / 100.0,
    })
}

async fn category_page(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(category) = query.get("category").map(|c| c.trim().to_owned()) else {
        return bad_field(StatusCode::BAD_REQUEST, "category", "is required".into());
    };
    if category.is_empty() {
        return bad_field(
            StatusCode::BAD_REQUEST,
            "category",
            "must not be empty".into(),
        );
    }
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return bad_field(
                    StatusCode::BAD_REQUEST,
                    "limit",
                    format!("{text:?} is not a number from 1 to {MAX_LIMIT}"),
                );
            }
        },
    };
    let cx = Context::current();
    let server = cx.span();
    server.set_attribute(KeyValue::new(names::PRODUCT_CATEGORY, category.clone()));
    let phase = app.config.demo.phase();
    // The index follows the phase before the query runs (the keeper task does it between
    // requests), so a page is a full scan exactly in the degradation phase.
    let wanted = phase != shop_db::Phase::Degradation;
    if app.config.demo.is_demo()
        && app.store.category_index() != wanted
        && let Err(e) = app.store.set_category_index(wanted).await
    {
        return unavailable(&e);
    }
    let span = app.db.start(
        DbOperation::new("SELECT")
            .collection("products")
            .query_text(app.store.category_sql()),
    );
    let page = span
        .run(app.store.category_page(category.clone(), limit))
        .await;
    let page = match page {
        Ok(page) => page,
        Err(e) => {
            span.fail("database", &e);
            return unavailable(&e);
        }
    };
    span.set_attribute(KeyValue::new(
        semconv::DB_RESPONSE_RETURNED_ROWS,
        page.products.len() as i64,
    ));
    let took_ms = page.took.as_secs_f64() * 1000.0;
    let scanned = page.rows_scanned > 0;
    if scanned {
        span.set_attribute(KeyValue::new(names::DB_FULL_TABLE_SCAN, true));
        span.set_attribute(KeyValue::new(
            names::DB_MISSING_INDEX,
            names::CATEGORY_INDEX,
        ));
        span.set_attribute(KeyValue::new(
            names::DB_ROWS_SCANNED,
            page.rows_scanned as i64,
        ));
    }
    if page.took >= app.config.slow_query {
        span.set_attribute(KeyValue::new(names::DB_SLOW_QUERY, true));
        let sc = span.context().span().span_context().clone();
        tracing::warn!(
            trace_id = %sc.trace_id(),
            span_id = %sc.span_id(),
            duration_ms = took_ms,
            demo_minute = app.config.demo.minute().unwrap_or(0.0),
            demo_phase = %phase,
            service = crate::SERVICE_NAME,
            missing_index = if scanned { names::CATEGORY_INDEX } else { "" },
            rows_scanned = page.rows_scanned,
            category = %category,
            "{}",
            names::LOG_SLOW_QUERY
        );
    }
    span.end();
    let products: Vec<Value> = page.products.iter().map(product_json).collect();
    axum::Json(json!({
        "category": category,
        "count": products.len(),
        "products": products,
    }))
    .into_response()
}

async fn product(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.trim().parse::<i64>() else {
        return bad_field(
            StatusCode::BAD_REQUEST,
            "id",
            format!("{id:?} is not a product id"),
        );
    };
    Context::current()
        .span()
        .set_attribute(KeyValue::new(names::PRODUCT_ID, id));
    let span = app.db.start(
        DbOperation::new("SELECT")
            .collection("products")
            .query_text(app.store.product_sql()),
    );
    let found = span.run(app.store.product(id)).await;
    match found {
        Ok(Some(p)) => {
            span.set_attribute(KeyValue::new(semconv::DB_RESPONSE_RETURNED_ROWS, 1));
            span.end();
            axum::Json(product_json(&p)).into_response()
        }
        Ok(None) => {
            span.set_attribute(KeyValue::new(semconv::DB_RESPONSE_RETURNED_ROWS, 0));
            span.end();
            bad_field(StatusCode::NOT_FOUND, "id", format!("no product {id}"))
        }
        Err(e) => {
            span.fail("database", &e);
            unavailable(&e)
        }
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "products": app.store.product_count(),
        "demo_phase": app.config.demo.phase().as_str(),
    }))
    .into_response()
}

/// `POST /demo {"scenario", "minute_secs", "start_unix"}`: starts (or ends) the demo on the
/// running service, as the load generator asks for `throughline load shop --scenario`
/// (untraced, as `/health`).
async fn demo(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    match shop_db::demo::control(&app.config.demo, &body) {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(problem) => (StatusCode::BAD_REQUEST, axum::Json(problem)).into_response(),
    }
}
