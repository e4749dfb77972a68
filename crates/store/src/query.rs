//! The read side: traces by id, searches, and the derived figures.

use std::collections::HashMap;

use crate::StoreError;
use crate::api::*;
use crate::block::decode_span;
use crate::database::{DatabaseQuery, DatabaseReport};
use crate::errors::{ErrorGroup, ErrorQuery};
use crate::facts::{span_u64, value_string};
use crate::integrity::integrity_of;
use crate::store::{Store, block_refs_in, now_nanos, stats_of, trace_of};

/// Results when a query asks for none (Jaeger's default).
pub const DEFAULT_LIMIT: usize = 20;
/// The most buckets a time series answers with.
pub const MAX_BUCKETS: u64 = 10_000;

fn check_range(start: u64, end: u64) -> Result<(), StoreError> {
    if start > end {
        return Err(StoreError::InvalidQuery(format!(
            "start ({start}) is after end ({end})"
        )));
    }
    Ok(())
}

fn check_step(start: u64, end: u64, step: u64) -> Result<(), StoreError> {
    check_range(start, end)?;
    if step == 0 {
        return Err(StoreError::InvalidQuery(
            "step must be greater than zero".into(),
        ));
    }
    if (end - start) / step > MAX_BUCKETS {
        return Err(StoreError::InvalidQuery(format!(
            "step {step} gives more than {MAX_BUCKETS} buckets"
        )));
    }
    Ok(())
}

fn attr_matches(attributes: &[KeyValue], key: &str, value: &str) -> bool {
    attributes.iter().any(|kv| {
        kv.key == key
            && kv
                .value
                .as_ref()
                .and_then(value_string)
                .is_some_and(|v| v == value)
    })
}

/// Whether one span meets every span-level condition of a query.
fn span_matches(query: &TraceQuery, span: &Span, resource: &dyn Fn() -> Option<Resource>) -> bool {
    let start = span.start_time_unix_nano;
    if start < query.start_unix_nanos || start > query.end_unix_nanos {
        return false;
    }
    if query.operation.as_ref().is_some_and(|op| *op != span.name) {
        return false;
    }
    let duration = span.end_time_unix_nano.saturating_sub(start);
    if query.min_duration_nanos.is_some_and(|min| duration < min)
        || query.max_duration_nanos.is_some_and(|max| duration > max)
    {
        return false;
    }
    let is_error = span.status.as_ref().is_some_and(|s| {
        s.code == opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32
    });
    if query.errors_only && !is_error {
        return false;
    }
    if query.tags.is_empty() {
        return true;
    }
    let mut resource_cache: Option<Option<Resource>> = None;
    query.tags.iter().all(|(k, v)| {
        if k == "error" {
            return (v == "true") == is_error;
        }
        if attr_matches(&span.attributes, k, v) {
            return true;
        }
        let res = resource_cache.get_or_insert_with(resource);
        res.as_ref()
            .is_some_and(|r| attr_matches(&r.attributes, k, v))
    })
}

/// A summary of a trace from all its spans; `settling` says the trace may still grow (then its
/// integrity is [`TraceIntegrity::Settling`] whatever the spans show). Public so that a reader
/// judging a trace it asked for by id (the collector's integrity endpoint) uses the same rules.
pub fn summarize_trace(trace_id: TraceId, spans: &[StoredSpan], settling: bool) -> TraceSummary {
    let root = spans.iter().find(|s| s.span.parent_span_id.is_empty());
    let mut services: Vec<String> = Vec::new();
    for s in spans {
        if !services.contains(&s.service_name) {
            services.push(s.service_name.clone());
        }
    }
    let start = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.span.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    let ids: Vec<(u64, u64)> = spans
        .iter()
        .map(|s| (span_u64(&s.span.span_id), span_u64(&s.span.parent_span_id)))
        .collect();
    TraceSummary {
        trace_id,
        root_service: root.map(|r| r.service_name.clone()),
        root_name: root.map(|r| r.span.name.clone()),
        services,
        span_count: spans.len() as u64,
        start_unix_nanos: start,
        duration_nanos: end.saturating_sub(start),
        has_error: spans.iter().any(|s| {
            s.span.status.as_ref().is_some_and(|st| {
                st.code == opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32
            })
        }),
        first_error: crate::errors::error_spans(spans).into_iter().next(),
        integrity: integrity_of(&ids, settling),
    }
}

impl Store {
    /// The summary of one trace, `None` when the store holds none of it.
    pub fn trace_summary(&self, trace_id: TraceId) -> Result<Option<TraceSummary>, StoreError> {
        let (spans, _, last_arrival) = self.load_trace(trace_id)?;
        if spans.is_empty() {
            return Ok(None);
        }
        let settling = last_arrival.saturating_add(self.settle_nanos()) > now_nanos();
        Ok(Some(summarize_trace(trace_id, &spans, settling)))
    }

    /// Whether a stored trace has a span matching the query's span-level conditions.
    fn trace_has_match(&self, query: &TraceQuery, spans: &[StoredSpan]) -> bool {
        spans.iter().any(|s| {
            query
                .service
                .as_ref()
                .is_none_or(|svc| *svc == s.service_name)
                && span_matches(query, &s.span, &|| Some(s.resource.clone()))
        })
    }

    fn find_incomplete(
        &self,
        query: &TraceQuery,
        limit: usize,
    ) -> Result<Vec<TraceSummary>, StoreError> {
        self.maintain()?;
        // Broken traces are few: read each, newest first, and keep those with a matching span.
        let candidates: Vec<u128> = self
            .lock()
            .derived
            .integrity
            .incomplete_newest_first(0, query.end_unix_nanos)
            .collect();
        let mut out = Vec::new();
        for trace in candidates {
            let id = trace_of(trace);
            let (spans, _, last_arrival) = self.load_trace(id)?;
            if spans.is_empty() || !self.trace_has_match(query, &spans) {
                continue;
            }
            let settling = last_arrival.saturating_add(self.settle_nanos()) > now_nanos();
            let summary = summarize_trace(id, &spans, settling);
            if matches!(summary.integrity, TraceIntegrity::Incomplete(_)) {
                out.push(summary);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

impl TraceReader for Store {
    fn trace(&self, trace_id: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
        Ok(self.load_trace(trace_id)?.0)
    }

    fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().derived.metrics.services())
    }

    fn operations(&self, service: &str) -> Result<Vec<Operation>, StoreError> {
        Ok(self.lock().derived.metrics.operations(service))
    }

    fn findings(&self, query: &FindingQuery) -> Result<Vec<Finding>, StoreError> {
        check_range(query.start_unix_nanos, query.end_unix_nanos)?;
        // Traces that settled since the last write are examined first.
        self.maintain()?;
        Ok(self.lock().derived.findings.list(query))
    }

    fn database(&self, query: &DatabaseQuery) -> Result<DatabaseReport, StoreError> {
        check_range(query.start_unix_nanos, query.end_unix_nanos)?;
        self.database_report(query)
    }

    fn errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorGroup>, StoreError> {
        check_range(query.start_unix_nanos, query.end_unix_nanos)?;
        self.error_groups(query)
    }

    fn metric_series(
        &self,
        query: &crate::MetricQuery,
    ) -> Result<Vec<crate::MetricSeries>, StoreError> {
        check_range(query.start_unix_nanos, query.end_unix_nanos)?;
        Store::metric_series(self, query)
    }

    fn metric_names(&self, service: Option<&str>) -> Result<Vec<String>, StoreError> {
        Ok(Store::metric_names(self, service))
    }

    fn find_traces(&self, query: &TraceQuery) -> Result<Vec<TraceSummary>, StoreError> {
        check_range(query.start_unix_nanos, query.end_unix_nanos)?;
        let limit = if query.limit == 0 {
            DEFAULT_LIMIT
        } else {
            query.limit
        };
        if query.incomplete_only {
            return self.find_incomplete(query, limit);
        }
        let mut refs = {
            let inner = self.lock();
            let service = match &query.service {
                Some(name) => match inner.service_id(name) {
                    Some(id) => Some(id),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            block_refs_in(
                &inner,
                query.start_unix_nanos,
                query.end_unix_nanos,
                service,
            )
        };
        refs.sort_by_key(|r| std::cmp::Reverse(r.max_start));
        // trace → latest start of a matching span
        let mut found: HashMap<[u8; 16], u64> = HashMap::new();
        for r in &refs {
            if found.len() >= limit {
                let mut starts: Vec<u64> = found.values().copied().collect();
                starts.sort_unstable_by(|a, b| b.cmp(a));
                if r.max_start < starts[limit - 1] {
                    break;
                }
            }
            let body = self.body(r)?;
            let wanted_groups: Vec<bool> = body
                .groups
                .iter()
                .map(|g| query.service.as_ref().is_none_or(|s| *s == g.service))
                .collect();
            for entry in body.entries() {
                if !wanted_groups
                    .get(entry.group as usize)
                    .copied()
                    .unwrap_or(false)
                {
                    continue;
                }
                let Ok(span) = decode_span(&entry) else {
                    continue;
                };
                if span_matches(query, &span, &|| body.resource(entry.group).ok()) {
                    let start = found.entry(entry.trace_id).or_insert(0);
                    *start = (*start).max(span.start_time_unix_nano);
                }
            }
        }
        let mut ordered: Vec<([u8; 16], u64)> = found.into_iter().collect();
        ordered.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ordered.truncate(limit);
        let mut out = Vec::with_capacity(ordered.len());
        for (id, _) in ordered {
            if let Some(summary) = self.trace_summary(TraceId(id))? {
                out.push(summary);
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.start_unix_nanos));
        Ok(out)
    }

    fn dependencies(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<Vec<ServiceGraphEdge>, StoreError> {
        check_range(start_unix_nanos, end_unix_nanos)?;
        Ok(self
            .lock()
            .derived
            .graph
            .dependencies(start_unix_nanos, end_unix_nanos))
    }

    fn span_metrics(&self) -> Result<Vec<SpanMetricsSeries>, StoreError> {
        Ok(self.lock().derived.metrics.span_metrics())
    }

    fn red_series(
        &self,
        service: &str,
        scope: RedScope<'_>,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
        step_nanos: u64,
    ) -> Result<Vec<RedPoint>, StoreError> {
        check_step(start_unix_nanos, end_unix_nanos, step_nanos)?;
        Ok(self.lock().derived.metrics.red_series(
            service,
            scope,
            start_unix_nanos,
            end_unix_nanos,
            step_nanos,
        ))
    }

    fn integrity_series(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
        step_nanos: u64,
    ) -> Result<Vec<IntegrityPoint>, StoreError> {
        check_step(start_unix_nanos, end_unix_nanos, step_nanos)?;
        // Judge what has settled since the last write, so an idle store answers up to date.
        self.maintain()?;
        Ok(self
            .lock()
            .derived
            .integrity
            .series(start_unix_nanos, end_unix_nanos, step_nanos))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(stats_of(&self.lock()))
    }
}
