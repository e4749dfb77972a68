//! The receiving core shared by the gRPC and HTTP receivers: admission (memory bound, shutdown),
//! the blocking store call off the runtime, and the collector's own counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use throughline_store::{
    EncodedTraces, ExportLogsServiceRequest, ExportMetricsServiceRequest,
    ExportTraceServiceRequest, SpanSink, StoreError, WriteReport,
};

use prost::Message;

use crate::export::{AppendError, Exporter, QueueFull};
use crate::processors::Processors;
use crate::self_metrics::{CollectorMetrics, RefusalReason, Signal};
use crate::tail_sampling::TailSampler;

/// Limits applied to every export, whatever the transport.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest request accepted, after decompression (OTLP: 413 / `RESOURCE_EXHAUSTED`).
    pub max_body_bytes: usize,
    /// Decoded bytes allowed in flight at once; beyond it exports get 429 / `RESOURCE_EXHAUSTED`
    /// with retry info.
    pub max_inflight_bytes: u64,
    /// What the retry info and `Retry-After` tell a refused client to wait.
    pub retry_after: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024 * 1024,
            max_inflight_bytes: 256 * 1024 * 1024,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// Why an export was not (wholly) taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "the collector is over its memory bound ({inflight_bytes} bytes in flight); retry later"
    )]
    Overloaded {
        inflight_bytes: u64,
        retry_after: Duration,
    },
    #[error("the collector is shutting down")]
    ShuttingDown,
    #[error("the store could not keep the data")]
    Store(#[from] StoreError),
    #[error("the store writer stopped")]
    WriterGone,
    #[error("{full}; retry later")]
    QueueFull {
        full: QueueFull,
        retry_after: Duration,
    },
    #[error("the export queue could not keep the data")]
    Queue(#[source] std::io::Error),
}

/// Admits, writes and counts exports. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    sink: Arc<dyn SpanSink>,
    limits: IngestLimits,
    inflight_bytes: Arc<AtomicU64>,
    shutting_down: Arc<AtomicBool>,
    metrics: Arc<CollectorMetrics>,
    exporter: Option<Arc<Exporter>>,
    processors: Arc<Processors>,
    tail_sampling: Option<Arc<TailSampler>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("limits", &self.limits)
            .field(
                "inflight_bytes",
                &self.inflight_bytes.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// Holds a request's bytes in the in-flight count until dropped.
struct InflightPermit {
    bytes: u64,
    counter: Arc<AtomicU64>,
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Ingest {
    pub fn new(
        sink: Arc<dyn SpanSink>,
        limits: IngestLimits,
        metrics: Arc<CollectorMetrics>,
    ) -> Self {
        Self {
            sink,
            limits,
            inflight_bytes: Arc::new(AtomicU64::new(0)),
            shutting_down: Arc::new(AtomicBool::new(false)),
            metrics,
            exporter: None,
            processors: Arc::default(),
            tail_sampling: None,
        }
    }

    /// Runs every admitted export through `processors` (redaction, resource attributes) before
    /// it is stored or queued.
    pub fn with_processors(mut self, processors: Arc<Processors>) -> Self {
        self.processors = processors;
        self
    }

    pub fn processors(&self) -> &Arc<Processors> {
        &self.processors
    }

    /// Forwards every admitted export through `exporter`: an export is acknowledged once it is
    /// in the store *and* in every destination's queue.
    pub fn with_exporter(mut self, exporter: Arc<Exporter>) -> Self {
        self.exporter = Some(exporter);
        self
    }

    pub fn exporter(&self) -> Option<&Arc<Exporter>> {
        self.exporter.as_ref()
    }

    /// Holds spans in `sampler`'s durable spool until their trace is decided: a trace export is
    /// acknowledged once it is in the spool; the sampler's decider (started by the caller)
    /// writes kept spans to the store and the export queues. Logs and metrics are not sampled.
    pub fn with_tail_sampling(mut self, sampler: Arc<TailSampler>) -> Self {
        self.tail_sampling = Some(sampler);
        self
    }

    pub fn tail_sampling(&self) -> Option<&Arc<TailSampler>> {
        self.tail_sampling.as_ref()
    }

    pub(crate) fn sink(&self) -> &Arc<dyn SpanSink> {
        &self.sink
    }

    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    pub fn metrics(&self) -> &Arc<CollectorMetrics> {
        &self.metrics
    }

    /// Bytes of exports being decoded or written right now.
    pub fn inflight_bytes(&self) -> u64 {
        self.inflight_bytes.load(Ordering::Acquire)
    }

    /// From now on every export is refused with 503 / `UNAVAILABLE`.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Counts a refusal decided by a receiver (malformed, too large, wrong content type).
    pub fn refuse(&self, signal: Signal, reason: RefusalReason) {
        self.metrics.count_refusal(signal, reason);
    }

    /// Admits `bytes` more in flight, or says why not (and counts the refusal).
    fn admit(&self, signal: Signal, bytes: u64) -> Result<InflightPermit, IngestError> {
        if self.is_shutting_down() {
            self.refuse(signal, RefusalReason::ShuttingDown);
            return Err(IngestError::ShuttingDown);
        }
        let before = self.inflight_bytes.fetch_add(bytes, Ordering::AcqRel);
        let permit = InflightPermit {
            bytes,
            counter: Arc::clone(&self.inflight_bytes),
        };
        // One request alone is always admitted (it already passed the body limit), so a bound
        // smaller than a single request cannot wedge the collector.
        if before > 0 && before + bytes > self.limits.max_inflight_bytes {
            drop(permit);
            self.refuse(signal, RefusalReason::MemoryBound);
            return Err(IngestError::Overloaded {
                inflight_bytes: before,
                retry_after: self.limits.retry_after,
            });
        }
        Ok(permit)
    }

    /// Checks admission for a request of `bytes` before it is decoded; the permit must be held
    /// until the write is done.
    pub fn reserve(&self, signal: Signal, bytes: u64) -> Result<Reservation, IngestError> {
        Ok(Reservation {
            _permit: self.admit(signal, bytes)?,
        })
    }

    /// Writes spans durably (on a blocking thread) and counts what happened.
    pub async fn export_traces(
        &self,
        mut request: ExportTraceServiceRequest,
        _reservation: Reservation,
    ) -> Result<WriteReport, IngestError> {
        let spans: u64 = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum();
        self.metrics.count_received(Signal::Traces, spans);
        if !self.processors.is_noop() {
            self.processors.traces(&mut request);
        }
        if let Some(sampler) = &self.tail_sampling {
            return self.spool(sampler, spans, &request).await;
        }
        let forward = self.forward(Signal::Traces, spans, || request.encode_to_vec())?;
        let sink = Arc::clone(&self.sink);
        self.write_spans(spans, forward, move || sink.write_traces(request))
            .await
    }

    /// Whether binary trace exports may be read in place ([`export_encoded_traces`]): nothing
    /// between the receiver and the sink (processors, tail sampling) needs them decoded.
    ///
    /// [`export_encoded_traces`]: Self::export_encoded_traces
    pub fn reads_traces_in_place(&self) -> bool {
        self.processors.is_noop() && self.tail_sampling.is_none()
    }

    /// [`export_traces`](Self::export_traces) for an export read in place (when
    /// [`reads_traces_in_place`](Self::reads_traces_in_place)): the same outcome, without
    /// decoding its spans; the export queues get its bytes as they came.
    pub async fn export_encoded_traces(
        &self,
        traces: EncodedTraces,
        _reservation: Reservation,
    ) -> Result<WriteReport, IngestError> {
        let spans = traces.span_count();
        self.metrics.count_received(Signal::Traces, spans);
        let forward = self.forward(Signal::Traces, spans, || traces.bytes().to_vec())?;
        let sink = Arc::clone(&self.sink);
        self.write_spans(spans, forward, move || sink.write_encoded_traces(traces))
            .await
    }

    /// Writes spans (on a blocking thread), queues them for export, and counts what happened.
    async fn write_spans(
        &self,
        spans: u64,
        forward: Forward,
        write: impl FnOnce() -> Result<WriteReport, StoreError> + Send + 'static,
    ) -> Result<WriteReport, IngestError> {
        let report = self
            .blocking(Signal::Traces, spans, move || {
                let report = write()?;
                forward.enqueue()?;
                Ok(report)
            })
            .await?;
        self.metrics
            .count_stored(Signal::Traces, report.accepted_spans);
        if report.rejected_spans > 0 {
            self.metrics
                .count_rejected_items(Signal::Traces, report.rejected_spans);
        }
        Ok(report)
    }

    /// Keeps log records; returns how many were kept.
    pub async fn export_logs(
        &self,
        mut request: ExportLogsServiceRequest,
        _reservation: Reservation,
    ) -> Result<u64, IngestError> {
        let records: u64 = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum();
        self.metrics.count_received(Signal::Logs, records);
        if !self.processors.is_noop() {
            self.processors.logs(&mut request);
        }
        let sink = Arc::clone(&self.sink);
        let forward = self.forward(Signal::Logs, records, || request.encode_to_vec())?;
        let kept = self
            .blocking(Signal::Logs, records, move || {
                let kept = sink.write_logs(request)?;
                forward.enqueue()?;
                Ok(kept)
            })
            .await?;
        self.metrics.count_stored(Signal::Logs, kept);
        Ok(kept)
    }

    /// Keeps metric data points; returns how many were kept.
    pub async fn export_metrics(
        &self,
        mut request: ExportMetricsServiceRequest,
        _reservation: Reservation,
    ) -> Result<u64, IngestError> {
        let metrics: u64 = request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .map(|s| s.metrics.len() as u64)
            .sum();
        self.metrics.count_received(Signal::Metrics, metrics);
        if !self.processors.is_noop() {
            self.processors.metrics(&mut request);
        }
        let sink = Arc::clone(&self.sink);
        let forward = self.forward(Signal::Metrics, metrics, || request.encode_to_vec())?;
        let kept = self
            .blocking(Signal::Metrics, metrics, move || {
                let kept = sink.write_metrics(request)?;
                forward.enqueue()?;
                Ok(kept)
            })
            .await?;
        self.metrics.count_stored(Signal::Metrics, kept);
        Ok(kept)
    }

    /// Makes a trace export durable in the tail-sampling spool (refusing with retry info when
    /// it is full).
    async fn spool(
        &self,
        sampler: &Arc<TailSampler>,
        spans: u64,
        request: &ExportTraceServiceRequest,
    ) -> Result<WriteReport, IngestError> {
        let body = request.encode_to_vec();
        let spool = Arc::clone(sampler.spool());
        let retry_after = self.limits.retry_after;
        if let Err(full) = spool.check_room(body.len() as u64) {
            self.metrics
                .count_refusal(Signal::Traces, RefusalReason::QueueFull);
            return Err(IngestError::QueueFull { full, retry_after });
        }
        self.blocking(Signal::Traces, spans, move || {
            spool
                .append(Signal::Traces, &body, spans)
                .map_err(|err| match err {
                    AppendError::Full(full) => IngestError::QueueFull { full, retry_after },
                    AppendError::Io(err) => IngestError::Queue(err),
                })
        })
        .await?;
        Ok(WriteReport {
            accepted_spans: spans,
            ..WriteReport::default()
        })
    }

    /// Encodes the request for the export queues after checking they have room (refusing
    /// with retry info when one is full, before anything is written).
    fn forward(
        &self,
        signal: Signal,
        items: u64,
        encode: impl FnOnce() -> Vec<u8>,
    ) -> Result<Forward, IngestError> {
        let Some(exporter) = self.exporter.as_ref().filter(|e| e.forwards(signal)) else {
            return Ok(Forward(None));
        };
        let body = encode();
        if let Err(full) = exporter.check_room(signal, body.len() as u64) {
            self.metrics.count_refusal(signal, RefusalReason::QueueFull);
            return Err(IngestError::QueueFull {
                full,
                retry_after: self.limits.retry_after,
            });
        }
        Ok(Forward(Some((
            Arc::clone(exporter),
            signal,
            body,
            items,
            self.limits.retry_after,
        ))))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        signal: Signal,
        items: u64,
        write: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
    ) -> Result<T, IngestError> {
        // The store call blocks on disk (fsync): it runs on the blocking pool, never on a worker.
        let outcome = tokio::task::spawn_blocking(write).await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err @ IngestError::QueueFull { .. })) => {
                self.metrics.count_refusal(signal, RefusalReason::QueueFull);
                self.metrics.count_rejected_items(signal, items);
                Err(err)
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, ?signal, "store or export queue write failed");
                self.metrics
                    .count_refusal(signal, RefusalReason::StoreError);
                self.metrics.count_rejected_items(signal, items);
                Err(err)
            }
            Err(_) => {
                self.metrics
                    .count_refusal(signal, RefusalReason::StoreError);
                self.metrics.count_rejected_items(signal, items);
                Err(IngestError::WriterGone)
            }
        }
    }
}

/// An export's encoded body on its way into the export queues (nothing when not forwarding).
/// (exporter, signal, encoded body, items, retry-after when a queue is full)
type Forwarded = (Arc<Exporter>, Signal, Vec<u8>, u64, Duration);

struct Forward(Option<Forwarded>);

impl Forward {
    /// Blocking (disk).
    fn enqueue(self) -> Result<(), IngestError> {
        let Some((exporter, signal, body, items, retry_after)) = self.0 else {
            return Ok(());
        };
        exporter
            .enqueue(signal, &body, items)
            .map_err(|err| match err {
                AppendError::Full(full) => IngestError::QueueFull { full, retry_after },
                AppendError::Io(err) => IngestError::Queue(err),
            })
    }
}

/// An admitted request's share of the memory bound, released when dropped.
pub struct Reservation {
    _permit: InflightPermit,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self._permit.bytes)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use throughline_store::ExportTraceServiceRequest;

    /// A sink that keeps nothing and says it kept everything.
    pub(crate) struct NullSink;

    impl SpanSink for NullSink {
        fn write_traces(&self, _: ExportTraceServiceRequest) -> Result<WriteReport, StoreError> {
            Ok(WriteReport::default())
        }
        fn write_logs(&self, _: ExportLogsServiceRequest) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn write_metrics(&self, _: ExportMetricsServiceRequest) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    pub(crate) fn ingest(max_inflight_bytes: u64) -> Ingest {
        let limits = IngestLimits {
            max_inflight_bytes,
            ..IngestLimits::default()
        };
        Ingest::new(Arc::new(NullSink), limits, Arc::default())
    }

    #[test]
    fn over_the_memory_bound_is_refused_until_bytes_are_released() {
        let ingest = ingest(150);
        let first = ingest
            .reserve(Signal::Traces, 100)
            .expect("first request admitted");
        let refused = ingest
            .reserve(Signal::Traces, 100)
            .expect_err("over the bound");
        assert!(
            matches!(
                refused,
                IngestError::Overloaded {
                    inflight_bytes: 100,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(
            ingest
                .metrics()
                .refused(Signal::Traces, RefusalReason::MemoryBound),
            1
        );
        assert_eq!(ingest.inflight_bytes(), 100, "a refusal holds nothing");
        drop(first);
        assert_eq!(ingest.inflight_bytes(), 0);
        ingest
            .reserve(Signal::Traces, 100)
            .expect("admitted once the first is done");
    }

    #[test]
    fn a_single_request_larger_than_the_bound_is_admitted_alone() {
        let ingest = ingest(10);
        let _only = ingest
            .reserve(Signal::Logs, 1000)
            .expect("alone, it may pass");
    }

    #[test]
    fn shutting_down_refuses_everything() {
        let ingest = ingest(1000);
        ingest.begin_shutdown();
        assert!(matches!(
            ingest.reserve(Signal::Metrics, 1),
            Err(IngestError::ShuttingDown)
        ));
        assert_eq!(
            ingest
                .metrics()
                .refused(Signal::Metrics, RefusalReason::ShuttingDown),
            1
        );
    }
}
