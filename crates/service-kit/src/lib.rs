//! The service kit: one HTTP server set-up and one process start for every service of the
//! workspace.
//!
//! - [`serve_http`] / [`spawn_http`] serve an axum [`Router`](axum::Router) (tonic services too,
//!   through `tonic::service::Routes::into_axum_router`) over HTTP/1.1 and HTTP/2 on one
//!   listener, with the timeouts, limits and allowed-hosts check of a [`ServeConfig`], and a
//!   graceful shutdown bounded by its grace period.
//! - [`shutdown_signal`] resolves on SIGINT or SIGTERM.
//! - [`objects`] (feature `objects`; S3 with `s3`): where a service keeps the objects it writes,
//!   a directory or `s3://bucket/prefix` from the `AWS_*` pairs of its environment map.
//! - [`database`] (feature `database`): where a service keeps its tables, from `DATABASE_URL`
//!   (SQLite or PostgreSQL, a system's own schema), the password never shown, and the SQLite
//!   file opened with the settings every service uses.
//! - [`run_main`] runs a service as a process: telemetry from the environment map, the runtime,
//!   the signal, the service's future, the last flush.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use throughline_service_kit::{ServeConfig, serve_http, shutdown_signal};
//! let router = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! serve_http(listener, router, ServeConfig::default(), shutdown_signal()).await;
//! # Ok(()) }
//! ```

pub mod config;
#[cfg(feature = "database")]
pub mod database;
mod guard;
pub mod layers;
#[cfg(feature = "objects")]
pub mod objects;
pub mod process;
pub mod serve;
pub mod signal;

pub use config::{
    ALLOWED_HOSTS_ENV, AllowedHosts, AllowedHostsError, BodyLimit, ServeConfig, too_large_message,
};
pub use process::{
    ErrorChain, HttpServiceError, MainError, RunError, RuntimeShape, ServiceContext,
    ServiceIdentity, ServiceProcess, run_main,
};
pub use serve::{BindError, HttpServer, bind, serve_http, spawn_http};
pub use signal::shutdown_signal;
