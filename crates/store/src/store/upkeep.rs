//! Upkeep driven by time and writes: integrity settling and pairing, segment rotation,
//! retention by age and size, checkpoints, and the flush/close/drop ends of a store.

use super::*;

impl Inner {
    pub(super) fn checkpoint(&mut self, dir: &Path, now: u64) -> Result<(), StoreError> {
        let cp = CheckpointRef {
            position: self.position(),
            derived: &self.derived,
        };
        self.checkpoint_bytes = checkpoint::save(dir, &cp)?;
        self.last_checkpoint = now;
        self.checkpointed_at = Some(self.position());
        Ok(())
    }

    pub(super) fn start_segment(&mut self, dir: &Path) -> Result<(), StoreError> {
        let id = self.segments.last().map_or(0, |s| s.file.id + 1);
        if let Some(head) = self.segments.last_mut() {
            head.seal();
        }
        if let Some(sealed) = self.segments.last() {
            self.save_index(dir, sealed);
        }
        self.segments
            .push(Segment::new(SegmentFile::create(dir, id)?));
        if self.config.sync_writes {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Time-driven upkeep after a write: integrity and pairing, segment rotation, retention,
    /// checkpoints.
    pub(super) fn upkeep(&mut self, dir: &Path, now: u64) -> Result<(), StoreError> {
        let settle = self.config.settle_secs.saturating_mul(NANOS_PER_SEC);
        let findings = self.config.findings;
        let Inner {
            segments, derived, ..
        } = self;
        derived.advance(now, settle, &findings, &mut |trace| {
            recheck(segments, trace)
        });

        let retention = self.config.retention_secs.saturating_mul(NANOS_PER_SEC);
        let max_head_age = (retention / 8).clamp(NANOS_PER_SEC, 3600 * NANOS_PER_SEC);
        let segment_max_bytes = self.config.segment_max_bytes;
        let head = self.head();
        let head_full = head.file.len >= segment_max_bytes;
        let head_old =
            head.first_arrival != 0 && now.saturating_sub(head.first_arrival) > max_head_age;
        if head_full || head_old {
            self.start_segment(dir)?;
            self.checkpoint(dir, now)?;
        }
        let cutoff = now.saturating_sub(retention);
        loop {
            // The derived-state checkpoint is not span data and does not count here.
            let segment_bytes: u64 = self.segments.iter().map(|s| s.file.len).sum();
            let over_size = segment_bytes > self.config.max_disk_bytes;
            if self.segments.len() < 2 {
                let head = self.head();
                let nonempty = head.file.len > 0;
                let too_old = nonempty && head.last_arrival < cutoff;
                if nonempty && (over_size || too_old) {
                    self.start_segment(dir)?;
                    continue;
                }
                break;
            }
            if !(over_size || self.segments[0].last_arrival < cutoff) {
                break;
            }
            let oldest = self.segments.remove(0);
            tracing::info!(
                segment = oldest.file.id,
                bytes = oldest.file.len,
                "retention deletes a segment"
            );
            fs::remove_file(&oldest.file.path)?;
            let _ = fs::remove_file(sealed::index_path(dir, oldest.file.id));
        }
        if now.saturating_sub(self.last_prune) > 60 * NANOS_PER_SEC {
            self.derived.prune(cutoff);
            self.last_prune = now;
        }
        let interval = self
            .config
            .checkpoint_interval_secs
            .saturating_mul(NANOS_PER_SEC);
        if now.saturating_sub(self.last_checkpoint) > interval {
            self.checkpoint(dir, now)?;
        }
        Ok(())
    }
}

impl Store {
    /// Checkpoints derived state and syncs the newest segment to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.checkpoint(&self.dir, now_nanos())?;
        inner.head().file.file.sync_all()?;
        Ok(())
    }

    /// Flushes and closes the store.
    pub fn close(self) -> Result<(), StoreError> {
        self.flush()
    }

    /// Runs time-driven upkeep (integrity judgements, retention) without a write; the collector
    /// may call it every few seconds so that an idle store still settles its traces.
    pub fn maintain(&self) -> Result<(), StoreError> {
        self.lock().upkeep(&self.dir, now_nanos())
    }
}

/// Reads a whole trace back under the lock (only for traces that look broken when they settle).
pub(super) fn recheck(segments: &[Segment], trace: u128) -> Option<Verdict> {
    let trace_id = TraceId(trace.to_be_bytes());
    let key = trace_key(&trace_id.0);
    let mut spans = Vec::new();
    let mut start = u64::MAX;
    let mut first_arrival = u64::MAX;
    let mut numbers = Vec::new();
    for seg in segments {
        numbers.clear();
        seg.blocks_of(key, &mut numbers);
        numbers.dedup();
        for n in &numbers {
            let b = seg.blocks.get(*n as usize)?;
            let payload = segment::read_record(&seg.file.file, b.offset, b.len).ok()?;
            let body = SpanBlockBody::decode_payload(&payload).ok()?;
            let mut found = false;
            for entry in body.entries().filter(|e| e.trace_id == trace_id.0) {
                let span = decode_span(&entry).ok()?;
                start = start.min(span.start_time_unix_nano);
                spans.push((
                    crate::facts::span_u64(&span.span_id),
                    crate::facts::span_u64(&span.parent_span_id),
                ));
                found = true;
            }
            if found {
                first_arrival = first_arrival.min(b.arrival);
            }
        }
    }
    if spans.is_empty() {
        return None;
    }
    Some(Verdict {
        whole: crate::integrity::judge(&spans).is_empty(),
        start_unix_nanos: start,
        first_arrival,
    })
}

impl Drop for Store {
    fn drop(&mut self) {
        let mut inner = self.lock();
        // After `close`, or with nothing written since the last checkpoint, there is nothing to
        // save: time alone is replayed by the next open.
        if inner.checkpointed_at == Some(inner.position()) {
            return;
        }
        if let Err(err) = inner.checkpoint(&self.dir, now_nanos()) {
            tracing::warn!(error = %err, "could not checkpoint the store on drop");
        }
    }
}
