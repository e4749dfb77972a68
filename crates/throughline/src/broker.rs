//! `throughline broker`: runs the durable SQS and EventBridge broker until Ctrl-C or SIGTERM.

use anyhow::Context as _;
use opentelemetry::metrics::MeterProvider as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use throughline_broker::{Broker, BrokerConfig, Declarations, QueueDeclaration};

/// Flags of `throughline broker`.
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// Address to listen on (9324 is ElasticMQ's port, so existing set-ups work unchanged).
    #[arg(
        long,
        default_value = "127.0.0.1:9324",
        env = "THROUGHLINE_BROKER_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Directory for the broker's data; created if missing.
    #[arg(
        long,
        default_value = ".throughline/broker",
        env = "THROUGHLINE_BROKER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// A queue to create at start-up (repeatable); existing queues are kept.
    #[arg(long = "queue", value_name = "NAME")]
    pub queues: Vec<String>,
    /// A JSON file declaring queues (attributes, dead-letter queues) and EventBridge rules.
    #[arg(long, value_name = "FILE", env = "THROUGHLINE_BROKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Region in ARNs and event envelopes.
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    pub region: String,
    /// Account id in queue URLs and ARNs (12 digits); redrive policies and EventBridge targets
    /// reach a queue only by an ARN of this account.
    #[arg(
        long,
        default_value = throughline_broker::DEFAULT_ACCOUNT_ID,
        env = "THROUGHLINE_BROKER_ACCOUNT_ID",
        value_parser = account_id
    )]
    pub account_id: String,
    /// Fsync every commit so answered writes also survive power loss (they always survive
    /// `kill -9` of the broker).
    #[arg(long)]
    pub sync_writes: bool,
}

fn account_id(value: &str) -> Result<String, throughline_broker::AccountIdError> {
    throughline_broker::check_account_id(value).map(|()| value.to_owned())
}

/// Turns the flags into the broker's validated configuration (reading the config file).
pub fn config(args: &BrokerArgs) -> anyhow::Result<BrokerConfig> {
    let mut declarations = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--config {}: cannot read the file", path.display()))?;
            serde_json::from_str::<Declarations>(&text).with_context(|| {
                format!(
                    "--config {}: not a valid broker declaration file",
                    path.display()
                )
            })?
        }
        None => Declarations::default(),
    };
    for name in &args.queues {
        if !declarations.queues.iter().any(|q| &q.name == name) {
            declarations
                .queues
                .push(QueueDeclaration::named(name.clone()));
        }
    }
    let mut config = BrokerConfig::new(&args.data_dir);
    config.region = args.region.clone();
    config.account_id = args.account_id.clone();
    config.declarations = declarations;
    config.sync_writes = args.sync_writes;
    Ok(config)
}

/// Runs the broker in the foreground.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in a file the output is redirected to.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let telemetry = broker_metrics(std::env::vars().collect())?;
    let meter = telemetry
        .meter_provider()
        .map(|p| p.meter("throughline-broker"));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        let broker = Broker::open(config)
            .await
            .with_context(|| format!("--data-dir {}", args.data_dir.display()))?;
        let _instruments = meter.map(|meter| {
            let observed = broker.clone();
            throughline_instrument::aws_metrics::observe_queues(
                &meter,
                Arc::new(move || observed.queue_snapshots().into_iter().map(figures).collect()),
            )
        });
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
        let handle = broker.serve(listener)?;
        tracing::info!(endpoint = %handle.endpoint_url(), data_dir = %args.data_dir.display(), "broker listening");
        throughline_service_kit::shutdown_signal().await;
        tracing::info!("broker stopping");
        handle.shutdown().await;
        Ok(())
    });
    let flushed = telemetry.shutdown(std::time::Duration::from_secs(2));
    if !flushed.is_exported() {
        tracing::warn!(?flushed, "the last AWS/SQS metrics were not exported");
    }
    result
}

fn figures(
    s: throughline_broker::QueueSnapshot,
) -> throughline_instrument::aws_metrics::QueueFigures {
    throughline_instrument::aws_metrics::QueueFigures {
        queue: s.queue,
        visible: s.visible,
        not_visible: s.not_visible,
        delayed: s.delayed,
        oldest_age_secs: s.oldest_age_secs,
        sent: s.sent,
        received: s.received,
        deleted: s.deleted,
        moved_to_dead_letter: s.moved_to_dead_letter,
    }
}

/// The broker's `AWS/SQS` metrics pipeline from the `OTEL_*` variables (service
/// `throughline-broker` unless `OTEL_SERVICE_NAME` says otherwise; no spans of its own). Off
/// unless an OTLP endpoint is set (`throughline up` sets it): a broker started by hand does not
/// send to whatever listens on the default port. `OTEL_METRICS_EXPORTER=none` turns them off.
fn broker_metrics(
    mut env: std::collections::HashMap<String, String>,
) -> anyhow::Result<throughline_telemetry::Telemetry> {
    if !crate::lambda::otlp_endpoint_set(&env) {
        env.insert("OTEL_METRICS_EXPORTER".into(), "none".into());
    }
    env.insert("OTEL_TRACES_EXPORTER".into(), "none".into());
    env.insert("OTEL_LOGS_EXPORTER".into(), "none".into());
    let config = throughline_telemetry::TelemetryConfig::from_env(env)?;
    Ok(throughline_telemetry::Telemetry::builder(config)
        .default_service_name("throughline-broker")
        .default_metric_export_interval(std::time::Duration::from_secs(10))
        .build()?)
}
