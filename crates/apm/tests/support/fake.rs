//! An in-memory `TraceReader` over written requests: a stand-in until the real store lands.

use std::collections::BTreeMap;

use throughline_store::*;

#[derive(Debug, Default)]
pub struct FakeReader {
    pub spans: Vec<StoredSpan>,
}

fn hist(ms: f64) -> LatencyHistogram {
    let mut counts = vec![0; LATENCY_BUCKETS_MS.len() + 1];
    let i = LATENCY_BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BUCKETS_MS.len());
    counts[i] = 1;
    LatencyHistogram {
        bucket_counts: counts,
        count: 1,
        sum_ms: ms,
    }
}

impl FakeReader {
    pub fn write(&mut self, req: ExportTraceServiceRequest) {
        for rs in req.resource_spans {
            let resource = rs.resource.unwrap_or_default();
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "unknown_service".into());
            for ss in rs.scope_spans {
                for span in ss.spans {
                    self.spans.push(StoredSpan {
                        service_name: service.clone(),
                        resource: resource.clone(),
                        scope: ss.scope.clone(),
                        span,
                    });
                }
            }
        }
    }
}

impl TraceReader for FakeReader {
    fn trace(&self, trace_id: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
        Ok(self
            .spans
            .iter()
            .filter(|s| s.span.trace_id == trace_id.0)
            .cloned()
            .collect())
    }
    fn services(&self) -> Result<Vec<String>, StoreError> {
        let mut v: Vec<String> = self.spans.iter().map(|s| s.service_name.clone()).collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
    fn operations(&self, service: &str) -> Result<Vec<Operation>, StoreError> {
        let mut v: Vec<Operation> = self
            .spans
            .iter()
            .filter(|s| s.service_name == service)
            .map(|s| Operation {
                name: s.span.name.clone(),
                span_kind: SpanKind::try_from(s.span.kind).unwrap_or(SpanKind::Unspecified),
            })
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
    fn find_traces(&self, q: &TraceQuery) -> Result<Vec<TraceSummary>, StoreError> {
        let mut by: BTreeMap<Vec<u8>, Vec<&StoredSpan>> = BTreeMap::new();
        for s in &self.spans {
            by.entry(s.span.trace_id.clone()).or_default().push(s);
        }
        let mut out = Vec::new();
        for (id, spans) in by {
            if let Some(svc) = &q.service
                && !spans.iter().any(|s| &s.service_name == svc)
            {
                continue;
            }
            let root = spans.iter().find(|s| s.span.parent_span_id.is_empty());
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
            let mut services = Vec::new();
            for s in &spans {
                if !services.contains(&s.service_name) {
                    services.push(s.service_name.clone());
                }
            }
            let integrity = if root.is_some() {
                TraceIntegrity::Whole
            } else {
                TraceIntegrity::Incomplete(vec![IntegrityProblem::MissingRoot])
            };
            if q.incomplete_only && integrity == TraceIntegrity::Whole {
                continue;
            }
            out.push(TraceSummary {
                trace_id: TraceId::from_slice(&id).unwrap(),
                root_service: root.map(|r| r.service_name.clone()),
                root_name: root.map(|r| r.span.name.clone()),
                services,
                span_count: spans.len() as u64,
                start_unix_nanos: start,
                duration_nanos: end - start,
                has_error: spans
                    .iter()
                    .any(|s| s.span.status.as_ref().is_some_and(|s| s.code == 2)),
                integrity,
            });
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.start_unix_nanos));
        out.truncate(q.limit);
        Ok(out)
    }
    fn dependencies(&self, _: u64, _: u64) -> Result<Vec<ServiceGraphEdge>, StoreError> {
        let e = |c: &str, ck, s: &str, sk, ms| ServiceGraphEdge {
            client: c.into(),
            client_kind: ck,
            server: s.into(),
            server_kind: sk,
            calls: 1,
            failed_calls: 0,
            latency: hist(ms),
        };
        if self.spans.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![
            e(
                "onboarding-api",
                NodeKind::Service,
                "onboarding-queue",
                NodeKind::MessagingSystem,
                20.0,
            ),
            e(
                "onboarding-queue",
                NodeKind::MessagingSystem,
                "onboarding-lambda",
                NodeKind::Service,
                60.0,
            ),
            e(
                "onboarding-lambda",
                NodeKind::Service,
                "onboarding-api",
                NodeKind::Service,
                18.0,
            ),
            e(
                "onboarding-lambda",
                NodeKind::Service,
                "smtp.example.com",
                NodeKind::External,
                15.0,
            ),
        ])
    }
    fn span_metrics(&self) -> Result<Vec<SpanMetricsSeries>, StoreError> {
        Ok(Vec::new())
    }
    fn red_series(
        &self,
        service: &str,
        op: Option<&str>,
        start: u64,
        end: u64,
        step: u64,
    ) -> Result<Vec<RedPoint>, StoreError> {
        let mut out = Vec::new();
        let mut t = start - start % step;
        while t < end {
            let mut p = RedPoint {
                bucket_start_unix_nanos: t,
                calls: 0,
                errors: 0,
                latency: hist(0.0),
            };
            p.latency.count = 0;
            p.latency.bucket_counts.iter_mut().for_each(|c| *c = 0);
            for s in &self.spans {
                if s.service_name == service
                    && op.is_none_or(|o| o == s.span.name)
                    && (t..t + step).contains(&s.span.start_time_unix_nano)
                {
                    p.calls += 1;
                    let h = hist(
                        (s.span.end_time_unix_nano - s.span.start_time_unix_nano) as f64 / 1e6,
                    );
                    for (a, b) in p.latency.bucket_counts.iter_mut().zip(h.bucket_counts) {
                        *a += b;
                    }
                }
            }
            out.push(p);
            t += step;
        }
        Ok(out)
    }
    fn integrity_series(
        &self,
        start: u64,
        end: u64,
        step: u64,
    ) -> Result<Vec<IntegrityPoint>, StoreError> {
        let mut out = Vec::new();
        let mut t = start - start % step;
        while t < end {
            out.push(IntegrityPoint {
                bucket_start_unix_nanos: t,
                whole: u64::from(!self.spans.is_empty()),
                incomplete: 0,
                settling: 0,
            });
            t += step;
        }
        Ok(out)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats::default())
    }
}
