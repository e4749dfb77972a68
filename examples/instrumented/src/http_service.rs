//! An HTTP service: `POST /orders` stores an order and publishes `OrderPlaced`; `GET /health`
//! is not traced. The instrumentation is the layer, one database span and one producer span.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use opentelemetry::KeyValue;
use serde_json::{Value, json};
use throughline_instrument::{
    DbClient, DbOperation, DbTarget, EventBridgeProducer, HttpServerLayer, SendOperation,
    SendReceipt, SharedTracer,
};

/// What the service holds: its "database" and the events it put (a stand-in for `PutEvents`).
#[derive(Debug)]
pub struct Shop {
    orders: Mutex<HashMap<String, Value>>,
    /// The `detail` of each event put, trace context included, as `PutEvents` would carry it.
    pub events: Mutex<Vec<Value>>,
    db: DbClient,
    events_out: EventBridgeProducer,
}

/// The service's router, traced with `tracer`, listening on `port`.
pub fn router(tracer: SharedTracer, port: u16) -> (Router, Arc<Shop>) {
    let shop = Arc::new(Shop {
        orders: Mutex::new(HashMap::new()),
        events: Mutex::new(Vec::new()),
        db: DbClient::shared(tracer.clone(), DbTarget::new("sqlite").namespace("shop")),
        events_out: EventBridgeProducer::shared(tracer.clone(), "orders-bus"),
    });
    let router = Router::new()
        .route("/orders", post(place_order))
        .route("/health", get(|| async { "ok" }))
        .layer(
            HttpServerLayer::shared(tracer)
                .server_port(port)
                .exclude_paths("health"),
        )
        .with_state(Arc::clone(&shop));
    (router, shop)
}

async fn place_order(
    State(shop): State<Arc<Shop>>,
    Json(order): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let Some(id) = order["order_id"].as_str().map(str::to_owned) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "order_id is missing"})),
        );
    };
    let insert = shop.db.start(
        DbOperation::new("INSERT")
            .collection("orders")
            .query_text("INSERT INTO orders (id, body) VALUES (?1, ?2)"),
    );
    shop.orders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), order);
    insert.end();

    let mut detail = json!({"order_id": id});
    let order_attribute = KeyValue::new("order.id", id.clone());
    let Ok(put) = shop.events_out.start_put(&mut detail, [order_attribute]) else {
        let error = json!({"error": "the event detail is not an object"});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(error));
    };
    shop.events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(detail);
    SendReceipt::new(
        format!("event-{id}"),
        SendOperation::PutEvents { entry_count: 1 },
    )
    .record(&put);
    put.end();
    (StatusCode::ACCEPTED, Json(json!({"order_id": id})))
}
