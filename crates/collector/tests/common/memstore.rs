//! An in-memory stand-in for the store (until the durable one is merged), implementing just
//! enough of the contract for the collector's tests.

use std::sync::Mutex;

use throughline_store::*;

#[derive(Debug, Default)]
pub struct MemStore {
    spans: Mutex<Vec<StoredSpan>>,
}

impl MemStore {
    pub fn open(_dir: &std::path::Path) -> Self {
        Self::default()
    }
}

fn service_of(resource: &Resource) -> String {
    resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown_service".into())
}

impl SpanSink for MemStore {
    fn write_traces(&self, request: ExportTraceServiceRequest) -> Result<WriteReport, StoreError> {
        let mut report = WriteReport::default();
        let mut spans = self.spans.lock().unwrap();
        for rs in request.resource_spans {
            let resource = rs.resource.unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    if span.trace_id.len() != 16 || span.span_id.len() != 8 {
                        report.rejected_spans += 1;
                        report.rejection_reason = "span with an invalid trace or span id".into();
                        continue;
                    }
                    report.accepted_spans += 1;
                    spans.push(StoredSpan {
                        service_name: service_of(&resource),
                        resource: resource.clone(),
                        scope: ss.scope.clone(),
                        span,
                    });
                }
            }
        }
        Ok(report)
    }
    fn write_logs(&self, request: ExportLogsServiceRequest) -> Result<u64, StoreError> {
        Ok(request.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len() as u64).sum())
    }
    fn write_metrics(&self, request: ExportMetricsServiceRequest) -> Result<u64, StoreError> {
        Ok(request.resource_metrics.iter().flat_map(|r| &r.scope_metrics).map(|s| s.metrics.len() as u64).sum())
    }
}

impl TraceReader for MemStore {
    fn trace(&self, trace_id: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
        Ok(self.spans.lock().unwrap().iter().filter(|s| s.span.trace_id == trace_id.0).cloned().collect())
    }
    fn services(&self) -> Result<Vec<String>, StoreError> {
        let mut s: Vec<String> = self.spans.lock().unwrap().iter().map(|s| s.service_name.clone()).collect();
        s.sort();
        s.dedup();
        Ok(s)
    }
    fn operations(&self, service: &str) -> Result<Vec<Operation>, StoreError> {
        let mut ops: Vec<Operation> = self
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.service_name == service)
            .map(|s| Operation { name: s.span.name.clone(), span_kind: SpanKind::try_from(s.span.kind).unwrap_or(SpanKind::Unspecified) })
            .collect();
        ops.sort();
        ops.dedup();
        Ok(ops)
    }
    fn find_traces(&self, query: &TraceQuery) -> Result<Vec<TraceSummary>, StoreError> {
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<TraceId> = spans
            .iter()
            .filter(|s| query.service.as_ref().is_none_or(|q| *q == s.service_name))
            .filter(|s| s.span.start_time_unix_nano >= query.start_unix_nanos && s.span.start_time_unix_nano <= query.end_unix_nanos)
            .filter_map(|s| TraceId::from_slice(&s.span.trace_id))
            .collect();
        ids.sort();
        ids.dedup();
        ids.truncate(query.limit);
        Ok(ids
            .into_iter()
            .map(|id| {
                let t: Vec<&StoredSpan> = spans.iter().filter(|s| s.span.trace_id == id.0).collect();
                let root = t.iter().find(|s| s.span.parent_span_id.is_empty());
                let start = t.iter().map(|s| s.span.start_time_unix_nano).min().unwrap_or(0);
                let end = t.iter().map(|s| s.span.end_time_unix_nano).max().unwrap_or(0);
                let mut services = Vec::new();
                for s in &t {
                    if !services.contains(&s.service_name) {
                        services.push(s.service_name.clone());
                    }
                }
                TraceSummary {
                    trace_id: id,
                    root_service: root.map(|r| r.service_name.clone()),
                    root_name: root.map(|r| r.span.name.clone()),
                    services,
                    span_count: t.len() as u64,
                    start_unix_nanos: start,
                    duration_nanos: end - start,
                    has_error: false,
                    integrity: if root.is_some() { TraceIntegrity::Whole } else { TraceIntegrity::Incomplete(vec![IntegrityProblem::MissingRoot]) },
                }
            })
            .collect())
    }
    fn dependencies(&self, _s: u64, _e: u64) -> Result<Vec<ServiceGraphEdge>, StoreError> {
        Ok(vec![ServiceGraphEdge {
            client: "shop-api".into(),
            client_kind: NodeKind::Service,
            server: "shop-worker".into(),
            server_kind: NodeKind::Service,
            calls: 1,
            failed_calls: 1,
            latency: LatencyHistogram { bucket_counts: vec![0; LATENCY_BUCKETS_MS.len() + 1], count: 0, sum_ms: 0.0 },
        }])
    }
    fn span_metrics(&self) -> Result<Vec<SpanMetricsSeries>, StoreError> {
        Ok(Vec::new())
    }
    fn red_series(&self, _: &str, _: Option<&str>, _: u64, _: u64, _: u64) -> Result<Vec<RedPoint>, StoreError> {
        Ok(Vec::new())
    }
    fn integrity_series(&self, _: u64, _: u64, _: u64) -> Result<Vec<IntegrityPoint>, StoreError> {
        Ok(Vec::new())
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats { spans: self.spans.lock().unwrap().len() as u64, traces: 0, disk_bytes: 0 })
    }
}
