//! The HTTP routes of nedlia-api and the one place that maps domain errors to HTTP status. Spans
//! of each hop (SERVER, the database's CLIENT spans, the bus's PRODUCER span) come from
//! `throughline-instrument`; this file holds what the API does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use events_db::{DbError, PLACEMENT_COLUMNS, Placement};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use serde::Serialize;
use serde_json::{Value, json};
use throughline_instrument::{
    ErrorType, EventBridgeProducer, HttpServerLayer, SharedTracer, Spans,
};
use throughline_service_kit::ErrorChain;

use crate::events::EventBus;
use crate::names;
use crate::validation::{self, NewPlacement};

/// The health routes, left untraced.
pub const HEALTH_PATHS: &str = "health,health/ready,health/live";

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    pub db: events_db::Database,
    pub bus: EventBus,
    tracer: SharedTracer,
    /// The API's own INTERNAL spans (`placement.create` and its steps, as the seed names them).
    spans: Spans,
    producer: EventBridgeProducer,
    server_port: u16,
    detail_trace: bool,
}

impl App {
    /// `detail_trace` false leaves `detail._trace` out of the events (X-Ray header only).
    pub fn new(
        db: events_db::Database,
        bus: EventBus,
        tracer: SharedTracer,
        server_port: u16,
        detail_trace: bool,
    ) -> Self {
        let producer = EventBridgeProducer::shared(Arc::clone(&tracer), bus.name());
        Self {
            db,
            bus,
            spans: Spans::shared(Arc::clone(&tracer)),
            tracer,
            producer,
            server_port,
            detail_trace,
        }
    }
}

/// The router with its body limit and SERVER spans (health routes untraced).
pub fn router(app: Arc<App>, max_body_bytes: usize) -> Router {
    let traced = HttpServerLayer::shared(Arc::clone(&app.tracer))
        .server_port(app.server_port)
        .exclude_paths(HEALTH_PATHS);
    Router::new()
        .route("/v1/placements", post(create))
        .route("/v1/placements/{id}", get(placement))
        .route("/v1/videos", get(videos))
        .route("/v1/products", get(products))
        .route("/health", get(health))
        .route("/health/ready", get(health))
        .route("/health/live", get(live))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(traced)
        .with_state(app)
}

/// A handler's answer, with what went wrong for `error.type` on a 5xx.
struct Answer {
    status: StatusCode,
    body: Value,
    error_type: Option<&'static str>,
}

impl Answer {
    fn ok(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            error_type: None,
        }
    }

    fn not_found(field: &str, what: &str, id: &str) -> Self {
        Self::ok(
            StatusCode::NOT_FOUND,
            json!({"status": "error", "error": format!("{what} {id:?} not found"),
                   "fields": [{"field": field, "problem": "not found"}]}),
        )
    }

    fn bad_field(field: &str, problem: &str) -> Self {
        Self::ok(
            StatusCode::BAD_REQUEST,
            json!({"status": "error", "error": "invalid request",
                   "fields": [{"field": field, "problem": problem}]}),
        )
    }

    fn unavailable(error_type: &'static str, what: &str) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({"status": "error", "error": format!("{what} unavailable")}),
            error_type: Some(error_type),
        }
    }

    fn database(e: &DbError) -> Self {
        tracing::error!(error = %ErrorChain(e), "database");
        Self::unavailable("database", "database")
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

/// What the insert found.
enum Insert {
    Done(Placement),
    Overlaps(String),
}

async fn create(State(app): State<Arc<App>>, body: Bytes) -> Answer {
    let new = match validation::validate(&body) {
        Ok(new) => new,
        Err(fields) => {
            return Answer::ok(
                StatusCode::BAD_REQUEST,
                json!({"status": "error", "error": "invalid placement", "fields": fields}),
            );
        }
    };
    let create = app.spans.start(
        "placement.create",
        [
            KeyValue::new(names::PLACEMENT_VIDEO_ID, new.video_id.clone()),
            KeyValue::new(names::PLACEMENT_PRODUCT_ID, new.product_id.clone()),
        ],
    );
    let inserted = match create.run(place(&app, new)).await {
        Ok(placement) => placement,
        Err(answer) => {
            if let Some(kind) = answer.error_type {
                create.fail(kind, format!("{kind} unavailable"));
            }
            return answer;
        }
    };
    create.set_attribute(KeyValue::new(names::PLACEMENT_ID, inserted.id.clone()));
    create.end();
    if let Err(answer) = publish(&app, &inserted).await {
        let id = inserted.id.clone();
        // The placement goes with its event: a retry of the request can then succeed.
        if let Err(e) = app
            .db
            .run(move |s| {
                s.execute(
                    "DELETE",
                    "placements",
                    "DELETE FROM placements WHERE id = ?1",
                    [&id],
                )
            })
            .await
        {
            tracing::error!(error = %ErrorChain(&e), "placement left without its event");
        }
        return answer;
    }
    let trace_id = Context::current()
        .span()
        .span_context()
        .trace_id()
        .to_string();
    Answer::ok(
        StatusCode::CREATED,
        json!({"placement": inserted, "trace_id": trace_id}),
    )
}

/// The placement's checks and insert, under `placement.create`: `placement.validate_video`
/// (the video and the product exist), then `placement.check_overlaps` and the insert.
async fn place(app: &App, new: NewPlacement) -> Result<Placement, Answer> {
    let (video, product) = (new.video_id.clone(), new.product_id.clone());
    let validate = app.spans.start("placement.validate_video", []);
    let found = validate
        .run(app.db.run(move |s| {
            let video = s.rows(
                "SELECT",
                "videos",
                "SELECT id FROM videos WHERE id = ?1",
                [&video],
                |_| Ok(()),
            )?;
            let product = s.rows(
                "SELECT",
                "products",
                "SELECT id FROM products WHERE id = ?1",
                [&product],
                |_| Ok(()),
            )?;
            Ok((!video.is_empty(), !product.is_empty()))
        }))
        .await;
    validate.end();
    match found {
        Err(e) => return Err(Answer::database(&e)),
        Ok((false, _)) => return Err(Answer::not_found("video_id", "video", &new.video_id)),
        Ok((_, false)) => {
            return Err(Answer::not_found("product_id", "product", &new.product_id));
        }
        Ok((true, true)) => {}
    }
    let spans = app.spans.clone();
    match app.db.run(move |s| insert(s, &spans, new)).await {
        Err(e) => Err(Answer::database(&e)),
        Ok(Insert::Overlaps(existing)) => Err(Answer::ok(
            StatusCode::CONFLICT,
            json!({"status": "error", "error": "placement overlaps another on this video",
                   "conflicting_placement_id": existing,
                   "fields": [{"field": "start_time", "problem": "overlaps"},
                              {"field": "end_time", "problem": "overlaps"}]}),
        )),
        Ok(Insert::Done(placement)) => Ok(placement),
    }
}

/// Checks for an overlap and inserts, in one `BEGIN IMMEDIATE` transaction (the check and the
/// insert cannot interleave with another writer's).
fn insert(
    s: &events_db::Session<'_>,
    spans: &Spans,
    new: NewPlacement,
) -> rusqlite::Result<Insert> {
    s.connection().execute_batch("BEGIN IMMEDIATE")?;
    let outcome = (|| {
        let check = spans.start("placement.check_overlaps", []);
        // Attached on this blocking thread for the one statement (no `.await` here).
        let attached = check.context().clone().attach();
        let overlapping = s.rows(
            "SELECT",
            "placements",
            "SELECT id FROM placements WHERE video_id = ?1 AND start_time < ?3 AND end_time > ?2 LIMIT 1",
            (&new.video_id, new.start_time, new.end_time),
            |r| r.get::<_, String>(0),
        );
        drop(attached);
        check.end();
        if let Some(existing) = overlapping?.into_iter().next() {
            return Ok(Insert::Overlaps(existing));
        }
        let placement = Placement {
            id: uuid::Uuid::new_v4().to_string(),
            video_id: new.video_id,
            product_id: new.product_id,
            start_time: new.start_time,
            end_time: new.end_time,
            status: "created".into(),
            file_key: None,
            notified_at: None,
            created_at: now(),
        };
        s.execute(
            "INSERT",
            "placements",
            "INSERT INTO placements (id, video_id, product_id, start_time, end_time, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            (
                &placement.id,
                &placement.video_id,
                &placement.product_id,
                placement.start_time,
                placement.end_time,
                &placement.status,
                &placement.created_at,
            ),
        )?;
        Ok(Insert::Done(placement))
    })();
    let end = if matches!(outcome, Ok(Insert::Done(_))) {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    if let Err(e) = s.connection().execute_batch(end) {
        // A COMMIT that failed (busy) leaves the transaction open: end it, or the next BEGIN
        // on this connection would fail.
        let _ = s.connection().execute_batch("ROLLBACK");
        return Err(e);
    }
    outcome
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `placement.created` under its PRODUCER span.
async fn publish(app: &App, placement: &Placement) -> Result<(), Answer> {
    let mut detail = json!({
        "placement_id": placement.id,
        "video_id": placement.video_id,
        "product_id": placement.product_id,
        "start_time": placement.start_time,
        "end_time": placement.end_time,
    });
    let extra = [
        KeyValue::new(names::PLACEMENT_ID, placement.id.clone()),
        KeyValue::new(names::PLACEMENT_VIDEO_ID, placement.video_id.clone()),
        KeyValue::new(names::PLACEMENT_PRODUCT_ID, placement.product_id.clone()),
    ];
    let span = match app.producer.start_put(&mut detail, extra) {
        Ok(span) => span,
        // The detail is built above as an object: this cannot happen, but answers if it does.
        Err(_) => return Err(Answer::unavailable("eventbridge", "event bus")),
    };
    if !app.detail_trace
        && let Some(object) = detail.as_object_mut()
    {
        object.remove("_trace");
    }
    let trace_header = app.producer.trace_header(&span);
    match app.bus.put(&detail, trace_header).await {
        Ok(receipt) => {
            receipt.record(&span);
            Ok(())
        }
        Err(e) => {
            span.fail("eventbridge", ErrorChain(&e));
            tracing::error!(error = %ErrorChain(&e), "placement.created not published");
            Err(Answer::unavailable("eventbridge", "event bus"))
        }
    }
}

async fn placement(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    let key = id.clone();
    let found = app
        .db
        .run(move |s| {
            s.rows(
                "SELECT",
                "placements",
                &format!("SELECT {PLACEMENT_COLUMNS} FROM placements WHERE id = ?1"),
                [&key],
                Placement::from_row,
            )
        })
        .await;
    match found {
        Err(e) => Answer::database(&e),
        Ok(rows) => match rows.into_iter().next() {
            Some(p) => Answer::ok(StatusCode::OK, json!({"placement": p})),
            None => Answer::not_found("id", "placement", &id),
        },
    }
}

#[derive(Debug, Serialize)]
struct Video {
    id: String,
    title: String,
    duration_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    placements: Option<Vec<Placement>>,
}

/// `GET /v1/videos[?include=placements[&eager=true]]`: with `include=placements` and no
/// `eager`, one `SELECT placements` per video (the seed's N+1, kept so the APM has one to find);
/// with `eager=true`, one query for them all.
async fn videos(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let include = match query.get("include").map(String::as_str) {
        None | Some("") => false,
        Some("placements") => true,
        Some(_) => return Answer::bad_field("include", "must be placements"),
    };
    let eager = match query.get("eager").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Answer::bad_field("eager", "must be true or false"),
    };
    let loaded = app
        .db
        .run(move |s| {
            let mut videos = s.rows(
                "SELECT",
                "videos",
                "SELECT id, title, duration_secs FROM videos ORDER BY id",
                [],
                |r| {
                    Ok(Video {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        duration_secs: r.get(2)?,
                        placements: None,
                    })
                },
            )?;
            if !include {
                return Ok(videos);
            }
            if eager {
                let all = s.rows(
                    "SELECT",
                    "placements",
                    &format!(
                        "SELECT {PLACEMENT_COLUMNS} FROM placements ORDER BY video_id, start_time"
                    ),
                    [],
                    Placement::from_row,
                )?;
                let mut by_video: HashMap<String, Vec<Placement>> = HashMap::new();
                for p in all {
                    by_video.entry(p.video_id.clone()).or_default().push(p);
                }
                for v in &mut videos {
                    v.placements = Some(by_video.remove(&v.id).unwrap_or_default());
                }
            } else {
                let sql = format!(
                    "SELECT {PLACEMENT_COLUMNS} FROM placements WHERE video_id = ?1 ORDER BY start_time"
                );
                for v in &mut videos {
                    v.placements = Some(s.rows(
                        "SELECT",
                        "placements",
                        &sql,
                        [&v.id],
                        Placement::from_row,
                    )?);
                }
            }
            Ok(videos)
        })
        .await;
    match loaded {
        Ok(videos) => Answer::ok(StatusCode::OK, json!({"videos": videos})),
        Err(e) => Answer::database(&e),
    }
}

async fn products(State(app): State<Arc<App>>) -> Answer {
    let loaded = app
        .db
        .run(|s| {
            s.rows(
                "SELECT",
                "products",
                "SELECT id, name, price_cents FROM products ORDER BY id",
                [],
                |r| {
                    Ok(
                        json!({"id": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?,
                              "price_cents": r.get::<_, i64>(2)?}),
                    )
                },
            )
        })
        .await;
    match loaded {
        Ok(products) => Answer::ok(StatusCode::OK, json!({"products": products})),
        Err(e) => Answer::database(&e),
    }
}

async fn health(State(app): State<Arc<App>>) -> Answer {
    let ping = app
        .db
        .run(|s| {
            s.connection()
                .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
        })
        .await;
    match ping {
        Ok(_) => Answer::ok(StatusCode::OK, json!({"status": "ok", "database": "ok"})),
        Err(e) => Answer::database(&e),
    }
}

async fn live() -> Answer {
    Answer::ok(StatusCode::OK, json!({"status": "ok"}))
}
