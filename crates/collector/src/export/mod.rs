//! Forwarding upstream without loss: one [`PersistentQueue`] and one forwarder task per
//! destination.
//!
//! [`Exporter::enqueue`] makes a request durable in every destination's queue (the receivers
//! acknowledge only after it returns); each forwarder sends from the head of its queue, in
//! order, batching consecutive requests of one signal, and moves the queue's cursor only once
//! the upstream answered for good: accepted (a partial success's rejected items counted and
//! logged) or refused permanently (counted and logged, not retried). Retryable answers and
//! transport failures are retried with exponential backoff and jitter, never sooner than the
//! upstream's `RetryInfo` / `Retry-After`.
//!
//! This is the library entry point for anything that forwards: the collector's receivers, and
//! an embedding (a Lambda extension) that calls [`Exporter::enqueue`] and
//! [`Exporter::flush`].

pub mod client;
pub mod config;
pub mod queue;

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use client::{ClientError, SendOutcome, UpstreamClient};
pub use config::{Destination, ExportDefaults, Protocol, SettingError, SignalSet, TlsFiles};
pub use queue::{AppendError, Batch, PersistentQueue, QueueConfig, QueueDepth, QueueFull};

use crate::self_metrics::Signal;

/// How the forwarders retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay after a failure; doubled after each further failure.
    pub initial: Duration,
    /// The longest delay between attempts (a server's retry hint may ask for more).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Everything the exporter needs.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub destinations: Vec<Destination>,
    /// Each destination's queue lives in a directory under this one.
    pub queue_root: PathBuf,
    pub queue: QueueConfig,
    /// Largest request body the forwarders build from queued requests.
    pub max_batch_bytes: usize,
    pub retry: RetryPolicy,
}

impl ExportSettings {
    pub fn new(destinations: Vec<Destination>, queue_root: impl Into<PathBuf>) -> Self {
        Self {
            destinations,
            queue_root: queue_root.into(),
            queue: QueueConfig::default(),
            max_batch_bytes: 4 << 20,
            retry: RetryPolicy::default(),
        }
    }
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportStartError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("could not open the export queue in {dir}")]
    Queue {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("two export destinations share the queue directory {0}")]
    DuplicateDestination(String),
}

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct OutputFigures {
    /// Requests the upstream accepted.
    pub sent_requests: AtomicU64,
    /// Items in accepted requests (less the partial successes' rejections).
    pub sent_items: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retries: AtomicU64,
    /// Items the upstream refused for good (permanent errors).
    pub failed_items: AtomicU64,
    /// Items a partial success rejected.
    pub rejected_items: AtomicU64,
}

/// One destination: its client, queue and counters.
#[derive(Debug)]
pub struct Output {
    pub destination: Destination,
    pub client: UpstreamClient,
    pub queue: Arc<PersistentQueue>,
    pub figures: OutputFigures,
}

/// The destinations and their forwarders. Share it as `Arc`.
#[derive(Debug)]
pub struct Exporter {
    outputs: Vec<Arc<Output>>,
    max_batch_bytes: usize,
    retry: RetryPolicy,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Exporter {
    /// Builds the clients and opens the queues (blocking: disk). Nothing is sent until
    /// [`Exporter::start`].
    pub fn open(settings: ExportSettings) -> Result<Arc<Self>, ExportStartError> {
        let mut outputs = Vec::new();
        let mut dirs = std::collections::HashSet::new();
        for destination in settings.destinations {
            let client = UpstreamClient::new(&destination)?;
            let dir_name = destination.queue_dir_name();
            if !dirs.insert(dir_name.clone()) {
                return Err(ExportStartError::DuplicateDestination(dir_name));
            }
            let dir = settings.queue_root.join(&dir_name);
            let queue = PersistentQueue::open(&destination.name, &dir, settings.queue.clone())
                .map_err(|source| ExportStartError::Queue {
                    dir: dir.clone(),
                    source,
                })?;
            let depth = queue.depth();
            if depth.records > 0 {
                tracing::info!(destination = %destination.name, items = depth.items,
                    "export queue holds data from before; forwarding it first");
            }
            outputs.push(Arc::new(Output {
                destination,
                client,
                queue,
                figures: OutputFigures::default(),
            }));
        }
        Ok(Arc::new(Self {
            outputs,
            max_batch_bytes: settings.max_batch_bytes,
            retry: settings.retry,
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// Spawns one forwarder per destination on the current tokio runtime.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for output in &self.outputs {
            tasks.push(tokio::spawn(forward(
                Arc::clone(output),
                self.max_batch_bytes,
                self.retry,
            )));
        }
    }

    /// Stops the forwarders; what is queued stays on disk for the next start.
    pub fn stop(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
        }
    }

    pub fn outputs(&self) -> &[Arc<Output>] {
        &self.outputs
    }

    /// Whether every queue that takes `signal` has room for `bytes` more.
    pub fn check_room(&self, signal: Signal, bytes: u64) -> Result<(), QueueFull> {
        self.outputs
            .iter()
            .filter(|o| o.destination.signals.contains(signal))
            .try_for_each(|o| o.queue.check_room(bytes))
    }

    /// Whether any destination takes `signal`.
    pub fn forwards(&self, signal: Signal) -> bool {
        self.outputs
            .iter()
            .any(|o| o.destination.signals.contains(signal))
    }

    /// Makes one encoded OTLP request durable in every destination's queue. Blocking (disk).
    /// On an error some queues may hold it already: the sender's retry makes a duplicate there,
    /// never a loss.
    pub fn enqueue(&self, signal: Signal, body: &[u8], items: u64) -> Result<(), AppendError> {
        for output in &self.outputs {
            if output.destination.signals.contains(signal) {
                output.queue.append(signal, body, items)?;
            }
        }
        Ok(())
    }

    /// Waits until every queue is empty or `timeout` passes; true when all are empty.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.outputs.iter().all(|o| o.queue.depth().records == 0) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The exporter's figures in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        type Pick = fn(&Output, &QueueDepth) -> u64;
        let series: [(&str, &str, &str, Pick); 10] = [
            (
                "throughline_export_queue_records",
                "gauge",
                "Requests waiting in the destination's persistent queue.",
                |_, d| d.records,
            ),
            (
                "throughline_export_queue_items",
                "gauge",
                "Spans, log records and metrics waiting in the queue.",
                |_, d| d.items,
            ),
            (
                "throughline_export_queue_bytes",
                "gauge",
                "Bytes waiting in the queue.",
                |_, d| d.bytes,
            ),
            (
                "throughline_export_queue_oldest_age_seconds",
                "gauge",
                "Age of the oldest queued request.",
                |_, d| d.oldest_age_ms / 1000,
            ),
            (
                "throughline_export_sent_requests_total",
                "counter",
                "Requests the upstream accepted.",
                |o, _| o.figures.sent_requests.load(Ordering::Relaxed),
            ),
            (
                "throughline_export_sent_items_total",
                "counter",
                "Items the upstream accepted.",
                |o, _| o.figures.sent_items.load(Ordering::Relaxed),
            ),
            (
                "throughline_export_retries_total",
                "counter",
                "Attempts that failed and were retried.",
                |o, _| o.figures.retries.load(Ordering::Relaxed),
            ),
            (
                "throughline_export_failed_items_total",
                "counter",
                "Items the upstream refused for good (permanent errors).",
                |o, _| o.figures.failed_items.load(Ordering::Relaxed),
            ),
            (
                "throughline_export_rejected_items_total",
                "counter",
                "Items an upstream's partial success rejected.",
                |o, _| o.figures.rejected_items.load(Ordering::Relaxed),
            ),
            (
                "throughline_export_expired_items_total",
                "counter",
                "Items dropped from the queue past its age bound.",
                |_, d| d.expired_items,
            ),
        ];
        let depths: Vec<QueueDepth> = self.outputs.iter().map(|o| o.queue.depth()).collect();
        for (name, kind, help, pick) in series {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (output, depth) in self.outputs.iter().zip(&depths) {
                let label = output
                    .destination
                    .name
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "{name}{{destination=\"{label}\"}} {}",
                    pick(output, depth)
                );
            }
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Exponential backoff with ±50 % jitter.
#[derive(Debug)]
struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    fn next(&mut self, hint: Option<Duration>) -> Duration {
        let base = self
            .policy
            .initial
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.policy.max);
        self.failures = self.failures.saturating_add(1);
        let jitter = rand::random_range(0.5..1.5);
        base.mul_f64(jitter).max(hint.unwrap_or(Duration::ZERO))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|err| Err(io::Error::other(err)))
}

/// Sends from the head of one queue until aborted.
async fn forward(output: Arc<Output>, max_batch_bytes: usize, retry: RetryPolicy) {
    let mut backoff = Backoff {
        policy: retry,
        failures: 0,
    };
    let name = output.destination.name.clone();
    loop {
        let queue = Arc::clone(&output.queue);
        let batch = match blocking(move || queue.peek(max_batch_bytes)).await {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                // Woken by an append; the timeout re-checks the age bound now and then.
                let _ = tokio::time::timeout(Duration::from_secs(1), output.queue.wait_for_data())
                    .await;
                continue;
            }
            Err(err) => {
                tracing::error!(destination = %name, error = %err, "could not read the export queue");
                tokio::time::sleep(backoff.next(None)).await;
                continue;
            }
        };
        let records = batch.records;
        let items = batch.items;
        let outcome = output.client.send(batch.signal, batch.body).await;
        let figures = &output.figures;
        match outcome {
            SendOutcome::Accepted { rejected, message } => {
                figures.sent_requests.fetch_add(1, Ordering::Relaxed);
                figures
                    .sent_items
                    .fetch_add(items.saturating_sub(rejected), Ordering::Relaxed);
                if rejected > 0 {
                    figures
                        .rejected_items
                        .fetch_add(rejected, Ordering::Relaxed);
                    tracing::warn!(destination = %name, rejected, %message, "the upstream rejected part of an export");
                }
            }
            SendOutcome::Permanent { reason } => {
                figures.failed_items.fetch_add(items, Ordering::Relaxed);
                tracing::error!(destination = %name, items, %reason, "the upstream refused an export for good; dropping it");
            }
            SendOutcome::Retry { after, reason } => {
                figures.retries.fetch_add(1, Ordering::Relaxed);
                let delay = backoff.next(after);
                tracing::warn!(destination = %name, %reason, delay_ms = delay.as_millis() as u64, "export failed; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        }
        backoff.reset();
        let queue = Arc::clone(&output.queue);
        if let Err(err) = blocking(move || queue.ack(records)).await {
            // The records stay pending and are sent again: a duplicate, not a loss.
            tracing::error!(destination = %name, error = %err, "could not move the export queue's cursor");
            tokio::time::sleep(backoff.next(None)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_bound_and_honours_the_hint() {
        let mut b = Backoff {
            policy: RetryPolicy {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(1000),
            },
            failures: 0,
        };
        let first = b.next(None);
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(150),
            "{first:?}"
        );
        for _ in 0..10 {
            b.next(None);
        }
        let capped = b.next(None);
        assert!(capped <= Duration::from_millis(1500), "{capped:?}");
        assert!(b.next(Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        b.reset();
        assert!(b.next(None) <= Duration::from_millis(150));
    }
}
