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
    /// An alert rules file (YAML groups of span, metric and flow rules; repeat for more). Check
    /// one with `throughline alerts check FILE`.
    #[arg(long = "alert-rules", value_name = "FILE")]
    pub alert_rules: Vec<PathBuf>,
    /// Where to POST Alertmanager's webhook payload (version 4) when an alert fires or
    /// resolves (repeatable).
    #[arg(long = "alert-webhook", value_name = "URL")]
    pub alert_webhooks: Vec<String>,
    /// An Alertmanager to send alerts to (its `POST /api/v2/alerts`; repeatable).
    #[arg(long = "alertmanager-url", value_name = "URL")]
    pub alertmanager_urls: Vec<String>,
}

/// The rules of every `--alert-rules` file, checked; an error names the file, group, rule and
/// field.
pub fn load_rules(files: &[PathBuf]) -> anyhow::Result<throughline_alerts::RuleSet> {
    let mut texts = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("--alert-rules: reading {}", f.display()))?;
        texts.push((f.display().to_string(), text));
    }
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    throughline_alerts::parse_files(&refs).map_err(|e| {
        let names: Vec<&str> = texts.iter().map(|(n, _)| n.as_str()).collect();
        anyhow::anyhow!("--alert-rules {}:\n{e}", names.join(", "))
    })
}

fn delivery_targets(args: &CollectorArgs) -> anyhow::Result<Vec<throughline_alerts::Target>> {
    let mut out = Vec::new();
    for (flag, urls, make) in [
        (
            "--alert-webhook",
            &args.alert_webhooks,
            throughline_alerts::Target::Webhook as fn(String) -> _,
        ),
        (
            "--alertmanager-url",
            &args.alertmanager_urls,
            throughline_alerts::Target::Alertmanager,
        ),
    ] {
        for u in urls {
            let parsed: http::Uri = u
                .parse()
                .with_context(|| format!("{flag} {u:?} is not a URL"))?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
                anyhow::bail!("{flag} {u:?} is not an http:// or https:// URL");
            }
            out.push(make(u.clone()));
        }
    }
    Ok(out)
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
    // Settings first: a bad rules file or URL stops start-up before anything is opened.
    let rules = load_rules(&args.alert_rules)?;
    let targets = delivery_targets(&args)?;
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
    let alerts = Arc::new(throughline_alerts::Alerts::over_store(
        rules,
        store.clone(),
        throughline_alerts::Delivery {
            targets,
            external_url: format!("http://{}", args.query_addr),
            ..throughline_alerts::Delivery::default()
        },
    ));
    let pages = throughline_apm::router_full(
        store.clone(),
        endpoints,
        crate::systems::dashboards(),
        Some(alerts.clone()),
    )
    .merge(throughline_alerts::api_router(alerts.clone()));
    let sink = alerts.sink(store.clone());
    let running = Collector::start(config, sink, store.clone(), Some(pages)).await?;
    alerts.set_external_url(format!("http://{}", running.query_addr));
    let alert_tasks = alerts.spawn();
    if !alerts.engine().rules().rules.is_empty() {
        tracing::info!(
            rules = alerts.engine().rules().rules.len(),
            groups = alerts.engine().rules().groups.len(),
            "alert rules loaded"
        );
    }
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
    for task in alert_tasks {
        task.abort();
    }
    running.shutdown().await;
    tokio::task::spawn_blocking(move || store.flush())
        .await?
        .context("could not flush the store")?;
    Ok(())
}
