//! `throughline collector`: the OTLP receivers and the query API over a durable store in a data
//! directory, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use throughline_collector::{Collector, CollectorConfig, IngestLimits};
use throughline_store::{Store, StoreConfig};

/// How often the store's time-driven upkeep runs (integrity verdicts, retention).
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct CollectorArgs {
    /// Where the store keeps its files.
    #[arg(long, env = "THROUGHLINE_DATA_DIR")]
    data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:4317")]
    grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:4318")]
    http_addr: SocketAddr,
    /// Jaeger query API and /metrics listen address.
    #[arg(long, default_value = "127.0.0.1:16686")]
    query_addr: SocketAddr,
    /// Delete data older than this many seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    retention_secs: u64,
    /// Delete the oldest data beyond this many bytes on disk.
    #[arg(long, default_value_t = 10 << 30)]
    max_disk_bytes: u64,
    /// Seconds after a trace's last span before its integrity is judged.
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// Largest export accepted, after decompression.
    #[arg(long, default_value_t = 64 << 20)]
    max_body_bytes: usize,
    /// Export bytes allowed in flight before clients are told to retry later.
    #[arg(long, default_value_t = 256 << 20)]
    max_inflight_bytes: u64,
    /// fdatasync every write (survives power loss, not only a killed process).
    #[arg(long)]
    sync_writes: bool,
    /// The fewest consecutive sibling repeats (database queries of one statement, HTTP calls,
    /// one-message sends) that make a finding (Sentry's N+1 threshold: 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
    n_plus_one_min_repeats: u32,
    /// The least wall time, in milliseconds, the repeats must cover together (Sentry's: 50).
    #[arg(long, default_value_t = 50)]
    n_plus_one_min_ms: u64,
    /// A host name, beyond localhost, 127.0.0.1 and [::1], that the loopback listeners answer
    /// to (repeat it, or list them comma-separated in the variable); others get 403.
    #[arg(
        long = "allowed-host",
        env = "THROUGHLINE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
}

/// Threads for store writes and queries; tokio's default is 512.
const COLLECTOR_BLOCKING_THREADS: usize = 8;

pub fn run(args: CollectorArgs) -> anyhow::Result<()> {
    // Our own log lines go to stderr; RUST_LOG overrides the level.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in a file the output is redirected to.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Store writes and queries run on the blocking pool. Writes serialize on the store's
        // lock after encoding, so more threads than this only add stacks and malloc arenas (each
        // new thread that allocates gets its own, which kept ~15 MB of freed buffers resident).
        .max_blocking_threads(COLLECTOR_BLOCKING_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: CollectorArgs) -> anyhow::Result<()> {
    let mut store_config = StoreConfig::new(&args.data_dir);
    store_config.retention_secs = args.retention_secs;
    store_config.max_disk_bytes = args.max_disk_bytes;
    store_config.settle_secs = args.settle_secs;
    store_config.sync_writes = args.sync_writes;
    store_config.findings.min_repeats = args.n_plus_one_min_repeats;
    store_config.findings.min_duration_ms = args.n_plus_one_min_ms;
    let store = tokio::task::spawn_blocking(move || Store::open(store_config))
        .await?
        .with_context(|| format!("could not open the store in {}", args.data_dir.display()))?;
    let store = Arc::new(store);
    let config = CollectorConfig {
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        query_addr: args.query_addr,
        limits: IngestLimits {
            max_body_bytes: args.max_body_bytes,
            max_inflight_bytes: args.max_inflight_bytes,
            ..IngestLimits::default()
        },
        serve: throughline_service_kit::ServeConfig {
            allowed_hosts: throughline_service_kit::AllowedHosts::parse(
                "--allowed-host",
                &args.allowed_hosts,
            )?,
            ..throughline_collector::default_serve_config()
        },
    };
    // The APM pages share the query address with the Jaeger API (`/api/*`, `/metrics`); their
    // empty state names the OTLP addresses this collector listens on.
    let endpoints = throughline_apm::OtlpEndpoints::from_addrs(args.grpc_addr, args.http_addr);
    let pages = throughline_apm::router_with_dashboards(
        store.clone(),
        endpoints,
        crate::systems::dashboards(),
    );
    let running = Collector::start(config, store.clone(), store.clone(), Some(pages)).await?;
    println!(
        "collector: OTLP/gRPC {} · OTLP/HTTP {} · APM and query API http://{}",
        running.grpc_addr, running.http_addr, running.query_addr
    );

    let upkeep_store = Arc::clone(&store);
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTAIN_INTERVAL);
        loop {
            tick.tick().await;
            let store = Arc::clone(&upkeep_store);
            if let Ok(Err(err)) = tokio::task::spawn_blocking(move || store.maintain()).await {
                tracing::warn!(error = %err, "store upkeep failed");
            }
        }
    });

    throughline_service_kit::shutdown_signal().await;
    upkeep.abort();
    running.shutdown().await;
    tokio::task::spawn_blocking(move || store.flush())
        .await?
        .context("could not flush the store")?;
    Ok(())
}
