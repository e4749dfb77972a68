//! The collector's own figures: items received, stored and rejected per signal, and every
//! refused request counted by reason, so that nothing is dropped without a trace.

use std::sync::atomic::{AtomicU64, Ordering};

/// An OTLP signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a whole request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The payload did not decode (400 / `INVALID_ARGUMENT`).
    Malformed,
    /// The body was over the size limit after decompression (413 / `RESOURCE_EXHAUSTED`).
    TooLarge,
    /// Over the in-flight memory bound (429 / `RESOURCE_EXHAUSTED` with retry info).
    MemoryBound,
    /// The collector was shutting down (503 / `UNAVAILABLE`).
    ShuttingDown,
    /// A content type or encoding the receiver does not speak (415).
    UnsupportedMediaType,
    /// The store failed to keep the data (503 / `UNAVAILABLE`, retryable).
    StoreError,
    /// The body did not arrive in time.
    Timeout,
    /// An export destination's persistent queue was full (429 / `RESOURCE_EXHAUSTED` with
    /// retry info: the sender keeps the data).
    QueueFull,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 8] = [
        RefusalReason::Malformed,
        RefusalReason::TooLarge,
        RefusalReason::MemoryBound,
        RefusalReason::ShuttingDown,
        RefusalReason::UnsupportedMediaType,
        RefusalReason::StoreError,
        RefusalReason::Timeout,
        RefusalReason::QueueFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Malformed => "malformed",
            RefusalReason::TooLarge => "too_large",
            RefusalReason::MemoryBound => "memory_bound",
            RefusalReason::ShuttingDown => "shutting_down",
            RefusalReason::UnsupportedMediaType => "unsupported_media_type",
            RefusalReason::StoreError => "store_error",
            RefusalReason::Timeout => "timeout",
            RefusalReason::QueueFull => "export_queue_full",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const SIGNALS: usize = 3;
const REASONS: usize = 8;

/// Monotonic counters, updated with relaxed atomics (they are figures, not synchronisation).
#[derive(Debug, Default)]
pub struct CollectorMetrics {
    received: [AtomicU64; SIGNALS],
    stored: [AtomicU64; SIGNALS],
    rejected_items: [AtomicU64; SIGNALS],
    refused_requests: [[AtomicU64; REASONS]; SIGNALS],
}

impl CollectorMetrics {
    pub fn count_received(&self, signal: Signal, items: u64) {
        self.received[signal.index()].fetch_add(items, Ordering::Relaxed);
    }

    pub fn count_stored(&self, signal: Signal, items: u64) {
        self.stored[signal.index()].fetch_add(items, Ordering::Relaxed);
    }

    /// Items (spans, records) that arrived in a request but were not kept.
    pub fn count_rejected_items(&self, signal: Signal, items: u64) {
        self.rejected_items[signal.index()].fetch_add(items, Ordering::Relaxed);
    }

    pub fn count_refusal(&self, signal: Signal, reason: RefusalReason) {
        self.refused_requests[signal.index()][reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self, signal: Signal) -> u64 {
        self.received[signal.index()].load(Ordering::Relaxed)
    }

    pub fn stored(&self, signal: Signal) -> u64 {
        self.stored[signal.index()].load(Ordering::Relaxed)
    }

    pub fn rejected_items(&self, signal: Signal) -> u64 {
        self.rejected_items[signal.index()].load(Ordering::Relaxed)
    }

    pub fn refused(&self, signal: Signal, reason: RefusalReason) -> u64 {
        self.refused_requests[signal.index()][reason.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_signal_and_reason() {
        let m = CollectorMetrics::default();
        m.count_refusal(Signal::Logs, RefusalReason::TooLarge);
        m.count_refusal(Signal::Logs, RefusalReason::TooLarge);
        m.count_refusal(Signal::Traces, RefusalReason::Timeout);
        assert_eq!(m.refused(Signal::Logs, RefusalReason::TooLarge), 2);
        assert_eq!(m.refused(Signal::Traces, RefusalReason::TooLarge), 0);
        assert_eq!(m.refused(Signal::Traces, RefusalReason::Timeout), 1);
    }
}
