//! The log side of the store: indexing each logs export as it is written or read back at open,
//! and the log search over that index.

use super::*;
use crate::logs::{self, LogBlock, LogBlockRef, LogFacts, LogQuery, StoredLog};

impl Inner {
    /// Indexes a logs export already on disk at `offset` of the head segment.
    pub(super) fn index_logs(&mut self, offset: u64, len: u32, arrival: u64, facts: LogFacts) {
        let services = facts.services.iter().map(|s| self.intern(s)).collect();
        let block = LogBlock {
            offset,
            len,
            arrival,
            min_time: facts.min_time,
            max_time: facts.max_time,
            services,
            max_severity: facts.max_severity,
            has_span_ids: facts.has_span_ids,
            records: facts.records,
        };
        self.head().logs.add(block, &facts.keys);
    }

    /// Rebuilds the log index of the segment just pushed (read from its index file, which lists
    /// the logs exports but not what is in them) by reading its logs exports back.
    pub(super) fn rebuild_last_log_index(&mut self) -> Result<(), StoreError> {
        let Some(seg) = self.segments.last() else {
            return Ok(());
        };
        let file = Arc::clone(&seg.file.file);
        let raws: Vec<RawMeta> = seg
            .raws
            .iter()
            .filter(|r| r.kind == block::KIND_LOGS)
            .copied()
            .collect();
        let mut found = Vec::with_capacity(raws.len());
        for r in raws {
            let payload = segment::read_record(&file, r.offset, r.len)?;
            found.push((r, log_facts_of(&payload)?));
        }
        let mut blocks = Vec::with_capacity(found.len());
        for (r, facts) in found {
            let services: Vec<u32> = facts.services.iter().map(|s| self.intern(s)).collect();
            blocks.push((r, services, facts));
        }
        if let Some(seg) = self.segments.last_mut() {
            for (r, services, facts) in blocks {
                seg.logs.add(
                    LogBlock {
                        offset: r.offset,
                        len: r.len,
                        arrival: r.arrival,
                        min_time: facts.min_time,
                        max_time: facts.max_time,
                        services,
                        max_severity: facts.max_severity,
                        has_span_ids: facts.has_span_ids,
                        records: facts.records,
                    },
                    &facts.keys,
                );
            }
            seg.logs.seal();
        }
        Ok(())
    }

    /// The log blocks that may hold records the query wants, newest first.
    fn log_blocks(&self, q: &LogQuery) -> Vec<LogBlockRef> {
        let service = q.service.as_deref().map(|s| self.service_id(s));
        let key = q.trace_id.map(|t| block::trace_key(&t.0));
        let mut out = Vec::new();
        let mut numbers = Vec::new();
        for seg in &self.segments {
            let mut push = |b: &LogBlock| {
                if logs::block_may_match(b, q, service) {
                    out.push(LogBlockRef {
                        file: Arc::clone(&seg.file.file),
                        offset: b.offset,
                        len: b.len,
                        max_time: b.max_time,
                    });
                }
            };
            match key {
                Some(key) => {
                    numbers.clear();
                    seg.logs.blocks_of(key, &mut numbers);
                    numbers.sort_unstable();
                    numbers.dedup();
                    for n in &numbers {
                        if let Some(b) = seg.logs.blocks.get(*n as usize) {
                            push(b);
                        }
                    }
                }
                None => seg.logs.blocks.iter().for_each(&mut push),
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.max_time));
        out
    }
}

/// What the index keeps of a stored logs export, from its record's payload.
pub(super) fn log_facts_of(payload: &[u8]) -> Result<LogFacts, StoreError> {
    let (_, arrival, bytes) = block::parse_raw(payload).map_err(StoreError::corrupt)?;
    let request = ExportLogsServiceRequest::decode(&bytes[..]).map_err(StoreError::corrupt)?;
    Ok(LogFacts::of(&request, arrival))
}

impl Store {
    /// Log records matching `query`, newest first (by [`logs::record_time`]), at most its limit.
    /// Reads only the logs exports whose index entry can match: for a trace id, the exports
    /// holding that trace.
    pub fn search_logs(&self, query: &LogQuery) -> Result<Vec<StoredLog>, StoreError> {
        let limit = match query.limit {
            0 => logs::DEFAULT_LOG_LIMIT,
            n => n,
        };
        let refs = self.lock().log_blocks(query);
        let mut out: Vec<StoredLog> = Vec::new();
        for r in &refs {
            // Blocks come newest first by their newest record: once `limit` records are newer
            // than anything this block holds, no later block can change the answer.
            if out.len() >= limit {
                out.sort_by_key(|l| std::cmp::Reverse(l.time_unix_nanos));
                out.truncate(limit);
                if out.last().is_some_and(|l| l.time_unix_nanos > r.max_time) {
                    break;
                }
            }
            logs::read_block(r, query, &mut out)?;
        }
        out.sort_by_key(|l| std::cmp::Reverse(l.time_unix_nanos));
        out.truncate(limit);
        Ok(out)
    }

    /// How many log records the store holds.
    pub fn log_records(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.logs.records()).sum()
    }
}
