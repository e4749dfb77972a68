//! `throughline collector`: the OTLP receivers and the query API over a durable store in a data
//! directory, until Ctrl-C or SIGTERM; with `--export-otlp`, forwarding upstream through a
//! persistent queue per destination in `<data dir>/export/` (with `--no-store`, only that).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use throughline_collector::config_file::PipelineFile;
use throughline_collector::export::{
    Destination, ExportDefaults, ExportSettings, Exporter, QueueConfig, RetryPolicy, config,
};
use throughline_collector::processors::{Processors, Redaction};
use throughline_collector::tail_sampling::{TailSampler, TailSamplingConfig};
use throughline_collector::{Collector, CollectorConfig, ForwardOnly, IngestLimits, Pipeline};
use throughline_store::{Store, StoreConfig};

/// How often the store's time-driven upkeep runs (integrity verdicts, retention).
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct CollectorArgs {
    /// Where the store keeps its files (with --lambda-extension, the export queue only;
    /// default there: /tmp/throughline-extension).
    #[arg(
        long,
        env = "THROUGHLINE_DATA_DIR",
        required_unless_present = "lambda_extension"
    )]
    data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Jaeger query API and /metrics listen address [default: 127.0.0.1:16686; with
    /// --lambda-extension, an ephemeral port].
    #[arg(long)]
    query_addr: Option<SocketAddr>,
    /// Run as an external Lambda extension: register through the Extensions API at
    /// $AWS_LAMBDA_RUNTIME_API, receive the function's OTLP on localhost, forward it through the
    /// persistent queue (--export-otlp or THROUGHLINE_EXPORT_OTLP; the OTEL_EXPORTER_OTLP_*
    /// variables are the function's own and are ignored), flush after each invocation and drain
    /// on SHUTDOWN. Implies --no-store.
    #[arg(long)]
    lambda_extension: bool,
    /// The name the extension registers under: on Lambda, its file name in /opt/extensions
    /// [default: this executable's file name].
    #[arg(
        long,
        env = "THROUGHLINE_EXTENSION_NAME",
        requires = "lambda_extension"
    )]
    extension_name: Option<String>,
    /// The longest flush after an invocation, in milliseconds (the environment stays thawed
    /// meanwhile); what is not sent by then goes with the next one.
    #[arg(
        long,
        default_value_t = 1000,
        env = "THROUGHLINE_EXTENSION_FLUSH_TIMEOUT_MS"
    )]
    extension_flush_timeout_ms: u64,
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
    /// Forward every export to this OTLP endpoint (repeat for several): `grpc://host:port`,
    /// `grpcs://host:port` (TLS), `http://host:port[/base]`, `https://…` (OTLP/HTTP protobuf),
    /// a bare `host:port` (gRPC), or `env` (OTEL_EXPORTER_OTLP_ENDPOINT and _PROTOCOL, and the
    /// per-signal OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_ENDPOINT, used as-is over HTTP).
    /// OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, _CLIENT_CERTIFICATE
    /// and _CLIENT_KEY (and their per-signal variables) give the defaults the flags below
    /// override. The variable lists them comma-separated.
    #[arg(
        long = "export-otlp",
        env = "THROUGHLINE_EXPORT_OTLP",
        value_delimiter = ','
    )]
    export_otlp: Vec<String>,
    /// A header sent upstream, `key=value` (repeat it), e.g. 'authorization=Bearer …'; the
    /// variable lists them comma-separated.
    #[arg(
        long = "export-header",
        env = "THROUGHLINE_EXPORT_HEADERS",
        value_delimiter = ','
    )]
    export_headers: Vec<String>,
    /// A PEM bundle of CA certificates trusted upstream, beyond the system's roots.
    #[arg(long)]
    export_ca_file: Option<PathBuf>,
    /// A PEM client certificate for mutual TLS upstream (with --export-client-key).
    #[arg(long)]
    export_client_cert: Option<PathBuf>,
    #[arg(long)]
    export_client_key: Option<PathBuf>,
    /// `gzip` or `none` (default: gzip).
    #[arg(long)]
    export_compression: Option<String>,
    /// Milliseconds an upstream request may take (default: 10000).
    #[arg(long)]
    export_timeout_ms: Option<u64>,
    /// Bytes a destination's queue may hold; beyond it exports are refused with
    /// RESOURCE_EXHAUSTED / 429 (the sender keeps them).
    #[arg(long, default_value_t = 1 << 30)]
    export_queue_max_bytes: u64,
    /// Queued data older than this many seconds is dropped (counted, logged).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    export_queue_max_age_secs: u64,
    /// The first retry delay, in milliseconds (doubled per failure, with jitter).
    #[arg(long, default_value_t = 1000)]
    export_retry_initial_ms: u64,
    /// The longest retry delay, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    export_retry_max_ms: u64,
    /// Keep nothing here: forward only (needs --export-otlp). The query API answers empty.
    #[arg(long)]
    no_store: bool,
    /// The pipeline in YAML (destinations, queue, retry, processors), validated at start-up;
    /// flags add to it (destinations) or override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Redact with the default rules: secret-like keys, e-mail addresses, card numbers, bearer
    /// tokens (in attributes, events and log bodies), before storing or forwarding.
    #[arg(long)]
    redact: bool,
    /// A resource attribute to set (overwrite), `key=value` (repeat it).
    #[arg(long = "resource-set")]
    resource_set: Vec<String>,
    /// A resource attribute to insert when absent, `key=value` (repeat it).
    #[arg(long = "resource-insert")]
    resource_insert: Vec<String>,
    /// Tail sampling: keep this share (0 to 1) of the traces that are neither errors nor slow;
    /// every trace with an error span or a slow span is kept. Traces wait in a durable spool
    /// (`<data dir>/sampling/`) until decided; sampled-out spans are neither stored nor
    /// forwarded. Overrides the config file's processors.tail_sampling.ratio.
    #[arg(long)]
    tail_sampling_ratio: Option<f64>,
    /// With tail sampling, a span at least this many milliseconds long keeps its trace (default
    /// 1000; 0 turns the rule off).
    #[arg(long)]
    tail_sampling_slow_ms: Option<u64>,
    /// With tail sampling, a trace is decided once no span of it arrived for this many
    /// milliseconds (default 5000).
    #[arg(long)]
    tail_sampling_wait_ms: Option<u64>,
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

/// Where the extension keeps its queue by default: Lambda's only writable directory.
const EXTENSION_DATA_DIR: &str = "/tmp/throughline-extension";

impl CollectorArgs {
    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(EXTENSION_DATA_DIR))
    }
    fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4317)))
    }
    fn http_addr(&self) -> SocketAddr {
        self.http_addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4318)))
    }
    fn query_addr(&self) -> SocketAddr {
        let port = if self.lambda_extension { 0 } else { 16686 };
        self.query_addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], port)))
    }
    /// Forward only: `--no-store`, or the extension (which keeps nothing but its queue).
    fn no_store(&self) -> bool {
        self.no_store || self.lambda_extension
    }
}

/// The processors and exporter settings from the config file, the flags and the environment.
struct PipelineSettings {
    export: Option<ExportSettings>,
    processors: Processors,
    store: bool,
    tail_sampling: Option<TailSamplingConfig>,
}

fn pipeline_settings(
    args: &CollectorArgs,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<PipelineSettings> {
    let env_defaults = ExportDefaults::from_env(&var)?;
    let file = match &args.config {
        Some(path) => PipelineFile::load(path, &env_defaults)?,
        None => PipelineFile::default(),
    };
    let mut export = export_settings(
        args,
        &var,
        !file.destinations.is_empty() || file.store == Some(false),
    )?;
    let store = !args.no_store() && file.store != Some(false);
    if !file.destinations.is_empty() {
        let settings = export.get_or_insert_with(|| {
            let mut s = ExportSettings::new(Vec::new(), args.data_dir().join("export"));
            s.queue.sync_writes = args.sync_writes;
            s
        });
        let mut all = file.destinations.clone();
        all.append(&mut settings.destinations);
        settings.destinations = all;
        settings.queue = file.queue_config(settings.queue.clone());
        settings.retry = file.retry_policy(settings.retry);
    }
    anyhow::ensure!(
        store || export.is_some(),
        "--no-store (or store: false) needs at least one export destination"
    );
    let mut resource = file.resource.clone();
    for (flag, list, target) in [
        ("--resource-set", &args.resource_set, &mut resource.set),
        (
            "--resource-insert",
            &args.resource_insert,
            &mut resource.insert,
        ),
    ] {
        for pair in list {
            let (k, v) = pair
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("{flag}: {pair:?} is not key=value"))?;
            target.retain(|(key, _)| key != k.trim());
            target.push((k.trim().to_owned(), v.to_owned()));
        }
    }
    let redaction = file
        .redaction
        .clone()
        .or_else(|| args.redact.then(Redaction::default));
    let tail_sampling = tail_sampling_settings(args, file.tail_sampling.clone())?;
    Ok(PipelineSettings {
        tail_sampling,
        export,
        processors: Processors {
            redaction,
            resource,
            ..Processors::default()
        },
        store,
    })
}

/// Tail sampling from the config file with the flags over it; errors name the flag.
fn tail_sampling_settings(
    args: &CollectorArgs,
    file: Option<TailSamplingConfig>,
) -> anyhow::Result<Option<TailSamplingConfig>> {
    let flags_given = args.tail_sampling_ratio.is_some()
        || args.tail_sampling_slow_ms.is_some()
        || args.tail_sampling_wait_ms.is_some();
    let mut config = match (file, args.tail_sampling_ratio) {
        (Some(config), _) => config,
        (None, Some(_)) => TailSamplingConfig::default(),
        (None, None) => {
            anyhow::ensure!(
                !flags_given,
                "--tail-sampling-slow-ms and --tail-sampling-wait-ms need --tail-sampling-ratio \
                 (or processors.tail_sampling in --config)"
            );
            return Ok(None);
        }
    };
    if let Some(ratio) = args.tail_sampling_ratio {
        config.ratio = ratio;
    }
    if let Some(ms) = args.tail_sampling_slow_ms {
        config.slow = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(ms) = args.tail_sampling_wait_ms {
        config.decision_wait = Duration::from_millis(ms);
        config.max_trace_wait = config.max_trace_wait.max(config.decision_wait);
    }
    config.spool.sync_writes = args.sync_writes;
    config
        .validate("--tail-sampling-")
        .map_err(|e| anyhow::anyhow!(e.replace("decision_wait_ms", "wait-ms")))?;
    Ok(Some(config))
}

/// The exporter settings from the flags and the OTEL_EXPORTER_OTLP_* variables; errors name
/// the flag or variable.
fn export_settings(
    args: &CollectorArgs,
    var: impl Fn(&str) -> Option<String>,
    file_has_destinations: bool,
) -> anyhow::Result<Option<ExportSettings>> {
    if args.export_otlp.is_empty() {
        anyhow::ensure!(
            !args.no_store() || file_has_destinations,
            "--no-store needs at least one --export-otlp destination"
        );
        return Ok(None);
    }
    // The flags override the environment's settings (generic and per-signal alike).
    let flags = |defaults: &mut ExportDefaults| -> Result<(), config::SettingError> {
        for header in &args.export_headers {
            let (k, v) = config::parse_header_flag(header)?;
            defaults
                .headers
                .retain(|(key, _)| !key.eq_ignore_ascii_case(&k));
            defaults.headers.push((k, v));
        }
        if let Some(path) = &args.export_ca_file {
            defaults.tls.ca_file = Some(path.clone());
        }
        if let Some(path) = &args.export_client_cert {
            defaults.tls.client_cert = Some(path.clone());
        }
        if let Some(path) = &args.export_client_key {
            defaults.tls.client_key = Some(path.clone());
        }
        if let Some(compression) = &args.export_compression {
            defaults.gzip = config::parse_compression("--export-compression", compression)?;
        }
        if let Some(ms) = args.export_timeout_ms {
            if ms == 0 {
                return Err(config::SettingError {
                    setting: "--export-timeout-ms".into(),
                    message: "must be above 0".into(),
                });
            }
            defaults.timeout = Duration::from_millis(ms);
        }
        Ok(())
    };
    let mut defaults = ExportDefaults::from_env(&var)?;
    flags(&mut defaults)?;
    let mut destinations = Vec::new();
    for url in &args.export_otlp {
        if url == "env" {
            let from_env = Destination::all_from_env(&var, flags)?;
            anyhow::ensure!(
                !from_env.is_empty(),
                "--export-otlp env: neither OTEL_EXPORTER_OTLP_ENDPOINT nor a per-signal \
                 OTEL_EXPORTER_OTLP_{{TRACES,LOGS,METRICS}}_ENDPOINT is set"
            );
            destinations.extend(from_env);
        } else {
            destinations.push(Destination::parse("--export-otlp", url, &defaults)?);
        }
    }
    anyhow::ensure!(
        args.export_retry_initial_ms > 0
            && args.export_retry_initial_ms <= args.export_retry_max_ms,
        "--export-retry-initial-ms: must be above 0 and at most --export-retry-max-ms"
    );
    let mut settings = ExportSettings::new(destinations, args.data_dir().join("export"));
    settings.queue = QueueConfig {
        max_bytes: args.export_queue_max_bytes,
        max_age: Duration::from_secs(args.export_queue_max_age_secs),
        sync_writes: args.sync_writes,
        ..QueueConfig::default()
    };
    settings.retry = RetryPolicy {
        initial: Duration::from_millis(args.export_retry_initial_ms),
        max: Duration::from_millis(args.export_retry_max_ms),
    };
    Ok(Some(settings))
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
    if args.lambda_extension {
        return serve_extension(args).await;
    }
    // Settings first: a bad rules file or URL stops start-up before anything is opened.
    let rules = load_rules(&args.alert_rules)?;
    let targets = delivery_targets(&args)?;
    let settings = pipeline_settings(&args, |k| std::env::var(k).ok())?;
    let processors = Arc::new(settings.processors);
    let exporter = match settings.export {
        Some(settings) => Some(
            tokio::task::spawn_blocking(move || Exporter::open(settings))
                .await?
                .context("could not start exporting upstream")?,
        ),
        None => None,
    };
    let tail_sampling = match settings.tail_sampling {
        Some(config) => {
            let dir = args.data_dir().join("sampling");
            Some(
                tokio::task::spawn_blocking(move || TailSampler::open(config, &dir))
                    .await?
                    .context("could not open the tail-sampling spool")?,
            )
        }
        None => None,
    };
    let pipeline = Pipeline {
        processors,
        exporter,
        tail_sampling,
    };
    if !settings.store {
        return serve_forward_only(args, pipeline).await;
    }
    let mut store_config = StoreConfig::new(args.data_dir());
    store_config.retention_secs = args.retention_secs;
    store_config.max_disk_bytes = args.max_disk_bytes;
    store_config.settle_secs = args.settle_secs;
    store_config.sync_writes = args.sync_writes;
    store_config.findings.min_repeats = args.n_plus_one_min_repeats;
    store_config.findings.min_duration_ms = args.n_plus_one_min_ms;
    let store = tokio::task::spawn_blocking(move || Store::open(store_config))
        .await?
        .with_context(|| format!("could not open the store in {}", args.data_dir().display()))?;
    let store = Arc::new(store);
    let config = collector_config(&args)?;
    // The APM pages share the query address with the Jaeger API (`/api/*`, `/metrics`); their
    // empty state names the OTLP addresses this collector listens on.
    let endpoints = throughline_apm::OtlpEndpoints::from_addrs(args.grpc_addr(), args.http_addr());
    let alerts = Arc::new(throughline_alerts::Alerts::over_store(
        rules,
        store.clone(),
        throughline_alerts::Delivery {
            targets,
            external_url: format!("http://{}", args.query_addr()),
            ..throughline_alerts::Delivery::default()
        },
    ));
    let figures = (pipeline.exporter.clone(), pipeline.tail_sampling.clone());
    let pipeline_source: throughline_apm::PipelineSource =
        Arc::new(move || pipeline_view(figures.0.as_deref(), figures.1.as_deref()));
    let pages = throughline_apm::router_with_pipeline(
        store.clone(),
        endpoints,
        crate::systems::dashboards(),
        Some(alerts.clone()),
        Some(pipeline_source),
    )
    .merge(throughline_alerts::api_router(alerts.clone()));
    let sink = alerts.sink(store.clone());
    let running =
        Collector::start_pipeline(config, sink, store.clone(), Some(pages), pipeline).await?;
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

/// The export queues' and tail sampling's figures for the APM's `/pipeline` page (the same
/// counters `/metrics` shows).
fn pipeline_view(
    exporter: Option<&Exporter>,
    sampler: Option<&TailSampler>,
) -> throughline_apm::PipelineView {
    use std::sync::atomic::Ordering::Relaxed;
    use throughline_collector::tail_sampling::Reason;
    let destinations = exporter
        .map(|e| {
            e.outputs()
                .iter()
                .map(|o| {
                    let depth = o.queue.depth();
                    let f = &o.figures;
                    throughline_apm::DestinationView {
                        name: o.destination.name.clone(),
                        signals: o.destination.signals.names(),
                        queue_records: depth.records,
                        queue_items: depth.items,
                        queue_bytes: depth.bytes,
                        oldest_age_ms: depth.oldest_age_ms,
                        sent_requests: f.sent_requests.load(Relaxed),
                        sent_items: f.sent_items.load(Relaxed),
                        retries: f.retries.load(Relaxed),
                        failed_items: f.failed_items.load(Relaxed),
                        rejected_items: f.rejected_items.load(Relaxed),
                        expired_items: depth.expired_items,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let sampling = sampler.map(|s| {
        let f = s.figures();
        let depth = s.spool().depth();
        throughline_apm::SamplingView {
            ratio: s.config().ratio.to_string(),
            decisions: [
                ("keep", "error", Reason::Error),
                ("keep", "slow", Reason::Slow),
                ("keep", "ratio", Reason::Ratio),
                ("drop", "ratio", Reason::SampledOut),
            ]
            .into_iter()
            .map(|(d, r, reason)| (d.to_owned(), r.to_owned(), f.decisions(reason)))
            .collect(),
            pending_traces: f.pending_traces.load(Relaxed),
            spool_items: depth.items,
            spool_bytes: depth.bytes,
            late_kept: f.late_kept.load(Relaxed),
            late_dropped: f.late_dropped.load(Relaxed),
            forced: f.forced.load(Relaxed),
            kept_spans: f.kept_spans.load(Relaxed),
            dropped_spans: f.dropped_spans.load(Relaxed),
        }
    });
    throughline_apm::PipelineView {
        destinations,
        sampling,
    }
}

/// The environment the extension reads its settings from: the function's, less the
/// OTEL_EXPORTER_OTLP_* variables (they point the function at this extension).
fn extension_var(key: &str) -> Option<String> {
    if key.starts_with("OTEL_EXPORTER_OTLP_") {
        return None;
    }
    std::env::var(key).ok()
}

/// The extension's receivers and exporter, listening.
async fn start_extension_pipeline(
    args: &CollectorArgs,
) -> anyhow::Result<(Arc<Exporter>, throughline_collector::RunningCollector)> {
    anyhow::ensure!(
        !args.export_otlp.is_empty() || args.config.is_some(),
        "--lambda-extension needs an upstream: --export-otlp or THROUGHLINE_EXPORT_OTLP"
    );
    anyhow::ensure!(
        !args.export_otlp.iter().any(|u| u == "env"),
        "--export-otlp env: with --lambda-extension, OTEL_EXPORTER_OTLP_ENDPOINT is the \
         function's (it points at this extension); name the upstream in THROUGHLINE_EXPORT_OTLP"
    );
    let settings = pipeline_settings(args, extension_var)?;
    // A trace's decision needs its spans from many invocations, and the environment may be
    // frozen or gone before it settles: sampling belongs in the collector the extension sends to.
    anyhow::ensure!(
        settings.tail_sampling.is_none(),
        "--lambda-extension does not tail-sample (--tail-sampling-* or tail_sampling in --config): \
         sample in the collector the extension forwards to"
    );
    let export = settings
        .export
        .context("--lambda-extension needs at least one export destination")?;
    let own = [args.grpc_addr(), args.http_addr()];
    for destination in &export.destinations {
        let loops = own.iter().any(|a| {
            destination.authority == a.to_string()
                || destination.authority == format!("localhost:{}", a.port())
        });
        anyhow::ensure!(
            !loops,
            "--export-otlp {}: that is this extension's own listener",
            destination.name
        );
    }
    let exporter = tokio::task::spawn_blocking(move || Exporter::open(export))
        .await?
        .context("could not open the export queue")?;
    let pipeline = Pipeline {
        processors: Arc::new(settings.processors),
        exporter: Some(exporter.clone()),
        tail_sampling: None,
    };
    let running = Collector::start_pipeline(
        collector_config(args)?,
        Arc::new(ForwardOnly),
        Arc::new(ForwardOnly),
        None,
        pipeline,
    )
    .await?;
    Ok((exporter, running))
}

/// `--lambda-extension`: binds the receivers and opens the queue first (Lambda starts the
/// runtime once every extension registered, so the function's first export finds them), then
/// registers; a failure to start is reported through `init/error`, as AWS documents.
async fn serve_extension(args: CollectorArgs) -> anyhow::Result<()> {
    use throughline_collector::lambda_extension::{self, ExtensionsApi, FlushBounds};
    let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| {
        anyhow::anyhow!(
            "--lambda-extension: AWS_LAMBDA_RUNTIME_API is not set (Lambda and `throughline \
             lambda --extension` set it)"
        )
    })?;
    let name = match &args.extension_name {
        Some(name) => name.clone(),
        None => std::env::args_os()
            .next()
            .map(PathBuf::from)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "throughline".into()),
    };
    let started = start_extension_pipeline(&args).await;
    let api = ExtensionsApi::register(&runtime_api, &name)
        .await
        .with_context(|| format!("could not register the extension {name:?}"))?;
    let (exporter, running) = match started {
        Ok(started) => started,
        Err(err) => {
            let message = format!("{err:#}");
            if let Err(report) = api.init_error("Extension.ConfigInvalid", &message).await {
                tracing::warn!(error = %report, "could not report the init error");
            }
            return Err(err);
        }
    };
    let done = match api.subscribe_runtime_done().await {
        Ok(done) => done,
        Err(err) => {
            let _ = api
                .init_error("Extension.TelemetrySubscriptionFailed", &err.to_string())
                .await;
            running.shutdown().await;
            return Err(err).context("could not subscribe to the Telemetry API");
        }
    };
    println!(
        "collector (lambda extension {name} of {}): OTLP/gRPC {} · OTLP/HTTP {} · metrics http://{}/metrics",
        api.function_name, running.grpc_addr, running.http_addr, running.query_addr
    );
    let bounds = FlushBounds {
        after_invoke: Duration::from_millis(args.extension_flush_timeout_ms),
    };
    lambda_extension::run(&api, &done, &exporter, running, bounds).await?;
    Ok(())
}

/// The sidecar: receivers and `/metrics`, forwarding only.
async fn serve_forward_only(args: CollectorArgs, pipeline: Pipeline) -> anyhow::Result<()> {
    let config = collector_config(&args)?;
    let running = Collector::start_pipeline(
        config,
        Arc::new(ForwardOnly),
        Arc::new(ForwardOnly),
        None,
        pipeline,
    )
    .await?;
    println!(
        "collector (forward only): OTLP/gRPC {} · OTLP/HTTP {} · metrics http://{}/metrics",
        running.grpc_addr, running.http_addr, running.query_addr
    );
    throughline_service_kit::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

fn collector_config(args: &CollectorArgs) -> anyhow::Result<CollectorConfig> {
    Ok(CollectorConfig {
        grpc_addr: args.grpc_addr(),
        http_addr: args.http_addr(),
        query_addr: args.query_addr(),
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
    })
}
