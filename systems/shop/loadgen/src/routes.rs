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
    /// The untraced client of the control calls (`POST /demo` to the catalog and checkout).
    pub control: reqwest::Client,
    pub config: LoadgenConfig,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/products/browse", post(browse))
        .route("/api/journeys/{kind}", post(journey))
        .route("/api/traffic", post(start_traffic).delete(stop_traffic))
        .route("/api/demo", post(start_demo))
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

/// `POST /api/demo {"scenario": "blackfriday" | "normal", "minute_secs": N, "peak_rate": R}`:
/// the demo on the running shop. The catalog's and the checkout's clocks are set to one start
/// (each `POST /demo`), then the load generator's own: a Black Friday drives its traffic through
/// the phases as `up --scenario blackfriday` does; `normal` drives the peak rate for as long
/// with the index and the pool left healthy. Answers 202 with when it ends; 502 naming the
/// service that could not be told.
async fn start_demo(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let request = match shop_db::DemoRequest::from_json(&body) {
        Ok(r) => r,
        Err(e) => return bad_field(e.field, e.problem),
    };
    let peak_rate = match body.get("peak_rate") {
        None | Some(Value::Null) => app.config.peak_rate,
        Some(v) => match v.as_f64() {
            Some(r) if r.is_finite() && r > 0.0 && r <= 10_000.0 => r,
            _ => return bad_field("peak_rate", "must be a number above 0 and at most 10000"),
        },
    };
    // One start for every service.
    let forward = request.to_json();
    for (service, url) in [
        ("product-catalog", &app.config.catalog_url),
        ("checkout", &app.config.checkout_url),
    ] {
        let told = app
            .control
            .post(format!("{url}/demo"))
            .timeout(Duration::from_secs(10))
            .json(&forward)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Err(e) = told {
            let body = json!({
                "error": format!("{service} at {url} could not be told of the demo: {e}"),
                "service": service,
            });
            return (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response();
        }
    }
    app.config.demo.set(request.demo);
    let length = shop_db::demo::demo_length(request.minute);
    let rate = match request.demo {
        Some(_) => Rate::Demo {
            clock: app.config.demo.clone(),
            peak_per_sec: peak_rate,
        },
        None => Rate::Fixed {
            per_sec: peak_rate,
            duration: Some(length),
        },
    };
    app.traffic.start(rate, Mix::default());
    let mut answer = forward;
    answer["peak_rate"] = json!(peak_rate);
    answer["ends_in_secs"] = json!(length.as_secs_f64());
    // The phases its journeys must pass through.
    answer["phases"] = match request.demo {
        Some(_) => json!(["ramp", "peak", "degradation", "critical"]),
        None => json!(["normal"]),
    };
    (StatusCode::ACCEPTED, axum::Json(answer)).into_response()
}

async fn stop_traffic(State(app): State<Arc<App>>) -> Response {
    let stopped = app.traffic.stop();
    axum::Json(json!({"stopped": stopped})).into_response()
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    let mut stats = app.journeys.stats().snapshot();
    stats["phase"] = json!(app.config.demo.phase().as_str());
    stats["max_in_flight"] = json!(app.config.max_in_flight);
    stats["demo_minute"] = json!(app.config.demo.minute());
    stats["traffic_running"] = json!(app.traffic.is_running());
    stats["journeys_in_flight"] = json!(app.traffic.in_flight());
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
