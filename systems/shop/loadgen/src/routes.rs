//! The load generator's own HTTP API, and the one place that maps its errors to HTTP status.
//! This control API is not traced: each journey is its own trace, rooted at
//! `user_journey.{type}`, and the answer names its trace id.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::LoadgenConfig;
use crate::journey::{JourneyKind, JourneyOutcome, Journeys};
use crate::traffic::{Mix, Rate, Traffic, TrafficFieldError};

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    pub journeys: Journeys,
    pub traffic: Arc<Traffic>,
    pub config: LoadgenConfig,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/products/browse", post(browse))
        .route("/api/journeys/{kind}", post(journey))
        .route("/api/traffic", post(start_traffic).delete(stop_traffic))
        .route("/api/stats", get(stats).post(reset_stats))
        .route("/health", get(health))
        .with_state(app)
}

fn bad_field(field: &str, problem: impl std::fmt::Display) -> Response {
    let body = json!({"error": format!("{field}: {problem}"), "field": field});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// 200 with the journey when every step answered 2xx; 502 (with the failed step) otherwise.
fn journey_answer(outcome: JourneyOutcome) -> Response {
    let status = if outcome.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    (status, axum::Json(json!(outcome))).into_response()
}

/// The body as JSON (an empty body is `{}`), or the 400 naming `body`.
fn json_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(bad_field("body", format!("malformed JSON: {e}"))))
}

/// The seed's verification call: one browse journey in the category asked for.
async fn browse(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let category = match body.get("category") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if !c.trim().is_empty() => Some(c.trim().to_owned()),
        Some(_) => return bad_field("category", "must be a non-empty string"),
    };
    journey_answer(app.journeys.run(JourneyKind::Browse, category).await)
}

async fn journey(State(app): State<Arc<App>>, Path(kind): Path<String>) -> Response {
    match kind.parse::<JourneyKind>() {
        Ok(kind) => journey_answer(app.journeys.run(kind, None).await),
        Err(e) => bad_field("type", e),
    }
}

async fn start_traffic(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let rate = match body.get("rate").map(Value::as_f64) {
        None => return bad_field("rate", "is required (journeys a second)"),
        Some(Some(r)) if r.is_finite() && r > 0.0 && r <= 10_000.0 => r,
        Some(_) => return bad_field("rate", "must be a number above 0 and at most 10000"),
    };
    let duration = match body.get("duration_secs") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
            _ => return bad_field("duration_secs", "must be a number of seconds above 0"),
        },
    };
    let mix = match body.get("mix") {
        None | Some(Value::Null) => Mix::default(),
        Some(v) => match Mix::from_json(v) {
            Ok(mix) => mix,
            Err(TrafficFieldError { field, problem }) => return bad_field(&field, problem),
        },
    };
    let answer = json!({
        "status": "started",
        "rate": rate,
        "duration_secs": duration.map(|d| d.as_secs_f64()),
        "mix": mix.as_map(),
    });
    app.traffic.start(
        Rate::Fixed {
            per_sec: rate,
            duration,
        },
        mix,
    );
    (StatusCode::ACCEPTED, axum::Json(answer)).into_response()
}

async fn stop_traffic(State(app): State<Arc<App>>) -> Response {
    let stopped = app.traffic.stop();
    axum::Json(json!({"stopped": stopped})).into_response()
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    let mut stats = app.journeys.stats().snapshot();
    stats["phase"] = json!(app.config.demo.phase().as_str());
    stats["demo_minute"] = json!(app.config.demo.minute());
    stats["traffic_running"] = json!(app.traffic.is_running());
    axum::Json(stats).into_response()
}

/// Starts the counters afresh (what `throughline load shop` does before it sends).
async fn reset_stats(State(app): State<Arc<App>>) -> Response {
    app.journeys.stats().reset();
    axum::Json(json!({"reset": true})).into_response()
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}
