//! The batch span processor in front of our OTLP/HTTP exporter: each span is encoded to its OTLP
//! bytes as it ends, on the thread that ended it, and only those bytes wait for the export
//! thread.
//!
//! The SDK's `BatchSpanProcessor` sends every finished `SpanData` (name, attributes, events and
//! links, each string its own allocation) through a channel to its export thread. That thread
//! encodes the batch and then frees every string, away from the threads that allocated them. In
//! the shop's profile it did about a fifth of what tracing cost a service. Here the thread that
//! ends a span encodes it into a buffer of its own (`otlp_encode::put_scope_span`), frees the
//! span's data itself, and appends the bytes to the queue under a short lock; the export thread
//! only wraps them in the request (`otlp_encode::encode_grouped`) and sends it.
//!
//! It keeps the SDK processor's contract and its settings (`OTEL_BSP_*`):
//! - an export when a batch is full, or when `schedule_delay` has passed since the last one;
//! - at most `max_export_batch_size` spans per export;
//! - at most `max_queue_size` spans waiting: a span past it is dropped and counted, with a
//!   warning at the first and the total at shutdown;
//! - `force_flush` exports every span ended before it (bounded by five seconds, as the SDK's);
//! - `shutdown` exports what is left, then shuts the exporter down.
//!
//! Invariant: an export's body is the bytes `otlp_encode::encode_export` writes for the same
//! spans (the encoder's tests compare the two).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use tokio::runtime::Handle;

use crate::config::BatchConfig;
use crate::export_runtime::OnExportRuntime;
use crate::otlp_encode::{encode_grouped, put_scope_span};
use crate::otlp_http::HttpSpanExporter;

/// How long `force_flush` waits for the export thread, as the SDK's processor does.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// A thread's encoding buffer is given back past this size (one huge span should not pin it).
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

thread_local! {
    /// The encoding buffer of the thread that ends spans.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes spans as they end and exports them in batches (see the module docs).
#[derive(Debug)]
pub(crate) struct EncodedBatchProcessor {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a batch fills, and on a flush or shutdown request.
    wake: Condvar,
    max_queue: usize,
    max_batch: usize,
    dropped: AtomicUsize,
}

#[derive(Debug, Default)]
struct Queue {
    /// Full batches first; only the last may still take spans.
    batches: VecDeque<Batch>,
    /// Spans in all the batches.
    queued: usize,
    flushes: Vec<SyncSender<OTelSdkResult>>,
    shutdown: Option<SyncSender<OTelSdkResult>>,
    /// Shutdown was asked: spans ending from now on are not taken.
    stopped: bool,
}

/// Up to `max_export_batch_size` encoded spans, grouped by scope in the order they first came.
#[derive(Debug, Default)]
struct Batch {
    groups: Vec<(InstrumentationScope, Vec<u8>)>,
    spans: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue consistent (each change is one step).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EncodedBatchProcessor {
    /// Starts the export thread; exports go through `exporter` (which already has its resource).
    pub(crate) fn new(
        exporter: OnExportRuntime<HttpSpanExporter>,
        handle: Handle,
        batch: &BatchConfig,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            max_queue: batch.max_queue_size.max(1),
            max_batch: batch
                .max_export_batch_size
                .clamp(1, batch.max_queue_size.max(1)),
            dropped: AtomicUsize::new(0),
        });
        let delay = batch.schedule_delay;
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("OpenTelemetry.Traces.BatchProcessor".into())
                .spawn(move || export_loop(&shared, &exporter, &handle, delay))?
        };
        Ok(Self {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Appends one encoded span to the queue, or drops it when the queue is full or stopped.
    fn enqueue(&self, scope: &InstrumentationScope, bytes: &[u8]) {
        let shared = &*self.shared;
        let mut queue = shared.lock();
        if queue.stopped {
            return;
        }
        if queue.queued >= shared.max_queue {
            drop(queue);
            if shared.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                // An export-machinery target: printed with the service's logs, never exported.
                tracing::warn!(
                    target: "opentelemetry_sdk",
                    max_queue_size = shared.max_queue,
                    "a finished span was dropped: the export queue is full (the total is reported at shutdown)"
                );
            }
            return;
        }
        if queue
            .batches
            .back()
            .is_none_or(|b| b.spans >= shared.max_batch)
        {
            queue.batches.push_back(Batch::default());
        }
        let Queue {
            batches, queued, ..
        } = &mut *queue;
        let Some(batch) = batches.back_mut() else {
            return;
        };
        match batch.groups.iter_mut().find(|(s, _)| s == scope) {
            Some((_, spans)) => spans.extend_from_slice(bytes),
            None => {
                // Room for a run of spans like this one, so the group grows rarely.
                let mut spans = Vec::with_capacity(bytes.len() * 16);
                spans.extend_from_slice(bytes);
                batch.groups.push((scope.clone(), spans));
            }
        }
        batch.spans += 1;
        *queued += 1;
        let full = batch.spans == shared.max_batch;
        drop(queue);
        if full {
            shared.wake.notify_one();
        }
    }

    /// Hands the export thread a request and waits at most `timeout` for its answer.
    fn ask(
        &self,
        timeout: Duration,
        put: impl FnOnce(&mut Queue, SyncSender<OTelSdkResult>),
    ) -> OTelSdkResult {
        let (tx, rx) = sync_channel(1);
        {
            let mut queue = self.shared.lock();
            if queue.stopped {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            put(&mut queue, tx);
        }
        self.shared.wake.notify_one();
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(OTelSdkError::InternalFailure(
                "the span export thread ended without an answer".into(),
            )),
        }
    }
}

/// The export thread: waits for a full batch, the schedule delay, a flush or the shutdown, then
/// exports what is due.
fn export_loop(
    shared: &Shared,
    exporter: &OnExportRuntime<HttpSpanExporter>,
    handle: &Handle,
    delay: Duration,
) {
    // The export's own work (HTTP client, runtime) makes no spans of its own.
    let _suppressed = Context::enter_telemetry_suppressed_scope();
    let mut last_export = Instant::now();
    loop {
        let (due, flushes, shutdown) = {
            let mut queue = shared.lock();
            let everything = loop {
                if queue.shutdown.is_some() || !queue.flushes.is_empty() {
                    break true;
                }
                if queue
                    .batches
                    .front()
                    .is_some_and(|b| b.spans >= shared.max_batch)
                {
                    break false;
                }
                let waited = last_export.elapsed();
                if waited >= delay {
                    break true;
                }
                queue = shared
                    .wake
                    .wait_timeout(queue, delay - waited)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            };
            let mut due = Vec::new();
            while let Some(front) = queue.batches.front() {
                if !everything && front.spans < shared.max_batch {
                    break;
                }
                let Some(batch) = queue.batches.pop_front() else {
                    break;
                };
                queue.queued -= batch.spans;
                due.push(batch);
            }
            (
                due,
                std::mem::take(&mut queue.flushes),
                queue.shutdown.take(),
            )
        };
        last_export = Instant::now();
        let mut result = Ok(());
        for batch in due {
            let groups: Vec<(&InstrumentationScope, &[u8])> = batch
                .groups
                .iter()
                .map(|(scope, spans)| (scope, spans.as_slice()))
                .collect();
            let body = encode_grouped(exporter.inner().resource(), &groups);
            drop(groups);
            drop(batch);
            result = handle.block_on(exporter.export_encoded(body));
            if let Err(error) = &result {
                tracing::warn!(target: "opentelemetry_sdk", %error, "span export failed");
            }
        }
        for flush in flushes {
            let _ = flush.send(copy(&result));
        }
        if let Some(shutdown) = shutdown {
            let _ = exporter.shutdown();
            let _ = shutdown.send(result);
            return;
        }
    }
}

/// The same outcome again, for each caller waiting on it (the SDK's error is not `Clone`).
fn copy(result: &OTelSdkResult) -> OTelSdkResult {
    match result {
        Ok(()) => Ok(()),
        Err(OTelSdkError::AlreadyShutdown) => Err(OTelSdkError::AlreadyShutdown),
        Err(OTelSdkError::Timeout(after)) => Err(OTelSdkError::Timeout(*after)),
        Err(OTelSdkError::InternalFailure(message)) => {
            Err(OTelSdkError::InternalFailure(message.clone()))
        }
    }
}

impl SpanProcessor for EncodedBatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                put_scope_span(&mut buffer, &span);
                self.enqueue(&span.instrumentation_scope, &buffer);
                if buffer.capacity() > KEEP_BUFFER_BYTES {
                    *buffer = Vec::new();
                }
            }
            // Only if a span ends while this thread is encoding another (it never logs).
            Err(_) => {
                let mut buffer = Vec::new();
                put_scope_span(&mut buffer, &span);
                self.enqueue(&span.instrumentation_scope, &buffer);
            }
        });
        // `span` is freed here, on the thread that made it.
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(FLUSH_TIMEOUT, |queue, tx| queue.flushes.push(tx))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                target: "opentelemetry_sdk",
                dropped_span_count = dropped,
                max_queue_size = self.shared.max_queue,
                "spans were dropped over this process's life because the export queue was full"
            );
        }
        let result = self.ask(timeout, |queue, tx| {
            queue.stopped = true;
            queue.shutdown = Some(tx);
        });
        if !matches!(
            result,
            Err(OTelSdkError::Timeout(_)) | Err(OTelSdkError::AlreadyShutdown)
        ) {
            let worker = self
                .worker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(worker) = worker {
                let _ = worker.join();
            }
        }
        result
    }

    fn set_resource(&mut self, _resource: &Resource) {
        // The exporter was given the resource before the processor was built.
    }
}

impl Drop for EncodedBatchProcessor {
    fn drop(&mut self) {
        // Never shut down: the thread is told to export what is left and end, and not waited for.
        let mut queue = self.shared.lock();
        if !queue.stopped {
            queue.stopped = true;
            let (tx, _rx) = sync_channel(1);
            queue.shutdown = Some(tx);
            drop(queue);
            self.shared.wake.notify_one();
        }
    }
}
