//! The shop's checkout: `POST /orders/create {"user_id", "items": [{"product_id", "quantity"}]}`
//! reads each price from the catalog over HTTP, then writes the order and its lines in one
//! transaction through a bounded connection pool; `GET /orders/{id}`; `GET /health`.
//!
//! A checkout that gets no connection within the pool's wait time answers 503 with a JSON body
//! naming `ConnectionPoolExhausted`, its SERVER span carrying the seed's alert attributes. In the
//! Black Friday critical phase each transaction holds its connection for the critical hold (the
//! payment provider's slow answer, awaited inside the open transaction), so under the load
//! generator's peak traffic the pool really runs dry.

pub mod cart;
pub mod config;
pub mod entry;
pub mod routes;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use throughline_instrument::SharedTracer;

pub use config::{CheckoutConfig, ConfigError};
pub use routes::App;
pub use store::{OrderStore, StoreError};

/// The service name in telemetry.
pub const SERVICE_NAME: &str = "checkout";

/// The tracer the checkout reports through.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub tracer: SharedTracer,
}

impl Telemetry {
    /// The global tracer (set up by `throughline-telemetry`).
    pub fn global() -> Self {
        Self {
            tracer: Arc::new(opentelemetry::global::tracer(SERVICE_NAME)),
        }
    }
}

/// Why the checkout could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the order database")]
    Open(#[source] StoreError),
    #[error("the listener's address could not be read")]
    Listener(#[source] std::io::Error),
}

/// Opens the database and its pool, and serves until `shutdown` resolves.
pub async fn serve(
    config: CheckoutConfig,
    telemetry: Telemetry,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let store = OrderStore::open(&config).await.map_err(ServeError::Open)?;
    let addr = listener.local_addr().map_err(ServeError::Listener)?;
    tracing::info!(
        %addr,
        database = %config.database,
        catalog = %config.catalog_url,
        pool_size = config.pool_size,
        pool_wait_ms = config.pool_wait.as_millis() as u64,
        "checkout listening"
    );
    let app = Arc::new(App::new(store, telemetry, &config, addr.port()));
    let serve = throughline_service_kit::ServeConfig {
        request_timeout: Some(Duration::from_secs(30)),
        request_timeout_status: http::StatusCode::SERVICE_UNAVAILABLE,
        body_limit: Some(throughline_service_kit::BodyLimit::new(256 * 1024)),
        shutdown_grace: Duration::from_secs(5),
        ..Default::default()
    };
    throughline_service_kit::serve_http(listener, routes::router(app), serve, shutdown).await;
    Ok(())
}
