//! The read side's access to stored records: trace lookup, block decoding through the cache,
//! logs, and the figures the query module reports.

use super::*;

impl Inner {
    pub fn service_id(&self, name: &str) -> Option<u32> {
        self.service_names
            .iter()
            .position(|s| s == name)
            .map(|i| i as u32)
    }

    pub fn locate(&self, trace_id: TraceId) -> Vec<BlockRef> {
        let key = trace_key(&trace_id.0);
        let mut numbers = Vec::new();
        let mut out = Vec::new();
        for seg in &self.segments {
            numbers.clear();
            seg.blocks_of(key, &mut numbers);
            numbers.dedup();
            for n in &numbers {
                if let Some(b) = seg.blocks.get(*n as usize) {
                    out.push(block_ref(seg, b));
                }
            }
        }
        out
    }
}

impl Store {
    /// The logs exports that arrived in `[start, end]`, with their arrival time.
    pub fn logs(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<Vec<(u64, ExportLogsServiceRequest)>, StoreError> {
        self.raw_exports(block::KIND_LOGS, start_unix_nanos, end_unix_nanos)
    }

    /// The metrics exports that arrived in `[start, end]`, with their arrival time.
    pub fn metrics(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<Vec<(u64, ExportMetricsServiceRequest)>, StoreError> {
        self.raw_exports(block::KIND_METRICS, start_unix_nanos, end_unix_nanos)
    }

    fn raw_exports<M: Message + Default>(
        &self,
        kind: u8,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<Vec<(u64, M)>, StoreError> {
        let refs: Vec<(Arc<File>, RawMeta)> = {
            let inner = self.lock();
            inner
                .segments
                .iter()
                .flat_map(|s| s.raws.iter().map(move |r| (Arc::clone(&s.file.file), *r)))
                .filter(|(_, r)| {
                    r.kind == kind && r.arrival >= start_unix_nanos && r.arrival <= end_unix_nanos
                })
                .collect()
        };
        let mut out = Vec::new();
        for (file, r) in refs {
            let payload = segment::read_record(&file, r.offset, r.len)?;
            let (_, arrival, bytes) = block::parse_raw(&payload).map_err(StoreError::corrupt)?;
            out.push((arrival, M::decode(&bytes[..]).map_err(StoreError::corrupt)?));
        }
        Ok(out)
    }

    /// The decoded body of a block, from the cache or the disk.
    pub(crate) fn body(&self, r: &BlockRef) -> Result<Arc<SpanBlockBody>, StoreError> {
        let key = (r.segment, r.offset);
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, body)) = cache.iter().find(|(k, _)| *k == key) {
                return Ok(Arc::clone(body));
            }
        }
        let payload = segment::read_record(&r.file, r.offset, r.len)?;
        let body = Arc::new(SpanBlockBody::decode_payload(&payload).map_err(StoreError::corrupt)?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= BLOCK_CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back((key, Arc::clone(&body)));
        Ok(body)
    }

    /// The spans of a trace and when its first and last blocks arrived.
    pub(crate) fn load_trace(
        &self,
        trace_id: TraceId,
    ) -> Result<(Vec<StoredSpan>, u64, u64), StoreError> {
        let refs = self.lock().locate(trace_id);
        let mut spans = Vec::new();
        let (mut first, mut last) = (u64::MAX, 0);
        for r in &refs {
            let body = self.body(r)?;
            let mut found = false;
            for entry in body.entries().filter(|e| e.trace_id == trace_id.0) {
                let span = decode_span(&entry).map_err(StoreError::corrupt)?;
                spans.push(StoredSpan {
                    service_name: body.service(entry.group).to_owned(),
                    resource: body.resource(entry.group).map_err(StoreError::corrupt)?,
                    scope: body.scope(entry.group).map_err(StoreError::corrupt)?,
                    span,
                });
                found = true;
            }
            if found {
                first = first.min(r.arrival);
                last = last.max(r.arrival);
            }
        }
        spans.sort_by_key(|s| s.span.start_time_unix_nano);
        Ok((spans, first, last))
    }

    /// Feeds every span of the blocks that may hold spans started in `[start, end]` (of
    /// `service`'s resources only, when given) to `f` with its service, newest blocks first;
    /// `f` checks the start. Stops after the block that reaches `max_spans` and says so
    /// (`true`), so a report over a long window costs a bounded read.
    pub(crate) fn scan_spans(
        &self,
        start: u64,
        end: u64,
        service: Option<&str>,
        max_spans: usize,
        f: &mut dyn FnMut(&str, &Span),
    ) -> Result<bool, StoreError> {
        let mut refs = {
            let inner = self.lock();
            let id = match service {
                Some(name) => match inner.service_id(name) {
                    Some(id) => Some(id),
                    None => return Ok(false),
                },
                None => None,
            };
            block_refs_in(&inner, start, end, id)
        };
        refs.sort_by_key(|r| std::cmp::Reverse(r.max_start));
        let mut seen = 0usize;
        for r in &refs {
            if seen >= max_spans {
                return Ok(true);
            }
            let body = self.body(r)?;
            for entry in body.entries() {
                let name = body.service(entry.group);
                if service.is_some_and(|s| s != name) {
                    continue;
                }
                let span = decode_span(&entry).map_err(StoreError::corrupt)?;
                seen += 1;
                f(name, &span);
            }
        }
        Ok(false)
    }

    pub(crate) fn settle_nanos(&self) -> u64 {
        self.lock().config.settle_secs.saturating_mul(NANOS_PER_SEC)
    }
}

pub(crate) fn trace_of(trace: u128) -> TraceId {
    TraceId(trace.to_be_bytes())
}

pub(crate) fn stats_of(inner: &Inner) -> StoreStats {
    StoreStats {
        spans: inner
            .segments
            .iter()
            .flat_map(|s| &s.blocks)
            .map(|b| u64::from(b.span_count))
            .sum(),
        traces: inner.derived.integrity.traces_seen,
        disk_bytes: inner.disk_bytes(),
    }
}

pub(crate) fn block_refs_in(
    inner: &Inner,
    start: u64,
    end: u64,
    service: Option<u32>,
) -> Vec<BlockRef> {
    let mut out = Vec::new();
    for seg in &inner.segments {
        for b in &seg.blocks {
            if b.max_start < start || b.min_start > end {
                continue;
            }
            if service.is_some_and(|s| !b.services.contains(&s)) {
                continue;
            }
            out.push(block_ref(seg, b));
        }
    }
    out
}
