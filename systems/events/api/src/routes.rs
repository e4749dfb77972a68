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
use events_db::{Arg, DbError, PLACEMENT_COLUMNS, Placement};
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
        // The placement goes with its event: a retry of the request can then succeed.
        if let Err(e) = app
            .db
            .execute(
                "DELETE",
                "placements",
                "DELETE FROM placements WHERE id = ?1",
                vec![Arg::from(&inserted.id)],
            )
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

/// Whether `sql` (one `?1` parameter) finds a row.
async fn exists(
    db: &events_db::Database,
    table: &'static str,
    sql: &str,
    id: &str,
) -> Result<bool, DbError> {
    let found = db
        .rows("SELECT", table, sql, vec![Arg::from(id)], |_| Ok(()))
        .await?;
    Ok(!found.is_empty())
}

/// The placement's checks and insert, under `placement.create`: `placement.validate_video`
/// (the video and the product exist), then `placement.check_overlaps` and the insert.
async fn place(app: &App, new: NewPlacement) -> Result<Placement, Answer> {
    let validate = app.spans.start("placement.validate_video", []);
    let found = validate
        .run(async {
            let video = exists(
                &app.db,
                "videos",
                "SELECT id FROM videos WHERE id = ?1",
                &new.video_id,
            )
            .await?;
            let product = exists(
                &app.db,
                "products",
                "SELECT id FROM products WHERE id = ?1",
                &new.product_id,
            )
            .await?;
            Ok::<_, DbError>((video, product))
        })
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
    match insert(app, new).await {
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

/// Checks for an overlap and inserts in one transaction that no other insert on the same
/// video can interleave with (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's lock on the video).
async fn insert(app: &App, new: NewPlacement) -> Result<Insert, DbError> {
    let mut tx = app.db.begin().await?;
    tx.serialize_on(&new.video_id).await?;
    let check = app.spans.start("placement.check_overlaps", []);
    let overlapping = check
        .run(tx.rows(
            "SELECT",
            "placements",
            "SELECT id FROM placements WHERE video_id = ?1 AND start_time < ?2 AND end_time > ?3 LIMIT 1",
            vec![
                Arg::from(&new.video_id),
                Arg::from(new.end_time),
                Arg::from(new.start_time),
            ],
            |r| r.text(0),
        ))
        .await;
    check.end();
    if let Some(existing) = overlapping?.into_iter().next() {
        tx.rollback().await?;
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
    tx.execute(
        "INSERT",
        "placements",
        "INSERT INTO placements (id, video_id, product_id, start_time, end_time, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        vec![
            Arg::from(&placement.id),
            Arg::from(&placement.video_id),
            Arg::from(&placement.product_id),
            Arg::from(placement.start_time),
            Arg::from(placement.end_time),
            Arg::from(&placement.status),
            Arg::from(&placement.created_at),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Insert::Done(placement))
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
    let found = app
        .db
        .rows(
            "SELECT",
            "placements",
            &format!("SELECT {PLACEMENT_COLUMNS} FROM placements WHERE id = ?1"),
            vec![Arg::from(&id)],
            Placement::from_row,
        )
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
    placements: Option<Vec<ListedPlacement>>,
}

/// A placement as the video listing shows it: with its product's name and reach (how many
/// placements that product has across the catalogue).
#[derive(Debug, Serialize)]
struct ListedPlacement {
    #[serde(flatten)]
    placement: Placement,
    product_name: String,
    product_reach: i64,
}

impl ListedPlacement {
    fn from_row(r: &dyn events_db::Row) -> Result<Self, DbError> {
        Ok(Self {
            placement: Placement::from_row(r)?,
            product_name: r.text(9)?,
            product_reach: r.int(10)?,
        })
    }
}

/// The listing's placements (`{where}` a filter or nothing, `{order}` the order): each with its
/// product's name and its reach, counted over every placement.
fn listed_placements_sql(filter: &str, order: &str) -> String {
    format!(
        "SELECT p.id, p.video_id, p.product_id, p.start_time, p.end_time, p.status, p.file_key, \
         p.notified_at, p.created_at, pr.name, r.reach FROM placements p \
         JOIN products pr ON pr.id = p.product_id \
         JOIN (SELECT product_id, count(*) AS reach FROM placements GROUP BY product_id) r \
         ON r.product_id = p.product_id{filter} ORDER BY {order}"
    )
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
    match list_videos(&app.db, include, eager).await {
        Ok(videos) => Answer::ok(StatusCode::OK, json!({"videos": videos})),
        Err(e) => Answer::database(&e),
    }
}

async fn list_videos(
    db: &events_db::Database,
    include: bool,
    eager: bool,
) -> Result<Vec<Video>, DbError> {
    let mut videos = db
        .rows(
            "SELECT",
            "videos",
            "SELECT id, title, duration_secs FROM videos ORDER BY id",
            vec![],
            |r| {
                Ok(Video {
                    id: r.text(0)?,
                    title: r.text(1)?,
                    duration_secs: r.real(2)?,
                    placements: None,
                })
            },
        )
        .await?;
    if !include {
        return Ok(videos);
    }
    if eager {
        let all = db
            .rows(
                "SELECT",
                "placements",
                &listed_placements_sql("", "p.video_id, p.start_time"),
                vec![],
                ListedPlacement::from_row,
            )
            .await?;
        let mut by_video: HashMap<String, Vec<ListedPlacement>> = HashMap::new();
        for p in all {
            by_video
                .entry(p.placement.video_id.clone())
                .or_default()
                .push(p);
        }
        for v in &mut videos {
            v.placements = Some(by_video.remove(&v.id).unwrap_or_default());
        }
    } else {
        let sql = listed_placements_sql(" WHERE p.video_id = ?1", "p.start_time");
        for v in &mut videos {
            v.placements = Some(
                db.rows(
                    "SELECT",
                    "placements",
                    &sql,
                    vec![Arg::from(&v.id)],
                    ListedPlacement::from_row,
                )
                .await?,
            );
        }
    }
    Ok(videos)
}

async fn products(State(app): State<Arc<App>>) -> Answer {
    let loaded = app
        .db
        .rows(
            "SELECT",
            "products",
            "SELECT id, name, price_cents FROM products ORDER BY id",
            vec![],
            |r| Ok(json!({"id": r.text(0)?, "name": r.text(1)?, "price_cents": r.int(2)?})),
        )
        .await;
    match loaded {
        Ok(products) => Answer::ok(StatusCode::OK, json!({"products": products})),
        Err(e) => Answer::database(&e),
    }
}

async fn health(State(app): State<Arc<App>>) -> Answer {
    match app.db.ping().await {
        Ok(()) => Answer::ok(StatusCode::OK, json!({"status": "ok", "database": "ok"})),
        Err(e) => Answer::database(&e),
    }
}

async fn live() -> Answer {
    Answer::ok(StatusCode::OK, json!({"status": "ok"}))
}
