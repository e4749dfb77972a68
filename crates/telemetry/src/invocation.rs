//! The span pipeline for AWS Lambda: finished spans wait in memory and leave in one export when
//! the invocation flushes, with no batch thread in between.
//!
//! Lambda freezes the environment as soon as an invocation returns, so a background batch thread
//! only ever runs at the wrong moment: spans it has not sent when the invocation ends wait, frozen,
//! for the next invocation (or are lost with the environment). The SDK's batch processor also makes
//! a flush cross three threads (the caller, its own worker, the exporter's runtime), each a wake-up
//! that waits for a core when the machine is busy. Here a flush takes the pending spans and sends
//! them from the export runtime directly; the caller awaits the outcome or gives up at its bound.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::runtime::Handle;

use crate::config::BatchConfig;

/// What the processor needs of an exporter, in a form that can be shared behind `dyn`.
trait ExportSpans: Send + Sync + fmt::Debug {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> Pin<Box<dyn Future<Output = OTelSdkResult> + Send + '_>>;
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult;
}

impl<E: SpanExporter> ExportSpans for E {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> Pin<Box<dyn Future<Output = OTelSdkResult> + Send + '_>> {
        Box::pin(SpanExporter::export(self, batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        SpanExporter::shutdown_with_timeout(self, timeout)
    }
}

/// Holds finished spans until [`InvocationSpanProcessor::export_pending`] sends them.
///
/// Invariants: at most `max_queue_size` spans wait (later ones are dropped and counted, as the
/// SDK's batch processor does); exports run one at a time, in the order their flushes began, so a
/// flush that returns `Ok` means every span that ended before it was exported.
pub(crate) struct InvocationSpanProcessor {
    pending: Arc<Mutex<Vec<SpanData>>>,
    exporter: Arc<dyn ExportSpans>,
    /// The export runtime: every export is polled there, never on the caller's thread.
    handle: Handle,
    /// Taken by each export job for its whole run, so exports never overlap or reorder.
    export_turn: Arc<tokio::sync::Mutex<()>>,
    max_queue_size: usize,
    max_export_batch_size: usize,
    export_timeout: Duration,
    dropped: AtomicU64,
}

impl fmt::Debug for InvocationSpanProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationSpanProcessor")
            .field("pending", &self.lock_pending().len())
            .field("max_queue_size", &self.max_queue_size)
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl InvocationSpanProcessor {
    /// `exporter` must already be bounded by the export timeout and bound to the export runtime
    /// (see `OnExportRuntime`).
    pub(crate) fn new<E: SpanExporter + 'static>(
        exporter: E,
        handle: Handle,
        batch: &BatchConfig,
    ) -> Self {
        Self {
            pending: Arc::new(Mutex::new(Vec::new())),
            exporter: Arc::new(exporter),
            handle,
            export_turn: Arc::new(tokio::sync::Mutex::new(())),
            max_queue_size: batch.max_queue_size.max(1),
            max_export_batch_size: batch.max_export_batch_size.max(1),
            export_timeout: batch.export_timeout,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock_pending(&self) -> MutexGuard<'_, Vec<SpanData>> {
        // A poisoned lock means a thread panicked while pushing; the spans in it are still valid.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends every pending span, waiting at most `timeout`. On `Err(Timeout)` the export goes on
    /// in the background and may still succeed.
    pub(crate) async fn export_pending(&self, timeout: Duration) -> OTelSdkResult {
        let Some(job) = self.export_job() else {
            return Ok(());
        };
        let running = self.handle.spawn(job);
        match tokio::time::timeout(timeout, running).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(OTelSdkError::InternalFailure(format!(
                "the span export task ended without an outcome: {join}"
            ))),
            Err(_) => Err(OTelSdkError::Timeout(timeout)),
        }
    }

    /// [`Self::export_pending`] for synchronous callers: this thread only waits on a channel, so
    /// it may be any thread, a runtime's included.
    pub(crate) fn export_pending_blocking(&self, timeout: Duration) -> OTelSdkResult {
        let Some(job) = self.export_job() else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(job.await);
        });
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(OTelSdkError::InternalFailure(
                    "the span export task ended without an outcome".into(),
                ))
            }
        }
    }

    /// Takes the pending spans and returns the job that exports them in batches of at most
    /// `max_export_batch_size`; `None` when nothing is pending.
    fn export_job(&self) -> Option<impl Future<Output = OTelSdkResult> + Send + 'static> {
        let spans = std::mem::take(&mut *self.lock_pending());
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max_queue_size = self.max_queue_size,
                "spans dropped since the last flush: more ended than OTEL_BSP_MAX_QUEUE_SIZE holds"
            );
        }
        if spans.is_empty() {
            return None;
        }
        let exporter = Arc::clone(&self.exporter);
        let turn = Arc::clone(&self.export_turn);
        let pending = Arc::clone(&self.pending);
        let (max_batch, max_queue) = (self.max_export_batch_size, self.max_queue_size);
        Some(async move {
            let _turn = turn.lock().await;
            let mut rest = spans;
            while !rest.is_empty() {
                let later = rest.split_off(rest.len().min(max_batch));
                let batch = std::mem::replace(&mut rest, later);
                if let Err(err) = exporter.export(batch).await {
                    // The failed batch is gone (the exporter consumed it); the batches not yet
                    // tried go back in front of the queue for the next flush.
                    requeue(&pending, rest, max_queue);
                    return Err(err);
                }
            }
            Ok(())
        })
    }
}

/// Puts spans that were never tried back in front of the pending ones, within the queue bound.
fn requeue(pending: &Mutex<Vec<SpanData>>, mut spans: Vec<SpanData>, max_queue_size: usize) {
    if spans.is_empty() {
        return;
    }
    let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
    spans.append(&mut pending);
    spans.truncate(max_queue_size);
    *pending = spans;
}

impl SpanProcessor for InvocationSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let mut pending = self.lock_pending();
        if pending.len() >= self.max_queue_size {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.export_pending_blocking(self.export_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let flushed = self.export_pending_blocking(timeout);
        let _enter = self.handle.enter();
        let closed = self.exporter.shutdown_with_timeout(timeout);
        flushed.and(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use std::borrow::Cow;
    use std::time::SystemTime;

    /// Records each export's span names; fails the exports whose index is in `fail_at`.
    #[derive(Debug, Default)]
    struct Recording {
        exports: Mutex<Vec<Vec<String>>>,
        fail_at: Vec<usize>,
    }

    /// The exporter the processor owns; the test keeps the other handle on the recording.
    #[derive(Debug)]
    struct Exporter(Arc<Recording>);

    impl SpanExporter for Exporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let mut exports = self.0.exports.lock().expect("exports lock");
            let index = exports.len();
            exports.push(batch.iter().map(|s| s.name.to_string()).collect());
            if self.0.fail_at.contains(&index) {
                return Err(OTelSdkError::InternalFailure("refused".into()));
            }
            Ok(())
        }
    }

    fn span(name: &str, sampled: bool) -> SpanData {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(2),
                flags,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(name.to_owned()),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    fn batch(max_queue_size: usize, max_export_batch_size: usize) -> BatchConfig {
        BatchConfig {
            schedule_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(5),
            max_queue_size,
            max_export_batch_size,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("test runtime")
    }

    #[test]
    fn nothing_leaves_until_the_flush_and_then_everything_in_bounded_batches() {
        let rt = runtime();
        let recording = Arc::new(Recording::default());
        let processor = InvocationSpanProcessor::new(
            Exporter(Arc::clone(&recording)),
            rt.handle().clone(),
            &batch(100, 2),
        );
        for name in ["a", "b", "c", "d", "e"] {
            processor.on_end(span(name, true));
        }
        processor.on_end(span("not sampled", false));
        assert!(recording.exports.lock().expect("lock").is_empty());

        processor
            .export_pending_blocking(Duration::from_secs(5))
            .expect("export succeeds");
        assert_eq!(
            *recording.exports.lock().expect("lock"),
            [vec!["a", "b"], vec!["c", "d"], vec!["e"]]
        );
        // A second flush with nothing pending exports nothing.
        processor
            .export_pending_blocking(Duration::from_secs(5))
            .expect("empty flush");
        assert_eq!(recording.exports.lock().expect("lock").len(), 3);
    }

    #[test]
    fn the_async_flush_exports_from_another_runtime() {
        let export_rt = runtime();
        let recording = Arc::new(Recording::default());
        let processor = InvocationSpanProcessor::new(
            Exporter(Arc::clone(&recording)),
            export_rt.handle().clone(),
            &batch(100, 10),
        );
        processor.on_end(span("record", true));
        let caller = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("caller runtime");
        caller
            .block_on(processor.export_pending(Duration::from_secs(5)))
            .expect("export succeeds");
        assert_eq!(*recording.exports.lock().expect("lock"), [vec!["record"]]);
    }

    #[test]
    fn spans_beyond_the_queue_bound_are_dropped_not_buffered() {
        let rt = runtime();
        let recording = Arc::new(Recording::default());
        let processor = InvocationSpanProcessor::new(
            Exporter(Arc::clone(&recording)),
            rt.handle().clone(),
            &batch(3, 10),
        );
        for name in ["a", "b", "c", "d", "e"] {
            processor.on_end(span(name, true));
        }
        processor
            .export_pending_blocking(Duration::from_secs(5))
            .expect("export succeeds");
        assert_eq!(
            *recording.exports.lock().expect("lock"),
            [vec!["a", "b", "c"]]
        );
    }

    #[test]
    fn after_a_failed_batch_the_untried_batches_wait_for_the_next_flush() {
        let rt = runtime();
        let recording = Arc::new(Recording {
            fail_at: vec![0],
            ..Recording::default()
        });
        let processor = InvocationSpanProcessor::new(
            Exporter(Arc::clone(&recording)),
            rt.handle().clone(),
            &batch(100, 2),
        );
        for name in ["a", "b", "c", "d"] {
            processor.on_end(span(name, true));
        }
        let failed = processor.export_pending_blocking(Duration::from_secs(5));
        assert!(failed.is_err(), "first flush: {failed:?}");
        processor.on_end(span("e", true));
        processor
            .export_pending_blocking(Duration::from_secs(5))
            .expect("second flush succeeds");
        assert_eq!(
            *recording.exports.lock().expect("lock"),
            [vec!["a", "b"], vec!["c", "d"], vec!["e"]]
        );
    }
}
