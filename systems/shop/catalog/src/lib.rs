//! The shop's product catalog: `GET /products?category=…&limit=…` (a category page, read through
//! `idx_products_category`), `GET /products/{id}`, `GET /health`, on an SQLite file seeded with
//! 100,000 products at first start.
//!
//! In the Black Friday degradation phase the catalog really drops the index, so category pages
//! really scan the table; the database span then says so (`db.full_table_scan`,
//! `db.rows_scanned` from SQLite's own full-scan counter, `db.slow_query` past the threshold).
//! The index is back as soon as the phase ends.
//!
//! [`serve`] runs it on a bound listener; `main.rs` and `throughline serve product-catalog` are
//! thin wrappers around [`entry::run_main`].

pub mod config;
pub mod entry;
pub mod routes;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use shop_db::{DemoClock, Phase};
use throughline_instrument::SharedTracer;

pub use config::{CatalogConfig, ConfigError};
pub use routes::App;
pub use store::{CatalogStore, StoreError};

/// The service name in telemetry.
pub const SERVICE_NAME: &str = "product-catalog";

/// The tracer the catalog reports through.
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

/// Why the catalog could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the catalog database")]
    Open(#[source] StoreError),
    #[error("the listener's address could not be read")]
    Listener(#[source] std::io::Error),
}

/// Opens (and at first start seeds) the database, keeps the index in step with the demo phase,
/// and serves until `shutdown` resolves.
pub async fn serve(
    config: CatalogConfig,
    telemetry: Telemetry,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let store = CatalogStore::open(&config)
        .await
        .map_err(ServeError::Open)?;
    let addr = listener.local_addr().map_err(ServeError::Listener)?;
    tracing::info!(
        %addr,
        database = %config.database,
        products = store.product_count(),
        "product-catalog listening"
    );
    let app = Arc::new(App::new(store.clone(), telemetry, &config, addr.port()));
    let keeper = tokio::spawn(keep_index_in_step(store, config.demo.clone()));
    let serve = throughline_service_kit::ServeConfig {
        request_timeout: Some(Duration::from_secs(30)),
        request_timeout_status: http::StatusCode::SERVICE_UNAVAILABLE,
        shutdown_grace: Duration::from_secs(5),
        ..Default::default()
    };
    throughline_service_kit::serve_http(listener, routes::router(app), serve, shutdown).await;
    keeper.abort();
    Ok(())
}

/// Drops `idx_products_category` while the demo is in its degradation phase and puts it back
/// once it is not (checked four times a demo minute, and at least once a second; a demo may be
/// started later, through `POST /demo`). Only a change of phase touches the index: one dropped
/// by hand outside a demo stays dropped (what `scripts/bench-shop` measures).
async fn keep_index_in_step(store: CatalogStore, clock: DemoClock) {
    loop {
        let tick = clock
            .minute_length()
            .map_or(Duration::from_secs(1), |m| m / 4)
            .min(Duration::from_secs(1));
        tokio::time::sleep(tick).await;
        let wanted = clock.phase() != Phase::Degradation;
        if store.category_index() == wanted {
            continue;
        }
        match store.set_category_index(wanted).await {
            Ok(true) if wanted => tracing::info!(
                index = shop_db::names::CATEGORY_INDEX,
                phase = %clock.phase(),
                "category index restored"
            ),
            Ok(true) => tracing::warn!(
                index = shop_db::names::CATEGORY_INDEX,
                phase = %clock.phase(),
                "category index dropped: category pages now scan the products table"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!(
                error = %throughline_service_kit::ErrorChain(&e),
                "the category index could not be changed"
            ),
        }
    }
}
