//! The onboarding API of the reference system: POST /onboard to SQS.
//!
//! `POST /onboard` validates a customer (a 400 names each bad field), stores it in an embedded
//! SQLite file or in PostgreSQL (`DATABASE_URL`), and sends one SQS message whose attributes carry the trace context of its
//! PRODUCER span; `GET /customers/{id}` shows the customer and its onboarding status as the
//! worker moves it; `GET /health` reports the database and the queue.
//!
//! [`serve`] runs it on a bound listener; the binary in `main.rs` and `throughline serve
//! onboarding-api` are thin wrappers around it.

pub mod config;
pub mod customers;
pub mod entry;
pub mod names;
pub mod queue;
pub mod routes;
pub mod server;
pub mod validation;

use std::future::Future;
use std::sync::Arc;

pub use config::{ApiConfig, ConfigError};
pub use routes::{App, Telemetry};

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] customers::CustomerStoreError),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("the listener's address could not be read")]
    Listener(#[source] std::io::Error),
}

/// Opens the store, finds the queue, and serves until `shutdown` resolves.
pub async fn serve(
    config: ApiConfig,
    telemetry: Telemetry,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let store = customers::CustomerStore::open(&config.database).await?;
    let client = queue::sqs_client(config.sqs_endpoint.as_deref(), &config.region).await;
    let queue = queue::SqsQueue::resolve(
        client,
        &config.queue_name,
        config.queue_wait,
        config.queue_timeout,
    )
    .await?;
    let port = listener.local_addr().map_err(ServeError::Listener)?.port();
    tracing::info!(
        addr = %listener.local_addr().map_err(ServeError::Listener)?,
        queue_url = queue.url(),
        database = %config.database,
        "onboarding-api listening"
    );
    let app = Arc::new(App::new(store, queue, telemetry, port).with_db_semconv(config.db_semconv));
    let serve = server::serve_config(&config);
    let router = routes::router(app, config.max_body_bytes);
    throughline_service_kit::serve_http(listener, router, serve, shutdown).await;
    Ok(())
}
