//! The checkout's HTTP routes and the one place that maps its errors to HTTP status. The SERVER
//! span, the catalog calls' CLIENT spans and the database's CLIENT spans come from
//! `throughline-instrument`; this file holds what the checkout does and its business and alert
//! attributes (`order.*`, `checkout.*`, `db.connection.pool.*`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use serde_json::{Value, json};
use shop_db::{Phase, PoolExhausted, names};
use throughline_instrument::{DbClient, DbOperation, ErrorType, HttpClient, HttpServerLayer};

use crate::cart::{Cart, FieldError, parse_cart};
use crate::store::{Line, NewOrder, OrderStore, SELECT_ORDER_SQL, StoreError};
use crate::{CheckoutConfig, Telemetry};

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    store: OrderStore,
    db: DbClient,
    catalog: HttpClient,
    telemetry: Telemetry,
    config: CheckoutConfig,
    port: u16,
}

impl App {
    pub fn new(
        store: OrderStore,
        telemetry: Telemetry,
        config: &CheckoutConfig,
        port: u16,
    ) -> Self {
        let db = DbClient::shared(
            telemetry.tracer.clone(),
            shop_db::database::db_target(&config.database),
        )
        .semconv(config.db_semconv);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            // Building fails only when the TLS backend cannot start; the catalog is plain HTTP.
            .unwrap_or_default();
        let catalog = HttpClient::shared(client, telemetry.tracer.clone());
        Self {
            store,
            db,
            catalog,
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
        .route("/orders/create", post(create_order))
        .route("/orders/{id}", get(order))
        .route("/health", get(health))
        .route("/demo", axum::routing::post(demo))
        .layer(layer)
        .with_state(app)
}

/// Why a checkout did not create its order.
#[derive(Debug, thiserror::Error)]
enum CheckoutError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("the catalog could not price the cart")]
    Catalog(#[source] CatalogError),
    #[error(transparent)]
    Exhausted(PoolExhausted),
    #[error("the order could not be written")]
    Store(#[source] StoreError),
}

#[derive(Debug, thiserror::Error)]
enum CatalogError {
    #[error("the catalog answered {0}")]
    Status(StatusCode),
    #[error("the catalog could not be reached")]
    Transport(#[source] reqwest::Error),
    #[error("the catalog's answer has no price")]
    Body,
}

impl CheckoutError {
    /// The one mapping to HTTP: 400 naming the field, 503 naming the reason.
    fn response(&self, trace_id: &str) -> Response {
        let (status, body, error_type) = match self {
            Self::Field(e) => (
                StatusCode::BAD_REQUEST,
                json!({"error": e.to_string(), "field": e.field}),
                None,
            ),
            Self::Catalog(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": self.to_string(), "reason": "CatalogUnavailable"}),
                Some("CatalogUnavailable"),
            ),
            Self::Exhausted(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({
                    "error": e.to_string(),
                    "reason": names::POOL_EXHAUSTED_REASON,
                    "pool_size": e.size,
                    "wait_time_ms": e.waited_ms,
                }),
                Some(names::POOL_EXHAUSTED_REASON),
            ),
            Self::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": self.to_string(), "reason": "DatabaseError"}),
                Some("DatabaseError"),
            ),
        };
        let mut body = body;
        body["trace_id"] = json!(trace_id);
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(t) = error_type {
            response.extensions_mut().insert(ErrorType(t));
        }
        response
    }
}

async fn create_order(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let cx = Context::current();
    let server = cx.span();
    let trace_id = server.span_context().trace_id().to_string();
    match checkout(&app, &cx, &body).await {
        Ok(answer) => (StatusCode::CREATED, axum::Json(answer)).into_response(),
        Err(e) => {
            if !matches!(e, CheckoutError::Field(_) | CheckoutError::Exhausted(_)) {
                tracing::error!(
                    trace_id = %trace_id,
                    span_id = %server.span_context().span_id(),
                    error = %throughline_service_kit::ErrorChain(&e),
                    "checkout failed"
                );
            }
            e.response(&trace_id)
        }
    }
}

async fn checkout(app: &App, cx: &Context, body: &[u8]) -> Result<Value, CheckoutError> {
    let server = cx.span();
    let sc = server.span_context().clone();
    let cart: Cart = parse_cart(body)?;
    server.set_attribute(KeyValue::new(names::USER_ID, cart.user_id.clone()));
    server.set_attribute(KeyValue::new(
        names::CHECKOUT_ITEMS,
        cart.items.len() as i64,
    ));
    let prices = price(app, &cart).await?;
    let lines: Vec<Line> = cart
        .items
        .iter()
        .map(|item| Line {
            product_id: item.product_id,
            quantity: item.quantity,
            // `price` answered a price for every product of the cart, or an error.
            price_cents: prices[&item.product_id],
        })
        .collect();
    let total_cents: i64 = lines.iter().map(|l| l.price_cents * l.quantity).sum();
    let total = total_cents as f64 / 100.0;
    server.set_attribute(KeyValue::new(names::ORDER_TOTAL, total));

    let phase = app.config.demo.phase();
    let conn = match app.store.acquire().await {
        Ok(conn) => conn,
        Err(StoreError::Exhausted(exhausted)) => {
            for attribute in [
                KeyValue::new(names::POOL_EXHAUSTED, true),
                KeyValue::new(names::POOL_SIZE, exhausted.size as i64),
                KeyValue::new(names::POOL_WAIT_TIME_MS, exhausted.waited_ms as i64),
                KeyValue::new(names::CHECKOUT_FAILED, true),
                KeyValue::new(names::CHECKOUT_FAILURE_REASON, names::POOL_EXHAUSTED_REASON),
                KeyValue::new(names::CHECKOUT_CART_ABANDONED, true),
                KeyValue::new(names::CHECKOUT_TOTAL, total),
            ] {
                server.set_attribute(attribute);
            }
            tracing::error!(
                trace_id = %sc.trace_id(),
                span_id = %sc.span_id(),
                max_connections = exhausted.size,
                active_connections = app.store.in_use(),
                wait_time_ms = exhausted.waited_ms,
                demo_phase = %phase,
                "{}",
                names::LOG_POOL_EXHAUSTION
            );
            tracing::error!(
                trace_id = %sc.trace_id(),
                span_id = %sc.span_id(),
                user_id = %cart.user_id,
                total,
                failure_reason = names::POOL_EXHAUSTED_REASON,
                demo_phase = %phase,
                "{}",
                names::LOG_CHECKOUT_FAILED
            );
            return Err(CheckoutError::Exhausted(exhausted));
        }
        Err(e) => return Err(CheckoutError::Store(e)),
    };
    // Held no later than the phase's end: after the demo the pool is healthy at once.
    let hold = if phase == Phase::Critical {
        app.config
            .critical_hold
            .min(app.config.demo.left_in_phase())
    } else {
        Duration::ZERO
    };
    let order = NewOrder {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: cart.user_id.clone(),
        total_cents,
        created_at: now_rfc3339(),
        trace_id: sc.trace_id().to_string(),
        lines: lines.clone(),
    };
    let id = order.id.clone();
    server.set_attribute(KeyValue::new(names::ORDER_ID, id.clone()));
    app.store
        .write(conn, order, hold, app.db.clone(), cx.clone())
        .await
        .map_err(CheckoutError::Store)?;
    tracing::info!(
        trace_id = %sc.trace_id(),
        span_id = %sc.span_id(),
        order_id = %id,
        user_id = %cart.user_id,
        total,
        items = lines.len(),
        "{}",
        names::LOG_ORDER_CREATED
    );
    Ok(json!({
        "order_id": id,
        "user_id": cart.user_id,
        "total": total,
        "total_cents": total_cents,
        "items": lines,
        "trace_id": sc.trace_id().to_string(),
    }))
}

/// Each distinct product's price in cents, from `GET {catalog}/products/{id}`.
async fn price(app: &App, cart: &Cart) -> Result<BTreeMap<i64, i64>, CheckoutError> {
    let mut prices = BTreeMap::new();
    for (i, item) in cart.items.iter().enumerate() {
        if prices.contains_key(&item.product_id) {
            continue;
        }
        let url = format!("{}/products/{}", app.config.catalog_url, item.product_id);
        let request = app
            .catalog
            .inner()
            .get(&url)
            .build()
            .map_err(|e| CheckoutError::Catalog(CatalogError::Transport(e)))?;
        let response = app
            .catalog
            .execute(request)
            .await
            .map_err(|e| CheckoutError::Catalog(CatalogError::Transport(e)))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(FieldError {
                    field: format!("items[{i}].product_id"),
                    problem: format!("no product {}", item.product_id),
                }
                .into());
            }
            other => return Err(CheckoutError::Catalog(CatalogError::Status(other))),
        }
        let product: Value = response
            .json()
            .await
            .map_err(|e| CheckoutError::Catalog(CatalogError::Transport(e)))?;
        let cents = product
            .get("price_cents")
            .and_then(Value::as_i64)
            .ok_or(CheckoutError::Catalog(CatalogError::Body))?;
        prices.insert(item.product_id, cents);
    }
    Ok(prices)
}

async fn order(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let span = app.db.start(
        DbOperation::new("SELECT")
            .collection("orders")
            .query_text(SELECT_ORDER_SQL),
    );
    let found = span.run(app.store.order(id.clone())).await;
    match found {
        Ok(Some(order)) => {
            span.end();
            axum::Json(json!(order)).into_response()
        }
        Ok(None) => {
            span.end();
            let body = json!({"error": format!("id: no order {id}"), "field": "id"});
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
        Err(e) => {
            span.fail("database", &e);
            let trace_id = span.trace_id();
            CheckoutError::Store(e).response(&trace_id)
        }
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "pool_size": app.store.pool_size(),
        "pool_in_use": app.store.in_use(),
        "demo_phase": app.config.demo.phase().as_str(),
    }))
    .into_response()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
