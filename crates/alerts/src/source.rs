//! What the evaluator reads, behind [`AlertSource`]: span-rule counts, RED figures of the span
//! metrics, trace integrity and stored OTLP metrics. [`StoreSource`] answers from the store and
//! the ingest [`SpanTap`]; tests give their own.

use std::collections::BTreeMap;
use std::sync::Arc;

use throughline_store::{LatencyHistogram, RedScope, TraceId, TraceReader};

use crate::rules::Aggregation;
use crate::tap::SpanTap;

/// RED figures summed over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedWindow {
    pub calls: u64,
    pub errors: u64,
    pub latency: LatencyHistogram,
}

/// A stored OTLP metric asked for by a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery<'a> {
    pub name: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
    pub aggregation: Aggregation,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

/// The evaluator's view of the data. Errors are messages the Alerts page shows.
pub trait AlertSource: Send + Sync {
    /// Spans matching span rule `rule` (an index of the rule set) that ended in `[start, end)`.
    fn span_count(&self, rule: usize, start_unix_nanos: u64, end_unix_nanos: u64) -> u64;
    /// The most recent traces with a span matching span rule `rule`, newest first.
    fn recent_traces(&self, rule: usize) -> Vec<(TraceId, u64)>;
    /// RED of a service's entry spans (or of one operation of it, whatever its kind).
    fn red(
        &self,
        service: &str,
        operation: Option<&str>,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<RedWindow, String>;
    /// Traces judged (whole, incomplete) that started in the window.
    fn integrity(&self, start_unix_nanos: u64, end_unix_nanos: u64) -> Result<(u64, u64), String>;
    /// One value of a stored OTLP metric in the window; `None` when it has no data there.
    fn otlp_metric(&self, query: &MetricQuery<'_>) -> Result<Option<f64>, String>;
}

/// The store's answers, with span counts from the ingest tap.
pub struct StoreSource {
    reader: Arc<dyn TraceReader>,
    tap: Arc<SpanTap>,
}

impl std::fmt::Debug for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSource").finish_non_exhaustive()
    }
}

impl StoreSource {
    pub fn new(reader: Arc<dyn TraceReader>, tap: Arc<SpanTap>) -> Self {
        Self { reader, tap }
    }
}

impl AlertSource for StoreSource {
    fn span_count(&self, rule: usize, start: u64, end: u64) -> u64 {
        self.tap.count(rule, start, end)
    }

    fn recent_traces(&self, rule: usize) -> Vec<(TraceId, u64)> {
        self.tap.recent(rule)
    }

    fn red(
        &self,
        service: &str,
        operation: Option<&str>,
        start: u64,
        end: u64,
    ) -> Result<RedWindow, String> {
        let scope = operation.map_or(RedScope::Entry, RedScope::Operation);
        let points = self
            .reader
            .red_series(service, scope, start, end, end.saturating_sub(start).max(1))
            .map_err(|e| format!("span metrics: {e}"))?;
        let mut out = RedWindow::default();
        for p in points {
            out.calls += p.calls;
            out.errors += p.errors;
            out.latency.merge(&p.latency);
        }
        Ok(out)
    }

    fn integrity(&self, start: u64, end: u64) -> Result<(u64, u64), String> {
        let points = self
            .reader
            .integrity_series(start, end, end.saturating_sub(start).max(1))
            .map_err(|e| format!("trace integrity: {e}"))?;
        Ok(points
            .iter()
            .fold((0, 0), |(w, i), p| (w + p.whole, i + p.incomplete)))
    }

    fn otlp_metric(&self, query: &MetricQuery<'_>) -> Result<Option<f64>, String> {
        // The store keeps OTLP metric exports raw; until it answers metric queries, such a
        // rule says so on the page instead of guessing.
        Err(format!(
            "stored OTLP metrics cannot be queried yet ({} not evaluated)",
            query.name
        ))
    }
}
