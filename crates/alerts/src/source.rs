//! What the evaluator reads, behind [`AlertSource`]: span-rule counts, RED figures of the span
//! metrics, trace integrity and stored OTLP metrics. [`StoreSource`] answers from the store (its
//! span metrics, integrity series and metric index) and the ingest [`SpanTap`]; tests give their
//! own.

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
    /// Only the series of this service (`service.name` of the resource).
    pub service: Option<&'a str>,
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

    /// From the store's metric index, in 60 buckets over the window: `last` is the largest
    /// of each series' window figure (a counter's increase, a gauge's last value), `sum` their
    /// sum, `max`/`min`/`avg` over every bucket of every series.
    fn otlp_metric(&self, query: &MetricQuery<'_>) -> Result<Option<f64>, String> {
        let window = query.end_unix_nanos.saturating_sub(query.start_unix_nanos);
        let series = self
            .reader
            .metric_series(&throughline_store::MetricQuery {
                name: query.name.to_owned(),
                service: query.service.map(str::to_owned),
                attributes: query
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                start_unix_nanos: query.start_unix_nanos,
                end_unix_nanos: query.end_unix_nanos,
                step_nanos: (window / 60).max(1_000_000_000),
            })
            .map_err(|e| format!("stored metric {}: {e}", query.name))?;
        let totals = series.iter().map(|s| s.total.value);
        let points: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.value))
            .collect();
        let fold = |values: &mut dyn Iterator<Item = f64>, f: fn(f64, f64) -> f64| values.reduce(f);
        Ok(match query.aggregation {
            Aggregation::Last => fold(&mut totals.clone(), f64::max),
            Aggregation::Sum => fold(&mut totals.clone(), |a, b| a + b),
            Aggregation::Max => fold(&mut points.iter().copied(), f64::max),
            Aggregation::Min => fold(&mut points.iter().copied(), f64::min),
            Aggregation::Avg => {
                (!points.is_empty()).then(|| points.iter().sum::<f64>() / points.len() as f64)
            }
        })
    }
}
