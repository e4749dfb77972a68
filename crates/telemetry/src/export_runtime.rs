//! The runtime that OTLP exporters run on, owned by the telemetry guard.
//!
//! The SDK's batch processors call `futures_executor::block_on(exporter.export(..))` on their own
//! thread. The tonic and reqwest exporters need a tokio reactor and spawn tasks (the channel's
//! buffer worker, connection tasks) on whatever runtime was current when they were built or
//! polled. If that is the application's runtime and the application's thread is the one blocked
//! in `force_flush` (a `current_thread` runtime, or `block_on` in Lambda), nothing drives those
//! tasks and the flush deadlocks. Here every exporter is built inside, and every export is polled
//! inside, a small runtime of our own with one worker thread, so exports make progress whatever
//! the caller's thread is doing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::{Handle, Runtime};

use crate::diagnosis::ExportTarget;
use std::sync::Arc;

/// A one-worker tokio runtime for exporters; shut down in the background when dropped, so the
/// guard may be dropped from inside an async context.
#[derive(Debug)]
pub(crate) struct ExportRuntime {
    runtime: Option<Runtime>,
}

impl ExportRuntime {
    pub(crate) fn new() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("throughline-otel-export")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    pub(crate) fn handle(&self) -> Handle {
        match &self.runtime {
            Some(rt) => rt.handle().clone(),
            // `runtime` is only taken in `drop`.
            None => unreachable!("the export runtime is present until drop"),
        }
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// An exporter whose every export is polled inside the export runtime and bounded by a timeout.
#[derive(Debug)]
pub(crate) struct OnExportRuntime<E> {
    inner: E,
    handle: Handle,
    timeout: Duration,
    target: Option<Arc<ExportTarget>>,
}

impl<E> OnExportRuntime<E> {
    pub(crate) fn new(inner: E, handle: Handle, timeout: Duration) -> Self {
        Self {
            inner,
            handle,
            timeout,
            target: None,
        }
    }

    /// A failed export names `target` and what a probe of it shows (see [`ExportTarget`]).
    pub(crate) fn explained_by(mut self, target: Option<ExportTarget>) -> Self {
        self.target = target.map(Arc::new);
        self
    }

    fn bounded<'a>(
        &self,
        export: impl Future<Output = OTelSdkResult> + Send + 'a,
    ) -> InRuntime<'a> {
        // The timer must be created inside the runtime; the guard is dropped before returning.
        let _enter = self.handle.enter();
        let timeout = self.timeout;
        let bounded = tokio::time::timeout(timeout, export);
        let target = self.target.clone();
        InRuntime {
            handle: self.handle.clone(),
            export: Box::pin(async move {
                match bounded.await {
                    Err(_) => Err(OTelSdkError::Timeout(timeout)),
                    Ok(Err(OTelSdkError::InternalFailure(error))) => match target {
                        Some(target) => {
                            Err(OTelSdkError::InternalFailure(target.explain(&error).await))
                        }
                        None => Err(OTelSdkError::InternalFailure(error)),
                    },
                    Ok(result) => result,
                }
            }),
        }
    }
}

/// Polls the export future with the export runtime entered, so that anything it spawns or
/// registers (timers, sockets, connection tasks) belongs to that runtime.
struct InRuntime<'a> {
    handle: Handle,
    export: Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>,
}

impl Future for InRuntime<'_> {
    type Output = OTelSdkResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _enter = this.handle.enter();
        this.export.as_mut().poll(cx)
    }
}

impl<E: SpanExporter> SpanExporter for OnExportRuntime<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.bounded(self.inner.export(batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _enter = self.handle.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for OnExportRuntime<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.bounded(self.inner.export(batch)).await
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for OnExportRuntime<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.bounded(self.inner.export(metrics)).await
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _enter = self.handle.enter();
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
