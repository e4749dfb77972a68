//! Span rules counted at ingest: [`TappedSink`] wraps the store's [`SpanSink`] and, for every
//! export the store accepted, adds each span that matches a span rule's filter to that rule's
//! per-second counts (by the span's end time). A round of evaluation then reads sums of a few
//! hundred integers per rule instead of scanning stored spans.
//!
//! Counts live in memory and cover each rule's window: after a restart a span rule sees only
//! spans that arrived since (the store's own span metrics, which metric rules read, persist).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use throughline_store::encoded::{EncodedSpan, LiteValue};
use throughline_store::{
    EncodedTraces, ExportLogsServiceRequest, ExportMetricsServiceRequest,
    ExportTraceServiceRequest, KeyValue, SpanSink, StoreError, TraceId, WriteReport,
    service_name_of,
};

use crate::rules::{Condition, Literal, Op, Predicate, RuleSet, SECOND_NANOS, SpanFilter};

/// How many recent matching traces a span rule remembers, for the page's links.
pub const RECENT_TRACES: usize = 10;

#[derive(Debug, Default)]
struct Counter {
    /// Span end second → matching spans.
    seconds: BTreeMap<u64, u64>,
    keep_secs: u64,
    /// Most recent last: (trace, span end).
    recent: VecDeque<(TraceId, u64)>,
}

/// The span rules' filters and their counts.
#[derive(Debug)]
pub struct SpanTap {
    /// (rule index, filter) of every span rule.
    filters: Vec<(usize, SpanFilter)>,
    /// Filter positions by the service they name; `any_service` for those that name none.
    by_service: HashMap<String, Vec<usize>>,
    any_service: Vec<usize>,
    /// Rule index → filter position.
    of_rule: HashMap<usize, usize>,
    counters: Mutex<Vec<Counter>>,
}

/// What one export matched: (filter position, span end in nanoseconds, trace).
#[derive(Debug, Default, PartialEq)]
pub struct Hits(Vec<(usize, u64, TraceId)>);

impl Hits {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl SpanTap {
    /// A tap for every span rule of `rules`.
    pub fn new(rules: &RuleSet) -> Self {
        let mut filters = Vec::new();
        let mut counters = Vec::new();
        for (i, rule) in rules.rules.iter().enumerate() {
            if let Condition::Spans {
                filter,
                window_nanos,
            } = &rule.condition
            {
                filters.push((i, filter.clone()));
                counters.push(Counter {
                    keep_secs: window_nanos.div_ceil(SECOND_NANOS) + 2,
                    ..Counter::default()
                });
            }
        }
        let mut by_service: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_service = Vec::new();
        let mut of_rule = HashMap::new();
        for (pos, (rule, f)) in filters.iter().enumerate() {
            of_rule.insert(*rule, pos);
            match &f.service {
                Some(s) => by_service.entry(s.clone()).or_default().push(pos),
                None => any_service.push(pos),
            }
        }
        Self {
            filters,
            by_service,
            any_service,
            of_rule,
            counters: Mutex::new(counters),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Counter>> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The spans of `request` that match a span rule (nothing is counted yet).
    pub fn observe(&self, request: &ExportTraceServiceRequest) -> Hits {
        let mut hits = Vec::new();
        if self.filters.is_empty() {
            return Hits(hits);
        }
        for rs in &request.resource_spans {
            let Some((named, resource_attrs)) = self.filters_of(rs.resource.as_ref()) else {
                continue;
            };
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                for &pos in named.iter().chain(&self.any_service) {
                    if matches(&self.filters[pos].1, span, resource_attrs) {
                        hits.push((pos, span.end_time_unix_nano, trace_of(&span.trace_id)));
                    }
                }
            }
        }
        Hits(hits)
    }

    /// [`observe`](Self::observe) for an export read in place.
    pub fn observe_encoded(&self, traces: &EncodedTraces) -> Hits {
        let mut hits = Vec::new();
        if self.filters.is_empty() {
            return Hits(hits);
        }
        for resource in traces.resources() {
            let Some((named, resource_attrs)) = self.filters_of(resource.resource.as_ref()) else {
                continue;
            };
            for span in resource.scopes.iter().flat_map(|s| &s.spans) {
                for &pos in named.iter().chain(&self.any_service) {
                    if matches_lite(&self.filters[pos].1, span, resource_attrs) {
                        let end = span.view.end_time_unix_nano;
                        hits.push((pos, end, trace_of(span.trace_id())));
                    }
                }
            }
        }
        Hits(hits)
    }

    /// The positions of the filters naming a resource's service, and its attributes; `None`
    /// when no filter can match its spans.
    fn filters_of<'a>(
        &'a self,
        resource: Option<&'a throughline_store::Resource>,
    ) -> Option<(&'a [usize], &'a [KeyValue])> {
        let resource_attrs = resource.map_or(&[][..], |r| &r.attributes[..]);
        let service = resource.map_or(throughline_store::UNKNOWN_SERVICE, service_name_of);
        let named = self.by_service.get(service).map_or(&[][..], Vec::as_slice);
        if named.is_empty() && self.any_service.is_empty() {
            return None;
        }
        Some((named, resource_attrs))
    }

    /// Counts what [`observe`](Self::observe) found, once the store has kept it; spans that end
    /// after `now` count as ending now, those older than their rule's window are dropped.
    pub fn commit(&self, hits: Hits, now_unix_nanos: u64) {
        if hits.0.is_empty() {
            return;
        }
        let now_sec = now_unix_nanos / SECOND_NANOS;
        let mut counters = self.lock();
        for (pos, end, trace) in hits.0 {
            let Some(c) = counters.get_mut(pos) else {
                continue;
            };
            let end = end.min(now_unix_nanos);
            let sec = end / SECOND_NANOS;
            if sec + c.keep_secs < now_sec {
                continue;
            }
            *c.seconds.entry(sec).or_default() += 1;
            if !c.recent.iter().any(|(t, _)| *t == trace) {
                if c.recent.len() == RECENT_TRACES {
                    c.recent.pop_front();
                }
                c.recent.push_back((trace, end));
            }
        }
        for c in counters.iter_mut() {
            let cutoff = now_sec.saturating_sub(c.keep_secs);
            if c.seconds
                .first_key_value()
                .is_some_and(|(s, _)| *s < cutoff)
            {
                c.seconds = c.seconds.split_off(&cutoff);
            }
        }
    }

    /// Matching spans of `rule` that ended in `[start, end)` (to the second).
    pub fn count(&self, rule: usize, start_unix_nanos: u64, end_unix_nanos: u64) -> u64 {
        let Some(&pos) = self.of_rule.get(&rule) else {
            return 0;
        };
        let counters = self.lock();
        let (from, to) = (
            start_unix_nanos.div_ceil(SECOND_NANOS),
            end_unix_nanos.div_ceil(SECOND_NANOS),
        );
        if from >= to {
            return 0;
        }
        counters[pos].seconds.range(from..to).map(|(_, n)| n).sum()
    }

    /// The most recent traces with a span matching `rule`, newest first.
    pub fn recent(&self, rule: usize) -> Vec<(TraceId, u64)> {
        let Some(&pos) = self.of_rule.get(&rule) else {
            return Vec::new();
        };
        self.lock()[pos].recent.iter().rev().copied().collect()
    }
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The trace id of a span, zero when it is not 16 bytes.
fn trace_of(bytes: &[u8]) -> TraceId {
    let mut id = [0u8; 16];
    if bytes.len() == 16 {
        id.copy_from_slice(bytes);
    }
    TraceId(id)
}

/// Whether `span` (under a resource with `resource_attrs`) passes `filter`.
pub fn matches(
    filter: &SpanFilter,
    span: &throughline_store::Span,
    resource_attrs: &[KeyValue],
) -> bool {
    let status = span.status.as_ref().map_or(0, |s| s.code);
    passes(filter, &span.name, span.kind, status, |key| {
        span.attributes
            .iter()
            .chain(resource_attrs)
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(Cow::Borrowed)
    })
}

/// [`matches`] for a span read in place.
pub fn matches_lite(filter: &SpanFilter, span: &EncodedSpan, resource_attrs: &[KeyValue]) -> bool {
    let view = &span.view;
    let status = view.status.as_ref().map_or(0, |s| s.code);
    let attributes = span.attributes();
    passes(filter, span.name(), view.kind, status, |key| {
        match attributes.find(key) {
            Some(kv) => kv.value.as_ref()?.value.as_ref().map(|v| {
                Cow::Owned(match v {
                    LiteValue::StringValue(s) => {
                        AnyValueKind::StringValue(attributes.text(*s).to_owned())
                    }
                    LiteValue::BoolValue(b) => AnyValueKind::BoolValue(*b),
                    LiteValue::IntValue(i) => AnyValueKind::IntValue(*i),
                    LiteValue::DoubleValue(d) => AnyValueKind::DoubleValue(*d),
                    // Arrays, maps and bytes equal no literal and order with none: any of
                    // them stands for all.
                    _ => AnyValueKind::BytesValue(Vec::new()),
                })
            }),
            None => resource_attrs
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.as_ref())
                .map(Cow::Borrowed),
        }
    })
}

/// Whether a span of `name`, `kind` and `status`, whose attribute values `value` finds
/// (the span's before its resource's), passes `filter`.
fn passes<'a>(
    filter: &SpanFilter,
    name: &str,
    kind: i32,
    status: i32,
    value: impl Fn(&str) -> Option<Cow<'a, AnyValueKind>>,
) -> bool {
    if filter.operation.as_deref().is_some_and(|o| o != name) {
        return false;
    }
    if filter.kind.is_some_and(|k| k != kind) {
        return false;
    }
    if filter.status.is_some_and(|want| want != status) {
        return false;
    }
    filter
        .predicates
        .iter()
        .all(|p| predicate_holds(p, value(&p.key).as_deref()))
}

fn predicate_holds(p: &Predicate, value: Option<&AnyValueKind>) -> bool {
    let Some(value) = value else {
        // A missing attribute differs from every value and compares with none.
        return p.op == Op::Ne;
    };
    let number = match value {
        AnyValueKind::IntValue(i) => Some(*i as f64),
        AnyValueKind::DoubleValue(d) => Some(*d),
        AnyValueKind::StringValue(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let equal = match (&p.value, value) {
        (Literal::Bool(b), AnyValueKind::BoolValue(v)) => b == v,
        (Literal::Bool(b), AnyValueKind::StringValue(s)) => s == if *b { "true" } else { "false" },
        (Literal::Number(n), _) => number == Some(*n),
        (Literal::Str(s), AnyValueKind::StringValue(v)) => s == v,
        (Literal::Str(s), AnyValueKind::BoolValue(v)) => s == if *v { "true" } else { "false" },
        (Literal::Str(s), AnyValueKind::IntValue(v)) => *s == v.to_string(),
        _ => false,
    };
    let ordered = |f: fn(f64, f64) -> bool| match (&p.value, number) {
        (Literal::Number(n), Some(v)) => f(v, *n),
        _ => false,
    };
    match p.op {
        Op::Eq => equal,
        Op::Ne => !equal,
        Op::Gt => ordered(|v, n| v > n),
        Op::Ge => ordered(|v, n| v >= n),
        Op::Lt => ordered(|v, n| v < n),
        Op::Le => ordered(|v, n| v <= n),
    }
}

/// The store's sink with the span rules' tap in front: what the store accepted is counted.
pub struct TappedSink {
    inner: Arc<dyn SpanSink>,
    tap: Arc<SpanTap>,
}

impl std::fmt::Debug for TappedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TappedSink")
            .field("tap", &self.tap)
            .finish()
    }
}

impl TappedSink {
    pub fn new(inner: Arc<dyn SpanSink>, tap: Arc<SpanTap>) -> Self {
        Self { inner, tap }
    }
}

impl SpanSink for TappedSink {
    fn write_traces(&self, request: ExportTraceServiceRequest) -> Result<WriteReport, StoreError> {
        let hits = self.tap.observe(&request);
        let report = self.inner.write_traces(request)?;
        // Counted only once the store kept the export (a refused one is retried by the client
        // and would count twice); on a partial success the few spans the store refused by its
        // limits may still be counted.
        self.tap.commit(hits, now_unix_nanos());
        Ok(report)
    }

    fn write_encoded_traces(&self, traces: EncodedTraces) -> Result<WriteReport, StoreError> {
        let hits = self.tap.observe_encoded(&traces);
        let report = self.inner.write_encoded_traces(traces)?;
        self.tap.commit(hits, now_unix_nanos());
        Ok(report)
    }

    fn write_logs(&self, request: ExportLogsServiceRequest) -> Result<u64, StoreError> {
        self.inner.write_logs(request)
    }

    fn write_metrics(&self, request: ExportMetricsServiceRequest) -> Result<u64, StoreError> {
        self.inner.write_metrics(request)
    }
}
