//! `throughline lambda`: runs a Lambda function binary under the local Lambda host, fed by an SQS
//! queue as an event source mapping would feed it.

use std::ffi::OsString;
use std::sync::Arc;

use anyhow::Context;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use throughline_lambda_host::{EventSourceMapping, OtlpLog, PlatformLog, RawHostConfig, StdoutLog};
use throughline_telemetry::{Telemetry, TelemetryConfig};
use tokio_util::sync::CancellationToken;

/// Flags of `throughline lambda`.
#[derive(Debug, clap::Args)]
pub struct LambdaArgs {
    /// The SQS queue to poll (name, as in the event source mapping).
    #[arg(long)]
    queue: String,
    /// Most records per invocation (Lambda's default: 10; above 10 needs a batching window).
    #[arg(long)]
    batch_size: Option<u32>,
    /// How long to gather records once the first arrived, in milliseconds (default 0).
    #[arg(long)]
    batch_window_ms: Option<u64>,
    /// How many execution environments may run at once (default 1).
    #[arg(long)]
    concurrency: Option<u32>,
    /// The function timeout in seconds (default 3); past it the environment is killed.
    #[arg(long)]
    timeout_secs: Option<u64>,
    /// AWS_LAMBDA_FUNCTION_NAME (default: QUEUE-function).
    #[arg(long)]
    function_name: Option<String>,
    /// AWS_LAMBDA_FUNCTION_MEMORY_SIZE in MB (default 128; reported, not enforced).
    #[arg(long)]
    memory_mb: Option<u32>,
    /// _HANDLER (default "bootstrap").
    #[arg(long)]
    handler: Option<String>,
    /// An external extension to start before the function, as Lambda starts each file in
    /// /opt/extensions (repeatable, at most 10): it registers through the Extensions API on
    /// AWS_LAMBDA_RUNTIME_API and gets every INVOKE and the SHUTDOWN.
    #[arg(long = "extension", value_name = "PATH")]
    extensions: Vec<std::path::PathBuf>,
    /// A variable each execution environment sets, for the function and its extensions, to a
    /// free `127.0.0.1:PORT` of its own (repeatable): on Lambda each sandbox has its own
    /// localhost, here concurrent environments share one, so an extension's listener (and the
    /// function's endpoint for it) takes its address from this variable.
    #[arg(long = "sandbox-port", value_name = "VARIABLE", value_parser = parse_variable_name)]
    sandbox_ports: Vec<String>,
    /// The function's command (a Lambda runtime binary, or e.g. `python -m awslambdaric mod.fn`).
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// Runs the host until Ctrl-C or SIGTERM.
pub fn run(args: LambdaArgs) -> anyhow::Result<()> {
    let mut config = RawHostConfig {
        queue: args.queue,
        batch_size: args.batch_size,
        batch_window_ms: args.batch_window_ms,
        concurrency: args.concurrency,
        timeout_secs: args.timeout_secs,
        function_name: args.function_name,
        memory_mb: args.memory_mb,
        handler: args.handler,
        extensions: args.extensions,
        command: args.command,
    }
    .validate()?;
    config.sandbox_ports = args.sandbox_ports;
    // Host diagnostics go to stderr; stdout carries the platform lines and the function's output.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in a file the output is redirected to.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let telemetry = host_metrics(std::env::vars().collect())?;
    let (log, log_telemetry) = platform_log(&config.function_name)?;
    let runtime = tokio::runtime::Runtime::new().context("could not start the tokio runtime")?;
    let meter = telemetry
        .meter_provider()
        .map(|p| p.meter("throughline-lambda-host"));
    let result = runtime.block_on(async move {
        // AWS_ENDPOINT_URL_SQS, AWS_REGION and the usual credentials; none needed on loopback.
        let sqs = throughline_lambda_host::sqs_client::client_from_env().await;
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let mut mapping = EventSourceMapping::new(config, sqs, log);
        if let Some(meter) = meter {
            mapping = mapping.with_meter(meter);
        }
        mapping.run(shutdown).await?;
        Ok(())
    });
    // The last invocations' figures and platform lines are exported before the host exits.
    let flushed = telemetry.shutdown(METRICS_FLUSH_TIMEOUT);
    if !flushed.is_exported() {
        tracing::warn!(?flushed, "the last AWS/Lambda metrics were not exported");
    }
    if let Some(log_telemetry) = log_telemetry {
        let _ = log_telemetry.shutdown(std::time::Duration::from_secs(5));
    }
    result
}

/// How long the host waits at exit for its last metrics export.
const METRICS_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often the host exports its metrics unless `OTEL_METRIC_EXPORT_INTERVAL` says otherwise
/// (CloudWatch's standard resolution is a minute; a local dashboard wants fresher figures).
const METRICS_EXPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The host's `AWS/Lambda` metrics pipeline from the `OTEL_*` variables (`throughline up` points
/// them at the collector), under the function's `OTEL_SERVICE_NAME` as CloudWatch files them
/// under the function. The host makes no spans of its own (`OTEL_TRACES_EXPORTER=none` for it;
/// the function keeps the variable as given) and keeps its own log subscriber.
fn host_metrics(
    mut env: std::collections::HashMap<String, String>,
) -> anyhow::Result<throughline_telemetry::Telemetry> {
    // Off unless an endpoint is set: a host started by hand does not send to whatever listens
    // on the default OTLP port.
    if !otlp_endpoint_set(&env) {
        env.insert("OTEL_METRICS_EXPORTER".into(), "none".into());
    }
    env.insert("OTEL_TRACES_EXPORTER".into(), "none".into());
    // The platform lines have their own pipeline under the function's name (`platform_log`).
    env.insert("OTEL_LOGS_EXPORTER".into(), "none".into());
    let config = throughline_telemetry::TelemetryConfig::from_env(env)?;
    Ok(throughline_telemetry::Telemetry::builder(config)
        .default_service_name("throughline-lambda-host")
        .default_metric_export_interval(METRICS_EXPORT_INTERVAL)
        .build()?)
}

/// Where the platform lines go: stdout always and, when `OTEL_LOGS_EXPORTER=otlp` (as
/// `throughline up` sets it), OTLP log records whose resource names the function as the service,
/// as Lambda sends them to the function's CloudWatch log group. The host's own diagnostics are
/// not the function's, so only the logs pipeline is built here.
fn platform_log(function_name: &str) -> anyhow::Result<(Arc<dyn PlatformLog>, Option<Telemetry>)> {
    let mut env: std::collections::HashMap<String, String> = std::env::vars().collect();
    env.insert("OTEL_SERVICE_NAME".into(), function_name.to_owned());
    env.insert("OTEL_TRACES_EXPORTER".into(), "none".into());
    env.insert("OTEL_METRICS_EXPORTER".into(), "none".into());
    let config =
        TelemetryConfig::from_env(env).context("the OTEL_* settings of the platform log")?;
    let telemetry = Telemetry::builder(config)
        .build()
        .context("could not set up the platform log's OTLP export")?;
    let Some(provider) = telemetry.logger_provider() else {
        return Ok((Arc::new(StdoutLog), None));
    };
    let log = OtlpLog::new(provider.logger("throughline-lambda-host"));
    Ok((Arc::new(log), Some(telemetry)))
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; Ctrl-C still stops the host");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping: finishing in-flight invocations, then stopping the environments");
    shutdown.cancel();
}

/// Whether the environment names an OTLP endpoint for metrics.
pub fn otlp_endpoint_set(env: &std::collections::HashMap<String, String>) -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .iter()
    .any(|k| env.get(*k).is_some_and(|v| !v.trim().is_empty()))
}

/// A variable name for `--sandbox-port`: letters, digits and `_`, not starting with a digit.
fn parse_variable_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?} is not a variable name (letters, digits and _)"
        ))
    }
}
