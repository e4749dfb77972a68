//! `run_main`: a service's process start. The environment map in, telemetry from
//! `throughline-telemetry` built from it and installed (global providers and the log subscriber),
//! a tokio runtime, the shutdown signal, the service's own future, and telemetry flushed and shut
//! down at the end, whatever the service's outcome.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use throughline_telemetry::{Telemetry, TelemetryBuilder, TelemetryConfig};
use tokio_util::sync::CancellationToken;

/// Who the service is, for telemetry's resource when `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES` do not say.
#[derive(Debug, Clone, Copy)]
pub struct ServiceIdentity {
    pub name: &'static str,
    pub version: &'static str,
    pub namespace: &'static str,
}

/// The tokio runtime a service runs on.
#[derive(Debug, Clone, Copy, Default)]
pub enum RuntimeShape {
    /// One worker thread per core.
    #[default]
    MultiThread,
    /// This many worker threads.
    Workers(usize),
}

/// How a service process starts and stops.
pub struct ServiceProcess {
    identity: ServiceIdentity,
    runtime: RuntimeShape,
    telemetry: Box<dyn FnOnce(TelemetryBuilder) -> TelemetryBuilder>,
    shutdown_grace: Duration,
    flush_timeout: Duration,
}

impl std::fmt::Debug for ServiceProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProcess")
            .field("identity", &self.identity)
            .field("runtime", &self.runtime)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("flush_timeout", &self.flush_timeout)
            .finish_non_exhaustive()
    }
}

impl ServiceProcess {
    /// A process with the defaults: one worker per core, 10 s for the service to stop after a
    /// signal, 2 s for telemetry's last flush.
    pub fn new(identity: ServiceIdentity) -> Self {
        Self {
            identity,
            runtime: RuntimeShape::default(),
            telemetry: Box::new(|builder| builder),
            shutdown_grace: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(2),
        }
    }

    /// The runtime's shape.
    pub fn runtime(mut self, runtime: RuntimeShape) -> Self {
        self.runtime = runtime;
        self
    }

    /// Adjusts the telemetry builder (after the identity's defaults) before it is built.
    pub fn telemetry(
        mut self,
        configure: impl FnOnce(TelemetryBuilder) -> TelemetryBuilder + 'static,
    ) -> Self {
        self.telemetry = Box::new(configure);
        self
    }

    /// How long the service's future may run on after SIGINT/SIGTERM before it is dropped
    /// (zero: at once, as a process without handlers would stop).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// What the service's future gets: its environment, its telemetry, and the shutdown signal.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub env: HashMap<String, String>,
    pub telemetry: Arc<Telemetry>,
    /// Cancelled on SIGINT or SIGTERM.
    pub shutdown: CancellationToken,
}

impl ServiceContext {
    /// Resolves when the process is asked to stop.
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shutdown.clone().cancelled_owned()
    }
}

/// Why a service process stopped with an error: its start-up, or the service's own error `E`.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E: std::error::Error + 'static> {
    #[error("telemetry")]
    TelemetryConfig(#[source] throughline_telemetry::ConfigError),
    #[error("telemetry")]
    Telemetry(#[source] throughline_telemetry::InitError),
    #[error("could not start the tokio runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Service(E),
}

/// Why a service's own `run_main` stopped with an error: a setting it cannot start with (`C`,
/// from its configuration's `from_env`), or the process around the service ([`RunError`]).
#[derive(Debug, thiserror::Error)]
pub enum MainError<C: std::error::Error + 'static, E: std::error::Error + 'static> {
    #[error(transparent)]
    Config(C),
    #[error(transparent)]
    Process(#[from] RunError<E>),
}

/// Why an HTTP service stopped with an error: its listener could not be bound, or serving it
/// failed (`E`, the service's own).
#[derive(Debug, thiserror::Error)]
pub enum HttpServiceError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Bind(#[from] crate::BindError),
    #[error(transparent)]
    Serve(E),
}

/// Runs a service as this process: builds telemetry from `env` (`OTEL_*`) and installs it,
/// starts the runtime, runs `service` until it returns (it gets the shutdown signal in its
/// context; after the signal it has the process's shutdown grace to return), then flushes and
/// shuts telemetry down.
pub fn run_main<E, F, Fut>(
    env: HashMap<String, String>,
    process: ServiceProcess,
    service: F,
) -> Result<(), RunError<E>>
where
    E: std::error::Error + 'static,
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let config = TelemetryConfig::from_env(env.clone()).map_err(RunError::TelemetryConfig)?;
    let identity = process.identity;
    let builder = Telemetry::builder(config)
        .default_service_name(identity.name)
        .default_service_version(identity.version)
        .default_service_namespace(identity.namespace);
    let telemetry = (process.telemetry)(builder)
        .build()
        .map_err(RunError::Telemetry)?;
    telemetry.install_global();
    telemetry
        .install_subscriber()
        .map_err(RunError::Telemetry)?;
    let telemetry = Arc::new(telemetry);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let RuntimeShape::Workers(n) = process.runtime {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.enable_all().build().map_err(RunError::Runtime)?;
    let shutdown = CancellationToken::new();
    let context = ServiceContext {
        env,
        telemetry: Arc::clone(&telemetry),
        shutdown: shutdown.clone(),
    };
    let grace = process.shutdown_grace;
    let result = runtime.block_on(async move {
        let signalled = shutdown.clone();
        tokio::spawn(async move {
            crate::signal::shutdown_signal().await;
            tracing::info!("shutdown signal received");
            signalled.cancel();
        });
        let service = service(context);
        tokio::pin!(service);
        tokio::select! {
            result = &mut service => result,
            () = shutdown.cancelled() => {
                match tokio::time::timeout(grace, &mut service).await {
                    Ok(result) => result,
                    // A zero grace is a service that stops at once by design (a Lambda
                    // runtime loop, which has nothing in flight between invocations): no warning.
                    Err(_) if grace.is_zero() => Ok(()),
                    Err(_) => {
                        tracing::warn!(grace_secs = grace.as_secs_f64(), "the service did not stop within its shutdown grace");
                        Ok(())
                    }
                }
            }
        }
    });
    // The service may still hold a handle (a flush hook); then flush what is buffered.
    let outcome = match Arc::try_unwrap(telemetry) {
        Ok(telemetry) => telemetry.shutdown(process.flush_timeout),
        Err(shared) => shared.flush(process.flush_timeout),
    };
    if !outcome.is_exported() {
        tracing::warn!(?outcome, "telemetry was not flushed whole at exit");
    }
    drop(runtime);
    result.map_err(RunError::Service)
}

/// Displays an error with each of its causes once, `outer: cause: root`, as a `main` prints it.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_reads_each_cause_once() {
        let err: RunError<std::io::Error> = RunError::Runtime(std::io::Error::other("no threads"));
        assert_eq!(
            ErrorChain(&err).to_string(),
            "could not start the tokio runtime: no threads"
        );
    }
}
