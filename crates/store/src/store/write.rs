//! The write path: one record appended per export (one `write(2)`, durable on return), its
//! spans indexed and their derived figures updated under the lock.

use super::*;

use crate::logs::LogFacts;

impl Inner {
    pub(super) fn append_raw(
        &mut self,
        kind: u8,
        mut framed: Vec<u8>,
        arrival: u64,
    ) -> Result<u64, StoreError> {
        let sync = self.config.sync_writes;
        let head = self.head();
        let offset = head.file.append(&mut framed, sync)?;
        let payload = &framed[segment::RECORD_HEADER_BYTES as usize..];
        head.raws.push(RawMeta {
            kind,
            offset,
            len: payload.len() as u32,
            arrival,
        });
        head.touch(arrival);
        Ok(offset)
    }
}

/// The distinct trace keys of a block's spans.
fn keys_of(facts: &[SpanFacts]) -> Vec<u64> {
    let mut keys: Vec<u64> = facts
        .iter()
        .map(|f| trace_key(&f.trace_id.to_be_bytes()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

impl Store {
    /// Appends a prepared span block and derives from its facts.
    fn write_block(&self, block: PreparedBlock, arrival: u64) -> Result<WriteReport, StoreError> {
        let PreparedBlock {
            mut payload,
            header,
            facts,
            rejected_spans,
            rejection_reason,
        } = block;
        let report = WriteReport {
            accepted_spans: facts.len() as u64,
            rejected_spans,
            rejection_reason,
        };
        if facts.is_empty() {
            return Ok(report);
        }
        let keys = keys_of(&facts);
        let mut inner = self.lock();
        let sync = inner.config.sync_writes;
        let offset = inner.head().file.append(&mut payload, sync)?;
        let len = payload.len() as u64 - segment::RECORD_HEADER_BYTES;
        inner.index_block(offset, len as u32, &header, &keys);
        inner.derived.record(&facts, arrival);
        inner.upkeep(&self.dir, arrival)?;
        Ok(report)
    }
}

impl SpanSink for Store {
    fn write_traces(&self, request: ExportTraceServiceRequest) -> Result<WriteReport, StoreError> {
        let arrival = now_nanos();
        self.write_block(block::prepare_spans(request, arrival, self.detect), arrival)
    }

    fn write_encoded_traces(&self, traces: EncodedTraces) -> Result<WriteReport, StoreError> {
        let arrival = now_nanos();
        self.write_block(
            block::prepare_encoded(traces, arrival, self.detect),
            arrival,
        )
    }

    fn write_logs(&self, request: ExportLogsServiceRequest) -> Result<u64, StoreError> {
        let count: usize = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let arrival = now_nanos();
        let facts = LogFacts::of(&request, arrival);
        let payload = block::prepare_raw(block::KIND_LOGS, &block::encode_logs(&request), arrival);
        let len = (payload.len() as u64 - segment::RECORD_HEADER_BYTES) as u32;
        let mut inner = self.lock();
        let offset = inner.append_raw(block::KIND_LOGS, payload, arrival)?;
        inner.index_logs(offset, len, arrival, facts);
        Ok(count as u64)
    }

    fn write_metrics(&self, request: ExportMetricsServiceRequest) -> Result<u64, StoreError> {
        let count: usize = request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .map(|s| s.metrics.len())
            .sum();
        let arrival = now_nanos();
        let payload = block::prepare_raw(
            block::KIND_METRICS,
            &block::encode_metrics(&request),
            arrival,
        );
        {
            let mut inner = self.lock();
            inner.append_raw(block::KIND_METRICS, payload, arrival)?;
            // Rotation and retention run on metrics-only traffic too (a stand-in that only
            // reports metrics would otherwise grow one segment for ever).
            inner.upkeep(&self.dir, arrival)?;
        }
        self.index_metrics(&request, arrival);
        Ok(count as u64)
    }
}
