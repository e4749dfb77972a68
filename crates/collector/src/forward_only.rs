//! Sidecar mode (`--no-store`): a [`SpanSink`] that keeps nothing itself (the export queues make
//! the data durable) and a [`TraceReader`] with nothing to read, so the listeners, `/metrics` and
//! the query API's shape stay as they are.

use throughline_store::{
    DatabaseQuery, DatabaseReport, ErrorGroup, ErrorQuery, ExportLogsServiceRequest,
    ExportMetricsServiceRequest, ExportTraceServiceRequest, Finding, FindingQuery, IntegrityPoint,
    Operation, RedPoint, RedScope, ServiceGraphEdge, SpanMetricsSeries, SpanSink, StoreError,
    StoreStats, StoredSpan, TraceId, TraceQuery, TraceReader, TraceSummary, WriteReport,
};

/// Takes everything, keeps nothing: pair it with an exporter.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwardOnly;

impl SpanSink for ForwardOnly {
    fn write_traces(&self, request: ExportTraceServiceRequest) -> Result<WriteReport, StoreError> {
        let spans = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum();
        Ok(WriteReport {
            accepted_spans: spans,
            ..WriteReport::default()
        })
    }
    fn write_logs(&self, request: ExportLogsServiceRequest) -> Result<u64, StoreError> {
        Ok(request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum())
    }
    fn write_metrics(&self, request: ExportMetricsServiceRequest) -> Result<u64, StoreError> {
        Ok(request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .map(|s| s.metrics.len() as u64)
            .sum())
    }
}

impl TraceReader for ForwardOnly {
    fn trace(&self, _: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
        Ok(Vec::new())
    }
    fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    fn operations(&self, _: &str) -> Result<Vec<Operation>, StoreError> {
        Ok(Vec::new())
    }
    fn find_traces(&self, _: &TraceQuery) -> Result<Vec<TraceSummary>, StoreError> {
        Ok(Vec::new())
    }
    fn dependencies(&self, _: u64, _: u64) -> Result<Vec<ServiceGraphEdge>, StoreError> {
        Ok(Vec::new())
    }
    fn span_metrics(&self) -> Result<Vec<SpanMetricsSeries>, StoreError> {
        Ok(Vec::new())
    }
    fn red_series(
        &self,
        _: &str,
        _: RedScope<'_>,
        _: u64,
        _: u64,
        _: u64,
    ) -> Result<Vec<RedPoint>, StoreError> {
        Ok(Vec::new())
    }
    fn integrity_series(&self, _: u64, _: u64, _: u64) -> Result<Vec<IntegrityPoint>, StoreError> {
        Ok(Vec::new())
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats::default())
    }
    fn findings(&self, _: &FindingQuery) -> Result<Vec<Finding>, StoreError> {
        Ok(Vec::new())
    }
    fn database(&self, _: &DatabaseQuery) -> Result<DatabaseReport, StoreError> {
        Ok(DatabaseReport::default())
    }
    fn errors(&self, _: &ErrorQuery) -> Result<Vec<ErrorGroup>, StoreError> {
        Ok(Vec::new())
    }
    fn metric_series(
        &self,
        _: &throughline_store::MetricQuery,
    ) -> Result<Vec<throughline_store::MetricSeries>, StoreError> {
        Ok(Vec::new())
    }
    fn metric_names(&self, _: Option<&str>) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    fn search_logs(
        &self,
        _: &throughline_store::LogQuery,
    ) -> Result<Vec<throughline_store::StoredLog>, StoreError> {
        Ok(Vec::new())
    }
}
