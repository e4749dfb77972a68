//! Span metrics derived at ingest: cumulative RED per series and per-minute RED for charts.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::api::{
    LATENCY_BUCKETS_MS, LatencyHistogram, Operation, RedPoint, RedScope, SpanKind,
    SpanMetricsSeries,
};
use crate::facts::{NameHash, SpanFacts};

/// Nanoseconds in a minute, the resolution of every time series the store keeps.
pub const MINUTE_NANOS: u64 = 60_000_000_000;

pub fn minute_of(unix_nanos: u64) -> u64 {
    unix_nanos - unix_nanos % MINUTE_NANOS
}

/// A latency histogram over [`LATENCY_BUCKETS_MS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hist {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_ms: f64,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            buckets: vec![0; LATENCY_BUCKETS_MS.len() + 1],
            count: 0,
            sum_ms: 0.0,
        }
    }
}

impl Hist {
    pub fn record(&mut self, duration_nanos: u64) {
        let ms = duration_nanos as f64 / 1e6;
        let i = LATENCY_BUCKETS_MS.partition_point(|b| *b < ms);
        if let Some(slot) = self.buckets.get_mut(i) {
            *slot += 1;
        }
        self.count += 1;
        self.sum_ms += ms;
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
    }

    pub fn to_api(&self) -> LatencyHistogram {
        LatencyHistogram {
            bucket_counts: self.buckets.clone(),
            count: self.count,
            sum_ms: self.sum_ms,
        }
    }
}

/// RED figures of one minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedAgg {
    pub calls: u64,
    pub errors: u64,
    pub latency: Hist,
}

impl RedAgg {
    pub fn merge(&mut self, other: &RedAgg) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// Everything kept for one (service, span name, span kind).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// Cumulative histograms by status code (unset, ok, error).
    pub by_status: [Hist; 3],
    /// Per-minute RED, keyed by minute start.
    pub red: BTreeMap<u64, RedAgg>,
}

/// One service's series: span name → (kind, state).
pub type OperationSeries = HashMap<String, Vec<(i32, SeriesState)>, NameHash>;

/// Span metrics of every series: service → span name → (kind, state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanMetrics {
    pub series: HashMap<String, OperationSeries, NameHash>,
}

fn status_label(code: usize) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

impl SpanMetrics {
    pub fn record(&mut self, f: &SpanFacts) {
        let ops = match self.series.get_mut(&*f.service) {
            Some(ops) => ops,
            None => self.series.entry(f.service.to_string()).or_default(),
        };
        let kinds = match ops.get_mut(&f.name) {
            Some(k) => k,
            None => ops.entry(f.name.clone()).or_default(),
        };
        let state = match kinds.iter().position(|(k, _)| *k == f.kind) {
            Some(i) => &mut kinds[i].1,
            None => {
                kinds.push((f.kind, SeriesState::default()));
                let last = kinds.len() - 1;
                &mut kinds[last].1
            }
        };
        let status = (f.status_code.clamp(0, 2)) as usize;
        let duration = f.duration_nanos();
        state.by_status[status].record(duration);
        let red = state.red.entry(minute_of(f.start_unix_nanos)).or_default();
        red.calls += 1;
        if f.is_error() {
            red.errors += 1;
        }
        red.latency.record(duration);
    }

    pub fn services(&self) -> Vec<String> {
        let mut out: Vec<String> = self.series.keys().cloned().collect();
        out.sort();
        out
    }

    pub fn operations(&self, service: &str) -> Vec<Operation> {
        let mut out = Vec::new();
        if let Some(ops) = self.series.get(service) {
            for (name, kinds) in ops {
                for (kind, _) in kinds {
                    out.push(Operation {
                        name: name.clone(),
                        span_kind: SpanKind::try_from(*kind).unwrap_or(SpanKind::Unspecified),
                    });
                }
            }
        }
        out.sort();
        out
    }

    pub fn span_metrics(&self) -> Vec<SpanMetricsSeries> {
        let mut out = Vec::new();
        for (service, ops) in &self.series {
            for (name, kinds) in ops {
                for (kind, state) in kinds {
                    for (code, hist) in state.by_status.iter().enumerate() {
                        if hist.count == 0 {
                            continue;
                        }
                        out.push(SpanMetricsSeries {
                            service: service.clone(),
                            span_name: name.clone(),
                            span_kind: SpanKind::try_from(*kind).unwrap_or(SpanKind::Unspecified),
                            status_code: status_label(code),
                            calls: hist.count,
                            latency: hist.to_api(),
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.service, &a.span_name, a.span_kind as i32, a.status_code).cmp(&(
                &b.service,
                &b.span_name,
                b.span_kind as i32,
                b.status_code,
            ))
        });
        out
    }

    /// RED of a service (its entry spans, its outgoing calls, or one operation) in buckets of
    /// `step` from `start`.
    pub fn red_series(
        &self,
        service: &str,
        scope: RedScope<'_>,
        start: u64,
        end: u64,
        step: u64,
    ) -> Vec<RedPoint> {
        let buckets = bucket_starts(start, end, step);
        let mut aggs = vec![RedAgg::default(); buckets.len()];
        if let Some(ops) = self.series.get(service) {
            let in_scope = |name: &str, kind: i32| match scope {
                RedScope::Entry => {
                    kind == SpanKind::Server as i32 || kind == SpanKind::Consumer as i32
                }
                RedScope::Outgoing => {
                    kind == SpanKind::Client as i32 || kind == SpanKind::Producer as i32
                }
                RedScope::Operation(o) => o == name,
            };
            for (name, kinds) in ops {
                for (_, state) in kinds.iter().filter(|(k, _)| in_scope(name, *k)) {
                    for (minute, agg) in state.red.range(minute_of(start)..end) {
                        if let Some(i) = bucket_index(*minute, start, step, buckets.len()) {
                            aggs[i].merge(agg);
                        }
                    }
                }
            }
        }
        buckets
            .into_iter()
            .zip(aggs)
            .map(|(b, a)| RedPoint {
                bucket_start_unix_nanos: b,
                calls: a.calls,
                errors: a.errors,
                latency: a.latency.to_api(),
            })
            .collect()
    }

    /// Forgets per-minute figures older than `cutoff` (cumulative counters stay).
    pub fn prune(&mut self, cutoff: u64) {
        for ops in self.series.values_mut() {
            for kinds in ops.values_mut() {
                for (_, state) in kinds.iter_mut() {
                    state.red = state.red.split_off(&minute_of(cutoff));
                }
            }
        }
    }
}

/// The start of every bucket of `step` nanoseconds from `start` up to `end`.
pub fn bucket_starts(start: u64, end: u64, step: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut t = start;
    while t < end && step > 0 {
        out.push(t);
        t = t.saturating_add(step);
    }
    out
}

/// Which bucket a minute falls in; a minute that starts before `start` but overlaps it goes to
/// the first bucket.
pub fn bucket_index(minute: u64, start: u64, step: u64, n: usize) -> Option<usize> {
    let i = (minute.saturating_sub(start) / step) as usize;
    (i < n).then_some(i)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn facts(name: &str, kind: SpanKind, status: i32, start: u64, duration_ms: u64) -> SpanFacts {
        SpanFacts {
            trace_id: 1,
            span_id: 1,
            parent_span_id: 0,
            service: Arc::from("api"),
            name: name.into(),
            kind: kind as i32,
            status_code: status,
            start_unix_nanos: start,
            end_unix_nanos: start + duration_ms * 1_000_000,
            links: Vec::new(),
            peer: None,
            pattern: None,
        }
    }

    #[test]
    fn histogram_buckets_are_upper_inclusive() {
        let mut h = Hist::default();
        for ms in [0, 2, 3, 10, 16_000] {
            h.record(ms * 1_000_000);
        }
        assert_eq!(h.buckets[0], 2, "0 and 2 ms are in (.., 2]");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[4], 1, "10 ms is in (8, 10]");
        assert_eq!(h.buckets[LATENCY_BUCKETS_MS.len()], 1, "overflow");
        assert_eq!(h.count, 5);
        assert!((h.sum_ms - 16_015.0).abs() < 1e-9);
    }

    #[test]
    fn series_split_by_name_kind_and_status() {
        let mut m = SpanMetrics::default();
        m.record(&facts("GET /", SpanKind::Server, 0, 0, 5));
        m.record(&facts("GET /", SpanKind::Server, 2, 0, 5));
        m.record(&facts("GET /", SpanKind::Server, 2, MINUTE_NANOS, 5));
        m.record(&facts("GET /", SpanKind::Client, 1, 0, 5));
        let series: Vec<(String, SpanKind, &str, u64)> = m
            .span_metrics()
            .into_iter()
            .map(|s| (s.span_name, s.span_kind, s.status_code, s.calls))
            .collect();
        assert_eq!(
            series,
            vec![
                ("GET /".into(), SpanKind::Server, "STATUS_CODE_ERROR", 2),
                ("GET /".into(), SpanKind::Server, "STATUS_CODE_UNSET", 1),
                ("GET /".into(), SpanKind::Client, "STATUS_CODE_OK", 1),
            ]
        );
        assert_eq!(m.operations("api").len(), 2);
        let red = m.red_series(
            "api",
            RedScope::Operation("GET /"),
            0,
            3 * MINUTE_NANOS,
            MINUTE_NANOS,
        );
        let figures: Vec<(u64, u64)> = red.iter().map(|p| (p.calls, p.errors)).collect();
        assert_eq!(figures, vec![(3, 1), (1, 1), (0, 0)]);
        // The service's calls are its 3 SERVER spans; the CLIENT span is an outgoing call.
        let wide = m.red_series(
            "api",
            RedScope::Entry,
            0,
            3 * MINUTE_NANOS,
            3 * MINUTE_NANOS,
        );
        assert_eq!((wide.len(), wide[0].calls, wide[0].errors), (1, 3, 2));
        let out = m.red_series(
            "api",
            RedScope::Outgoing,
            0,
            3 * MINUTE_NANOS,
            3 * MINUTE_NANOS,
        );
        assert_eq!((out[0].calls, out[0].errors), (1, 0));
        m.prune(MINUTE_NANOS);
        assert_eq!(
            m.red_series("api", RedScope::Entry, 0, MINUTE_NANOS, MINUTE_NANOS)[0].calls,
            0
        );
        assert_eq!(
            m.span_metrics().iter().map(|s| s.calls).sum::<u64>(),
            4,
            "counters never shrink"
        );
    }
}
