//! `throughline apm`: the APM pages over a store folder, for looking at stored traces locally.
//! The Jaeger query API (`/api/*`) is served beside the pages, as `throughline collector` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use throughline_collector::QueryServer;
use throughline_store::{Store, StoreConfig};

/// How long one page may take before the server answers 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle store settles its traces (integrity judgements, service-graph pairing).
const MAINTAIN_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct ApmArgs {
    /// The store folder (the collector's `--data-dir`). Do not point it at a folder a running
    /// collector is writing.
    #[arg(long, env = "THROUGHLINE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Where the pages listen.
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub listen: SocketAddr,
    /// A host name, beyond localhost, 127.0.0.1 and [::1], that a loopback listener answers to
    /// (repeat it, or list them comma-separated in the variable); others get 403.
    #[arg(
        long = "allowed-host",
        env = "THROUGHLINE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
}

pub fn run(args: ApmArgs) -> anyhow::Result<()> {
    let store = Store::open(StoreConfig::new(&args.data_dir)).with_context(|| {
        format!(
            "--data-dir {}: the store could not be opened",
            args.data_dir.display()
        )
    })?;
    let store = Arc::new(store);
    let serve = throughline_service_kit::ServeConfig {
        request_timeout: Some(REQUEST_TIMEOUT),
        request_timeout_status: StatusCode::SERVICE_UNAVAILABLE,
        allowed_hosts: throughline_service_kit::AllowedHosts::parse(
            "--allowed-host",
            &args.allowed_hosts,
        )?,
        ..throughline_service_kit::ServeConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
        let maintained = Arc::clone(&store);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MAINTAIN_EVERY).await;
                let store = Arc::clone(&maintained);
                if let Ok(Err(err)) = tokio::task::spawn_blocking(move || store.maintain()).await {
                    tracing::warn!(error = %err, "store upkeep failed");
                }
            }
        });
        // The Jaeger `/api/*` beside the pages, so `throughline verify` can read a stopped store.
        let store: Arc<dyn throughline_store::TraceReader> = store;
        let pages = throughline_apm::router_with_dashboards(
            Arc::clone(&store),
            throughline_apm::OtlpEndpoints::default(),
            crate::systems::dashboards(),
        );
        let app = QueryServer::new(store).with_pages(pages).router();
        println!(
            "throughline apm: http://{}/ (pages and /api/*) over {}",
            args.listen,
            args.data_dir.display()
        );
        throughline_service_kit::serve_http(
            listener,
            app,
            serve,
            throughline_service_kit::shutdown_signal(),
        )
        .await;
        Ok(())
    })
}
