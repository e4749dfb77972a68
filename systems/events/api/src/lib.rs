//! nedlia-api, the front of the event fan-out (seed 004): `POST /v1/placements` validates a
//! placement (a 400 names each bad field), checks its video and product (404) and overlaps
//! (409), stores it (SQLite or PostgreSQL) and puts `placement.created` on the `nedlia-events` bus with its
//! context in `detail._trace` (and the X-Ray `TraceHeader` when that propagator is on);
//! `GET /v1/placements/{id}` shows the status the workers move it through; `GET /v1/videos`
//! (`?include=placements`, the seed's N+1, `&eager=true` in one query) and `GET /v1/products`
//! list the seeded catalogue. Health routes are untraced; the SQL commenter is on.
//!
//! [`serve`] runs it on a bound listener; `main.rs` and `throughline serve nedlia-api` wrap it.

pub mod config;
pub mod entry;
pub mod events;
pub mod names;
pub mod routes;
pub mod validation;

use std::future::Future;
use std::sync::Arc;

use http::StatusCode;
use throughline_instrument::SharedTracer;
use throughline_service_kit::{BodyLimit, ServeConfig};

pub use config::{ApiConfig, ConfigError};
pub use routes::App;

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Database(#[from] events_db::OpenError),
    #[error("the listener's address could not be read")]
    Listener(#[source] std::io::Error),
}

/// PostgreSQL connections the API pools.
pub const POOL_SIZE: u32 = 10;

/// Opens the database, then serves until `shutdown` resolves; spans come from `tracer`.
pub async fn serve(
    config: ApiConfig,
    tracer: SharedTracer,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let db = events_db::Database::open(
        &config.database,
        Arc::clone(&tracer),
        config.sql_commenter,
        POOL_SIZE,
    )
    .await?;
    let bus = events::EventBus::connect(
        config.eventbridge_endpoint.as_deref(),
        &config.region,
        &config.event_bus,
    )
    .await;
    let addr = listener.local_addr().map_err(ServeError::Listener)?;
    tracing::info!(%addr, bus = %config.event_bus, database = %config.database, "nedlia-api listening");
    let app = Arc::new(App::new(db, bus, tracer, addr.port(), config.detail_trace));
    let router = routes::router(app, config.max_body_bytes);
    let serve = ServeConfig {
        request_timeout: Some(config.request_timeout),
        request_timeout_status: StatusCode::SERVICE_UNAVAILABLE,
        body_limit: Some(BodyLimit::new(config.max_body_bytes)),
        allowed_hosts: config.allowed_hosts.clone(),
        shutdown_grace: std::time::Duration::from_secs(5),
        ..ServeConfig::default()
    };
    throughline_service_kit::serve_http(listener, router, serve, shutdown).await;
    Ok(())
}
