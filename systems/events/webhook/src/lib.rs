//! The local stand-in for `external-service.com`, the webhook nedlia-notifier calls: `POST
//! /webhook` takes a JSON notification and answers 202, under a SERVER span that continues the
//! notifier's CLIENT span (so the trace reaches the outside service too); `GET /health` is not
//! traced. `NEDLIA_WEBHOOK_FAIL_STATUS` makes it answer that status instead (a failing partner).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use throughline_instrument::{HttpServerLayer, SharedTracer};
use throughline_service_kit::{ServeConfig, ServiceIdentity, ServiceProcess};

/// The service name its spans carry, as the seed's outside partner.
pub const SERVICE_NAME: &str = "external-service";
/// Where it listens unless `NEDLIA_WEBHOOK_ADDR` says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8021";

/// A setting that stopped start-up, or the server that could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{name}: {value:?} {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error(transparent)]
    Process(#[from] throughline_service_kit::RunError<ServeError>),
}

/// Why the receiver stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Bind(#[from] throughline_service_kit::BindError),
}

#[derive(Debug)]
struct Receiver {
    received: AtomicU64,
    fail_status: Option<StatusCode>,
}

/// The receiver's routes, traced with `tracer` (health untraced).
pub fn router(tracer: SharedTracer, server_port: u16, fail_status: Option<StatusCode>) -> Router {
    let state = Arc::new(Receiver {
        received: AtomicU64::new(0),
        fail_status,
    });
    Router::new()
        .route("/webhook", post(receive))
        .route("/health", get(health))
        .layer(
            HttpServerLayer::shared(tracer)
                .server_port(server_port)
                .exclude_path("/health"),
        )
        .with_state(state)
}

async fn receive(State(rx): State<Arc<Receiver>>, body: Bytes) -> (StatusCode, axum::Json<Value>) {
    if let Some(status) = rx.fail_status {
        return (
            status,
            axum::Json(json!({"status": "error", "error": "failing on purpose"})),
        );
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(_)) => {
            let n = rx.received.fetch_add(1, Ordering::Relaxed) + 1;
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({"status": "accepted", "received": n})),
            )
        }
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "error", "error": "invalid notification",
                              "fields": [{"field": "body", "problem": "must be a JSON object"}]})),
        ),
    }
}

async fn health(State(rx): State<Arc<Receiver>>) -> axum::Json<Value> {
    axum::Json(json!({"status": "ok", "received": rx.received.load(Ordering::Relaxed)}))
}

/// Serves on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tracer: SharedTracer,
    fail_status: Option<StatusCode>,
    shutdown: impl Future<Output = ()>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let router = router(tracer, port, fail_status);
    throughline_service_kit::serve_http(listener, router, ServeConfig::default(), shutdown).await;
}

/// Runs the receiver as a process until SIGINT or SIGTERM.
pub fn run_main(env: HashMap<String, String>) -> Result<(), RunError> {
    let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let raw = get("NEDLIA_WEBHOOK_ADDR").unwrap_or(DEFAULT_ADDR);
    let addr: SocketAddr = raw.parse().map_err(|_| RunError::Invalid {
        name: "NEDLIA_WEBHOOK_ADDR",
        value: raw.to_owned(),
        problem: "is not an ip:port address",
    })?;
    let fail_status = match get("NEDLIA_WEBHOOK_FAIL_STATUS") {
        None => None,
        Some(v) => Some(
            v.parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| RunError::Invalid {
                    name: "NEDLIA_WEBHOOK_FAIL_STATUS",
                    value: v.to_owned(),
                    problem: "is not an HTTP error status (400 to 599)",
                })?,
        ),
    };
    let process = ServiceProcess::new(ServiceIdentity {
        name: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        namespace: "partners",
    });
    throughline_service_kit::run_main(env, process, |cx| async move {
        let listener = throughline_service_kit::bind(addr).await?;
        tracing::info!(%addr, "webhook receiver listening");
        let tracer = Arc::new(opentelemetry::global::tracer(SERVICE_NAME));
        serve(listener, tracer, fail_status, cx.shutdown_signal()).await;
        Ok(())
    })?;
    Ok(())
}
