//! Tail sampling: a decision per trace once it settles, applied after redaction and resource
//! edits and before anything is stored or queued for upstream.
//!
//! **What an acknowledgement means here.** A trace cannot be decided before its spans are
//! acknowledged (its later spans have not arrived yet), so with tail sampling on an export is
//! acknowledged once it is durable in the *sampling spool* — a [`PersistentQueue`] in
//! `<data dir>/sampling/`, written like the export queues (one `write(2)`, `fdatasync` with
//! `--sync-writes`). The spool is the only place a pending trace lives on disk; memory holds
//! only each pending trace's verdict so far (error seen, slow span seen, last arrival). A decider
//! task reads the spool ahead of its cursor, and releases records from its head once every trace
//! in them is decided: kept spans go to the store and to every export queue, sampled-out spans
//! go nowhere (neither store nor upstream), then the spool's cursor moves. After `kill -9` the
//! spool's pending records are read again and decided again: nothing acknowledged is lost; a
//! crash between the release and the cursor write releases those records twice (duplicates,
//! as the export queues). Stored traces appear in the query API once decided, `decision_wait`
//! after their last span.
//!
//! **The decision.** A trace is decided when no new span of it arrived for `decision_wait`, or
//! once it has been pending for `max_trace_wait` (a trace that never stops). It is kept when any
//! span has the error status (reason `error`), when any span lasted at least `slow` (reason
//! `slow`), or when its trace id falls in the ratio (reason `ratio`); otherwise it is dropped.
//! The ratio test reads the trace id's rightmost 56 bits as the OpenTelemetry specification's
//! consistent probability sampling does (keep when `R >= (1 - ratio) · 2^56`): every collector
//! decides the same trace alike, however its spans are split over requests or collectors.
//!
//! **Bounds.** At most `max_pending_traces` traces wait for a decision; beyond that the oldest
//! pending trace is decided at once on what has arrived (counted as `forced`). Decisions are
//! remembered for the last `decision_cache` traces: a span arriving after its trace's decision
//! follows it (counted as late). A late span of a trace forgotten by then (or decided before a
//! restart — the cache is memory only) starts a new decision; its ratio part is the same, its
//! error and slow parts see only the new spans. The spool is bounded by `spool.max_bytes`; when
//! full, exports are refused with `RESOURCE_EXHAUSTED` / 429 (the sender keeps them). Logs and
//! metrics are not sampled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use throughline_store::{ExportTraceServiceRequest, SpanSink};

use crate::export::{Exporter, PersistentQueue, QueueConfig};
use crate::self_metrics::{CollectorMetrics, Signal};

type TraceKey = [u8; 16];

/// How traces are sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct TailSamplingConfig {
    /// The share, 0 to 1, of traces kept that are neither errors nor slow.
    pub ratio: f64,
    /// A trace with a span at least this long is kept; `None`: no slow rule.
    pub slow: Option<Duration>,
    /// A trace is decided once no new span of it arrived for this long.
    pub decision_wait: Duration,
    /// A trace is decided once it has been pending this long, whatever arrives.
    pub max_trace_wait: Duration,
    /// Traces waiting for a decision at most; beyond, the oldest is decided at once.
    pub max_pending_traces: usize,
    /// Decisions remembered for spans that arrive later.
    pub decision_cache: usize,
    /// The spool's size bound and write discipline.
    pub spool: QueueConfig,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        Self {
            ratio: 0.1,
            slow: Some(Duration::from_secs(1)),
            decision_wait: Duration::from_secs(5),
            max_trace_wait: Duration::from_secs(60),
            max_pending_traces: 100_000,
            decision_cache: 500_000,
            spool: QueueConfig {
                max_bytes: 1 << 30,
                // The age bound of export queues does not apply: a spooled span is released
                // or dropped by its decision, never expired.
                max_age: Duration::from_secs(100 * 365 * 24 * 3600),
                ..QueueConfig::default()
            },
        }
    }
}

impl TailSamplingConfig {
    /// Checks the bounds; the error names the setting (`prefix` + field).
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.ratio) || self.ratio.is_nan() {
            return Err(format!(
                "{prefix}ratio: {} is not between 0 and 1",
                self.ratio
            ));
        }
        if self.decision_wait.is_zero() {
            return Err(format!("{prefix}decision_wait_ms: must be above 0"));
        }
        if self.max_trace_wait < self.decision_wait {
            return Err(format!(
                "{prefix}max_trace_wait_ms: must be at least decision_wait_ms"
            ));
        }
        if self.max_pending_traces == 0 {
            return Err(format!("{prefix}max_pending_traces: must be above 0"));
        }
        if self.decision_cache < self.max_pending_traces {
            return Err(format!(
                "{prefix}decision_cache: must be at least max_pending_traces"
            ));
        }
        Ok(())
    }
}

/// Why a trace was kept or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Error,
    Slow,
    Ratio,
    /// Outside the ratio, no error, nothing slow.
    SampledOut,
}

impl Reason {
    pub fn keep(self) -> bool {
        !matches!(self, Self::SampledOut)
    }

    fn index(self) -> usize {
        self as usize
    }

    const ALL: [Self; 4] = [Self::Error, Self::Slow, Self::Ratio, Self::SampledOut];

    fn label(self) -> (&'static str, &'static str) {
        match self {
            Self::Error => ("keep", "error"),
            Self::Slow => ("keep", "slow"),
            Self::Ratio => ("keep", "ratio"),
            Self::SampledOut => ("drop", "ratio"),
        }
    }
}

/// Whether `trace_id` falls in `ratio` (the specification's consistent probability sampling:
/// the rightmost 56 bits against the rejection threshold).
pub fn in_ratio(trace_id: &[u8], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 || trace_id.len() < 7 {
        return false;
    }
    let tail = &trace_id[trace_id.len() - 7..];
    let r = tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let threshold = ((1.0 - ratio) * (1u64 << 56) as f64) as u64;
    r >= threshold
}

/// The sampler's counters.
#[derive(Debug, Default)]
pub struct SamplingFigures {
    /// Traces decided, by [`Reason`].
    decisions: [AtomicU64; 4],
    /// Decisions taken early because too many traces were pending.
    pub forced: AtomicU64,
    /// Decisions taken because the trace was pending for `max_trace_wait`.
    pub timed_out: AtomicU64,
    /// Spans that arrived after their trace's decision and followed it: kept, dropped.
    pub late_kept: AtomicU64,
    pub late_dropped: AtomicU64,
    /// Spans released to the store and export queues, and spans dropped.
    pub kept_spans: AtomicU64,
    pub dropped_spans: AtomicU64,
    /// Traces waiting for a decision now.
    pub pending_traces: AtomicU64,
    /// Releases that failed (store or export queue) and were retried.
    pub release_retries: AtomicU64,
}

impl SamplingFigures {
    pub fn decisions(&self, reason: Reason) -> u64 {
        self.decisions[reason.index()].load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    first_seen: Instant,
    last_seen: Instant,
    error: bool,
    slow: bool,
}

/// The decisions without I/O: observe spans as they are read from the spool, decide what has
/// settled, filter released requests. The clock is the caller's.
#[derive(Debug)]
pub struct Decider {
    config: TailSamplingConfig,
    pending: HashMap<TraceKey, Pending>,
    /// Pending traces in arrival order (ids decided since are skipped when met).
    arrival: VecDeque<TraceKey>,
    decided: HashMap<TraceKey, bool>,
    decided_order: VecDeque<TraceKey>,
    /// The distinct traces of each observed record not yet released, head first.
    records: VecDeque<Vec<TraceKey>>,
    figures: Arc<SamplingFigures>,
}

fn key(trace_id: &[u8]) -> TraceKey {
    let mut k = [0u8; 16];
    let n = trace_id.len().min(16);
    k[16 - n..].copy_from_slice(&trace_id[trace_id.len() - n..]);
    k
}

impl Decider {
    pub fn new(config: TailSamplingConfig, figures: Arc<SamplingFigures>) -> Self {
        Self {
            config,
            pending: HashMap::new(),
            arrival: VecDeque::new(),
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            records: VecDeque::new(),
            figures,
        }
    }

    /// Records observed and not yet released.
    pub fn observed(&self) -> usize {
        self.records.len()
    }

    pub fn pending_traces(&self) -> usize {
        self.pending.len()
    }

    /// Takes the spans of the next spool record into account.
    pub fn observe(&mut self, request: &ExportTraceServiceRequest, now: Instant) {
        let slow_nanos = self.config.slow.map(|d| d.as_nanos() as u64);
        let mut traces = HashSet::new();
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            let k = key(&span.trace_id);
            traces.insert(k);
            if let Some(keep) = self.decided.get(&k) {
                let counter = if *keep {
                    &self.figures.late_kept
                } else {
                    &self.figures.late_dropped
                };
                counter.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let error = span
                .status
                .as_ref()
                .is_some_and(|s| s.code == StatusCode::Error as i32);
            let slow = slow_nanos.is_some_and(|limit| {
                span.end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano)
                    >= limit
            });
            let entry = self.pending.entry(k).or_insert_with(|| {
                self.arrival.push_back(k);
                Pending {
                    first_seen: now,
                    last_seen: now,
                    error: false,
                    slow: false,
                }
            });
            entry.last_seen = now;
            entry.error |= error;
            entry.slow |= slow;
        }
        self.records.push_back(traces.into_iter().collect());
        while self.pending.len() > self.config.max_pending_traces {
            let Some(oldest) = self.arrival.pop_front() else {
                break;
            };
            if self.pending.contains_key(&oldest) {
                self.decide(oldest);
                self.figures.forced.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Decided traces leave `arrival` lazily; keep it within a small multiple of `pending`.
        while self
            .arrival
            .front()
            .is_some_and(|k| !self.pending.contains_key(k))
        {
            self.arrival.pop_front();
        }
        if self.arrival.len() > 2 * self.pending.len() + 1024 {
            let pending = &self.pending;
            self.arrival.retain(|k| pending.contains_key(k));
        }
        self.figures
            .pending_traces
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }

    fn decide(&mut self, k: TraceKey) -> bool {
        let state = self.pending.remove(&k);
        let reason = match state {
            Some(p) if p.error => Reason::Error,
            Some(p) if p.slow => Reason::Slow,
            _ if in_ratio(&k, self.config.ratio) => Reason::Ratio,
            _ => Reason::SampledOut,
        };
        self.figures.decisions[reason.index()].fetch_add(1, Ordering::Relaxed);
        let keep = reason.keep();
        if self.decided.insert(k, keep).is_none() {
            self.decided_order.push_back(k);
        }
        while self.decided_order.len() > self.config.decision_cache {
            if let Some(old) = self.decided_order.pop_front() {
                self.decided.remove(&old);
            }
        }
        keep
    }

    /// Decides what has settled among the traces of the head records, and says how many head
    /// records now have every trace decided (ready to release).
    pub fn ready(&mut self, now: Instant) -> usize {
        let mut ready = 0;
        let mut records = std::mem::take(&mut self.records);
        'records: for traces in &records {
            for k in traces {
                if self.decided.contains_key(k) {
                    continue;
                }
                match self.pending.get(k).copied() {
                    Some(p) => {
                        let quiet =
                            now.saturating_duration_since(p.last_seen) >= self.config.decision_wait;
                        let old = now.saturating_duration_since(p.first_seen)
                            >= self.config.max_trace_wait;
                        if !(quiet || old) {
                            break 'records;
                        }
                        if !quiet {
                            self.figures.timed_out.fetch_add(1, Ordering::Relaxed);
                        }
                        self.decide(*k);
                    }
                    // Decided and forgotten since (the cache is smaller than the backlog):
                    // decided again on the ratio alone.
                    None => {
                        self.decide(*k);
                    }
                }
            }
            ready += 1;
        }
        std::mem::swap(&mut self.records, &mut records);
        self.figures
            .pending_traces
            .store(self.pending.len() as u64, Ordering::Relaxed);
        ready
    }

    /// When the head may next become ready (the earliest a pending head trace settles).
    pub fn next_deadline(&self) -> Option<Instant> {
        let traces = self.records.front()?;
        traces
            .iter()
            .filter_map(|k| self.pending.get(k))
            .map(|p| {
                (p.last_seen + self.config.decision_wait)
                    .min(p.first_seen + self.config.max_trace_wait)
            })
            .max()
    }

    /// Keeps the spans of kept traces in `request`; returns (kept, dropped) span counts.
    /// Call for the `ready` head records, then [`Decider::released`].
    pub fn filter(&mut self, request: &mut ExportTraceServiceRequest) -> (u64, u64) {
        let mut kept = 0;
        let mut dropped = 0;
        for rs in &mut request.resource_spans {
            for ss in &mut rs.scope_spans {
                ss.spans.retain(|span| {
                    let k = key(&span.trace_id);
                    let keep = match self.decided.get(&k) {
                        Some(keep) => *keep,
                        None => in_ratio(&k, self.config.ratio),
                    };
                    if keep {
                        kept += 1;
                    } else {
                        dropped += 1;
                    }
                    keep
                });
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        request
            .resource_spans
            .retain(|rs| !rs.scope_spans.is_empty());
        (kept, dropped)
    }

    /// The first `records` observed records left the spool.
    pub fn released(&mut self, records: usize) {
        self.records.drain(..records.min(self.records.len()));
    }
}

/// Where released spans go.
pub struct Outlets {
    pub sink: Arc<dyn SpanSink>,
    pub exporter: Option<Arc<Exporter>>,
    pub metrics: Arc<CollectorMetrics>,
}

impl std::fmt::Debug for Outlets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlets")
            .field("exporter", &self.exporter)
            .finish_non_exhaustive()
    }
}

/// The spool, the decider task and the figures. Share it as `Arc`.
#[derive(Debug)]
pub struct TailSampler {
    config: TailSamplingConfig,
    spool: Arc<PersistentQueue>,
    figures: Arc<SamplingFigures>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The most bytes of spooled requests released as one write.
const RELEASE_BYTES: usize = 4 << 20;

impl TailSampler {
    /// Opens (or reopens, with what it held) the spool in `dir`. Blocking (disk).
    pub fn open(config: TailSamplingConfig, dir: &Path) -> std::io::Result<Arc<Self>> {
        let spool = PersistentQueue::open("tail-sampling spool", dir, config.spool.clone())?;
        if !spool.is_empty() {
            tracing::info!(
                records = spool.len(),
                "the tail-sampling spool holds spans from before; deciding them first"
            );
        }
        Ok(Arc::new(Self {
            config,
            spool,
            figures: Arc::default(),
            task: std::sync::Mutex::new(None),
        }))
    }

    pub fn config(&self) -> &TailSamplingConfig {
        &self.config
    }

    pub fn spool(&self) -> &Arc<PersistentQueue> {
        &self.spool
    }

    pub fn figures(&self) -> &Arc<SamplingFigures> {
        &self.figures
    }

    /// Spawns the decider on the current runtime: it releases kept spans into `outlets`.
    pub fn start(&self, outlets: Outlets) {
        let task = tokio::spawn(run(
            self.config.clone(),
            Arc::clone(&self.spool),
            Arc::clone(&self.figures),
            outlets,
        ));
        if let Some(old) = self
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    /// Stops the decider; what the spool holds is decided at the next start.
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    /// Waits until the spool is empty (everything decided and released) or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.spool.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The sampler's figures in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let f = &self.figures;
        let name = "throughline_tail_sampling_decisions_total";
        let _ = writeln!(out, "# HELP {name} Traces decided, by decision and reason.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for reason in Reason::ALL {
            let (decision, why) = reason.label();
            let _ = writeln!(
                out,
                "{name}{{decision=\"{decision}\",reason=\"{why}\"}} {}",
                f.decisions(reason)
            );
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let name = "throughline_tail_sampling_spans_total";
        let _ = writeln!(
            out,
            "# HELP {name} Spans released to the store and upstream (kept) or dropped."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name}{{decision=\"keep\"}} {}", load(&f.kept_spans));
        let _ = writeln!(
            out,
            "{name}{{decision=\"drop\"}} {}",
            load(&f.dropped_spans)
        );
        let name = "throughline_tail_sampling_late_spans_total";
        let _ = writeln!(
            out,
            "# HELP {name} Spans that arrived after their trace's decision and followed it."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name}{{decision=\"keep\"}} {}", load(&f.late_kept));
        let _ = writeln!(out, "{name}{{decision=\"drop\"}} {}", load(&f.late_dropped));
        let depth = self.spool.depth();
        let single: [(&str, &str, &str, u64); 6] = [
            (
                "throughline_tail_sampling_forced_decisions_total",
                "counter",
                "Traces decided early because max_pending_traces were pending.",
                load(&f.forced),
            ),
            (
                "throughline_tail_sampling_timed_out_decisions_total",
                "counter",
                "Traces decided because they were pending for max_trace_wait.",
                load(&f.timed_out),
            ),
            (
                "throughline_tail_sampling_release_retries_total",
                "counter",
                "Releases to the store or export queues that failed and were retried.",
                load(&f.release_retries),
            ),
            (
                "throughline_tail_sampling_pending_traces",
                "gauge",
                "Traces waiting for a decision.",
                load(&f.pending_traces),
            ),
            (
                "throughline_tail_sampling_spool_items",
                "gauge",
                "Spans in the spool, acknowledged and not yet decided and released.",
                depth.items,
            ),
            (
                "throughline_tail_sampling_spool_bytes",
                "gauge",
                "Bytes in the spool.",
                depth.bytes,
            ),
        ];
        for (name, kind, help, value) in single {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

impl Drop for TailSampler {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|err| Err(std::io::Error::other(err)))
}

/// The decider: observe what the spool holds, decide, release the head.
async fn run(
    config: TailSamplingConfig,
    spool: Arc<PersistentQueue>,
    figures: Arc<SamplingFigures>,
    outlets: Outlets,
) {
    let mut decider = Decider::new(config, Arc::clone(&figures));
    let mut failures = 0u32;
    loop {
        // Read ahead: everything spooled since the last pass.
        let from = decider.observed();
        let reader = Arc::clone(&spool);
        let read = blocking(move || {
            let mut out = Vec::new();
            let mut bytes = 0;
            while let Some((_, body)) = reader.read_pending(from + out.len())? {
                bytes += body.len();
                out.push(body);
                if bytes > RELEASE_BYTES * 4 {
                    break;
                }
            }
            Ok(out)
        })
        .await;
        let bodies = match read {
            Ok(bodies) => bodies,
            Err(err) => {
                tracing::error!(error = %err, "could not read the tail-sampling spool");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let now = Instant::now();
        for body in &bodies {
            // The spool holds what the receivers decoded and re-encoded: it decodes.
            let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap_or_default();
            decider.observe(&request, now);
        }
        let ready = decider.ready(Instant::now());
        if ready > 0 {
            match release(&spool, &mut decider, ready, &outlets).await {
                Ok(()) => failures = 0,
                Err(err) => {
                    figures.release_retries.fetch_add(1, Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                    let delay = Duration::from_millis(100 << failures.min(6));
                    tracing::warn!(error = %err, delay_ms = delay.as_millis() as u64,
                        "could not release sampled spans; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
            continue;
        }
        if !bodies.is_empty() {
            continue;
        }
        let wake = decider
            .next_deadline()
            .map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            })
            .clamp(Duration::from_millis(5), Duration::from_secs(1));
        let _ = tokio::time::timeout(wake, spool.wait_for_data()).await;
    }
}

/// Writes the kept spans of the first `ready` spool records to the store and the export
/// queues, then moves the spool's cursor past them. On an error nothing moves: the same records
/// are released again (a duplicate where part of it was written, never a loss).
async fn release(
    spool: &Arc<PersistentQueue>,
    decider: &mut Decider,
    ready: usize,
    outlets: &Outlets,
) -> Result<(), String> {
    let mut done = 0;
    while done < ready {
        let reader = Arc::clone(spool);
        let (bodies, records) = blocking(move || {
            let mut merged = Vec::new();
            let mut records = 0;
            while done + records < ready && (records == 0 || merged.len() < RELEASE_BYTES) {
                match reader.read_pending(records)? {
                    Some((Signal::Traces, body)) => merged.extend_from_slice(&body),
                    Some(_) => {}
                    None => break,
                }
                records += 1;
            }
            Ok((merged, records))
        })
        .await
        .map_err(|e| e.to_string())?;
        // Concatenated encodings of one message type merge their repeated fields.
        let mut request =
            ExportTraceServiceRequest::decode(bodies.as_slice()).map_err(|e| e.to_string())?;
        let (kept, dropped) = decider.filter(&mut request);
        if kept > 0 {
            let sink = Arc::clone(&outlets.sink);
            let exporter = outlets.exporter.clone();
            let report = tokio::task::spawn_blocking(move || -> Result<_, String> {
                let body = exporter.as_ref().map(|_| request.encode_to_vec());
                let report = sink.write_traces(request).map_err(|e| e.to_string())?;
                if let (Some(exporter), Some(body)) = (exporter, body) {
                    exporter
                        .enqueue(Signal::Traces, &body, kept)
                        .map_err(|e| e.to_string())?;
                }
                Ok(report)
            })
            .await
            .map_err(|e| e.to_string())??;
            outlets
                .metrics
                .count_stored(Signal::Traces, report.accepted_spans);
        }
        let ack = Arc::clone(spool);
        blocking(move || ack.ack(records))
            .await
            .map_err(|e| e.to_string())?;
        decider.released(records);
        let figures = &decider.figures;
        figures.kept_spans.fetch_add(kept, Ordering::Relaxed);
        figures.dropped_spans.fetch_add(dropped, Ordering::Relaxed);
        done += records;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    fn span(trace: u8, id: u8, error: bool, millis: u64) -> Span {
        let mut trace_id = vec![0u8; 16];
        trace_id[0] = trace;
        // A tail far inside the ratio (all ones) so ratio decisions are predictable.
        trace_id[9..].fill(0xff);
        Span {
            trace_id,
            span_id: vec![id; 8],
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 1_000 + millis * 1_000_000,
            status: error.then(|| Status {
                code: StatusCode::Error as i32,
                ..Status::default()
            }),
            ..Span::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn config() -> TailSamplingConfig {
        TailSamplingConfig {
            ratio: 0.0,
            slow: Some(Duration::from_millis(500)),
            decision_wait: Duration::from_secs(5),
            max_trace_wait: Duration::from_secs(30),
            max_pending_traces: 3,
            decision_cache: 10,
            ..TailSamplingConfig::default()
        }
    }

    #[test]
    fn the_ratio_is_read_from_the_trace_ids_rightmost_56_bits() {
        let mut low = [0u8; 16];
        let mut high = [0u8; 16];
        high[9..].fill(0xff);
        // The leftmost bytes do not count.
        low[..9].fill(0xff);
        assert!(in_ratio(&high, 0.1));
        assert!(!in_ratio(&low, 0.1));
        assert!(in_ratio(&low, 1.0));
        assert!(!in_ratio(&high, 0.0));
        // Uniform tails: about a tenth kept.
        let kept = (0u32..10_000)
            .filter(|i| {
                let mut id = [0u8; 16];
                let x = u64::from(*i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                id[8..].copy_from_slice(&x.to_be_bytes());
                in_ratio(&id, 0.1)
            })
            .count();
        assert!((900..=1100).contains(&kept), "{kept}");
    }

    #[test]
    fn a_trace_is_decided_once_it_settles_and_late_spans_follow_the_decision() {
        let figures = Arc::new(SamplingFigures::default());
        let mut d = Decider::new(config(), Arc::clone(&figures));
        let t0 = Instant::now();
        // Trace 1: an ordinary span, then (3 s later, in another request) an error span.
        d.observe(&request(vec![span(1, 1, false, 1)]), t0);
        assert_eq!(d.ready(t0 + Duration::from_secs(3)), 0, "not settled yet");
        d.observe(
            &request(vec![span(1, 2, true, 1)]),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(
            d.ready(t0 + Duration::from_secs(6)),
            0,
            "the second span restarted the wait"
        );
        assert_eq!(d.ready(t0 + Duration::from_secs(8)), 2);
        let mut first = request(vec![span(1, 1, false, 1)]);
        assert_eq!(d.filter(&mut first), (1, 0), "the whole trace is kept");
        d.released(2);
        assert_eq!(figures.decisions(Reason::Error), 1);
        // A span after the decision follows it.
        d.observe(
            &request(vec![span(1, 3, false, 1)]),
            t0 + Duration::from_secs(9),
        );
        assert_eq!(figures.late_kept.load(Ordering::Relaxed), 1);
        assert_eq!(
            d.ready(t0 + Duration::from_secs(9)),
            1,
            "nothing to wait for"
        );
        d.released(1);
        // Trace 2: slow. Trace 3: ordinary, outside the ratio (0).
        d.observe(
            &request(vec![span(2, 1, false, 600), span(3, 1, false, 10)]),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(d.ready(t0 + Duration::from_secs(15)), 1);
        let mut mixed = request(vec![span(2, 1, false, 600), span(3, 1, false, 10)]);
        assert_eq!(d.filter(&mut mixed), (1, 1));
        assert_eq!(
            mixed.resource_spans[0].scope_spans[0].spans[0].trace_id[0],
            2
        );
        assert_eq!(figures.decisions(Reason::Slow), 1);
        assert_eq!(figures.decisions(Reason::SampledOut), 1);
        d.released(1);
        let mut dropped = request(vec![span(3, 2, true, 1)]);
        d.observe(&dropped, t0 + Duration::from_secs(16));
        assert_eq!(
            figures.late_dropped.load(Ordering::Relaxed),
            1,
            "an error after a drop decision follows the drop"
        );
        assert_eq!(d.ready(t0 + Duration::from_secs(16)), 1);
        assert_eq!(d.filter(&mut dropped), (0, 1));
        assert!(
            dropped.resource_spans.is_empty(),
            "empty groups are removed"
        );
    }

    #[test]
    fn beyond_max_pending_the_oldest_trace_is_decided_early_and_old_traces_time_out() {
        let figures = Arc::new(SamplingFigures::default());
        let mut d = Decider::new(config(), Arc::clone(&figures));
        let t0 = Instant::now();
        for t in 1..=4u8 {
            d.observe(&request(vec![span(t, 1, t == 1, 1)]), t0);
        }
        assert_eq!(d.pending_traces(), 3);
        assert_eq!(figures.forced.load(Ordering::Relaxed), 1);
        assert_eq!(
            figures.decisions(Reason::Error),
            1,
            "decided on what had arrived"
        );
        assert_eq!(d.ready(t0), 1, "the forced trace's record is ready");
        d.released(1);
        // A trace that keeps getting spans is decided at max_trace_wait.
        for s in 1..=10u8 {
            let at = t0 + Duration::from_secs(u64::from(s) * 4);
            d.observe(&request(vec![span(2, s, false, 1)]), at);
        }
        assert_eq!(d.ready(t0 + Duration::from_secs(40)), 3 + 10);
        assert!(figures.timed_out.load(Ordering::Relaxed) >= 1);
    }
}
