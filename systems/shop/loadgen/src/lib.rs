//! The shop's load generator (`:8010`, service `load-generator`): user journeys (`browse`,
//! `search`, `purchase`, `abandon`), each its own trace rooted at `user_journey.{type}`,
//! through the catalog and the checkout; continuous traffic; and, with `DEMO_MODE=blackfriday`,
//! its own Black Friday traffic, rising through the ramp to the peak rate.
//!
//! API: `POST /api/products/browse {"category"}`, `POST /api/journeys/{type}` (answers with the
//! journey's trace id), `POST /api/traffic {"rate", "duration_secs", "mix"}`, `DELETE
//! /api/traffic`, `POST /api/demo {"scenario", "minute_secs", "peak_rate"}` (a demo on the
//! running shop: the catalog's and checkout's clocks set to the same start, then the demo's own
//! traffic; what `throughline load shop --scenario` asks for), `GET /api/stats`, `GET /health`.

pub mod config;
pub mod entry;
pub mod journey;
pub mod routes;
pub mod stats;
pub mod traffic;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use throughline_instrument::{HttpClient, SharedTracer, Spans};

pub use config::{ConfigError, LoadgenConfig};
pub use journey::{JourneyKind, JourneyOutcome, Journeys};
pub use routes::App;

/// The service name in telemetry.
pub const SERVICE_NAME: &str = "load-generator";

/// The tracer the load generator reports through.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub tracer: SharedTracer,
}

impl Telemetry {
    pub fn global() -> Self {
        Self {
            tracer: Arc::new(opentelemetry::global::tracer(SERVICE_NAME)),
        }
    }
}

/// Why the load generator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the listener's address could not be read")]
    Listener(#[source] std::io::Error),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The app: journeys through `config`'s catalog and checkout, traffic, stats.
pub fn app(config: LoadgenConfig, telemetry: Telemetry) -> Result<Arc<App>, ServeError> {
    let client = reqwest::Client::builder()
        .timeout(journey::STEP_TIMEOUT)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(config.max_in_flight)
        .build()
        .map_err(ServeError::Client)?;
    let journeys = Journeys::new(
        HttpClient::shared(client.clone(), telemetry.tracer.clone()),
        Spans::shared(telemetry.tracer.clone()),
        config.catalog_url.clone(),
        config.checkout_url.clone(),
        Arc::default(),
        config.demo.clone(),
    );
    let traffic = traffic::Traffic::new(journeys.clone(), config.max_in_flight);
    Ok(Arc::new(App {
        journeys,
        traffic,
        control: client,
        config,
    }))
}

/// Serves until `shutdown` resolves; in a Black Friday demo, drives the demo's traffic from
/// the start.
pub async fn serve(
    config: LoadgenConfig,
    telemetry: Telemetry,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(ServeError::Listener)?;
    let app = app(config.clone(), telemetry)?;
    tracing::info!(
        %addr,
        catalog = %config.catalog_url,
        checkout = %config.checkout_url,
        demo = config.demo.is_demo(),
        "load-generator listening"
    );
    if config.demo.is_demo() {
        app.traffic.start(
            traffic::Rate::Demo {
                clock: config.demo.clone(),
                peak_per_sec: config.peak_rate,
            },
            traffic::Mix::default(),
        );
    }
    let serve = throughline_service_kit::ServeConfig {
        // A journey bounds itself (each step has the client's timeout).
        request_timeout: Some(Duration::from_secs(120)),
        shutdown_grace: Duration::from_secs(5),
        ..Default::default()
    };
    throughline_service_kit::serve_http(listener, routes::router(app.clone()), serve, shutdown)
        .await;
    app.traffic.stop();
    Ok(())
}
