//! `throughline lambda`: runs a Lambda function binary under the local Lambda host, fed by an SQS
//! queue as an event source mapping would feed it.

use std::ffi::OsString;
use std::sync::Arc;

use anyhow::Context;
use throughline_lambda_host::{EventSourceMapping, RawHostConfig, StdoutLog};
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
    /// The function's command (a Lambda runtime binary, or e.g. `python -m awslambdaric mod.fn`).
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// Runs the host until Ctrl-C or SIGTERM.
pub fn run(args: LambdaArgs) -> anyhow::Result<()> {
    let config = RawHostConfig {
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
    let runtime = tokio::runtime::Runtime::new().context("could not start the tokio runtime")?;
    runtime.block_on(async move {
        // AWS_ENDPOINT_URL_SQS, AWS_REGION and the usual credentials; none needed on loopback.
        let sqs = throughline_lambda_host::sqs_client::client_from_env().await;
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        EventSourceMapping::new(config, sqs, Arc::new(StdoutLog))
            .run(shutdown)
            .await?;
        Ok(())
    })
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
