//! The store: segments on disk, the trace index and derived state in memory, and the write path.
//!
//! Durability: `write_traces` returns after the block is written to the newest segment with one
//! `write(2)`; the bytes are then in the kernel and survive the process being killed (`kill -9`).
//! They survive a power loss or kernel crash only with [`StoreConfig::sync_writes`], which adds
//! an `fdatasync` per write. Derived state (span metrics, service graph, integrity) is
//! checkpointed periodically and rebuilt from the log records written after the checkpoint.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::StoreError;
use crate::api::*;
use crate::block::{self, PreparedBlock, SpanBlockBody, decode_span, trace_key};
use crate::catalog::{BlockMeta, BlockRef, RawMeta, Segment, block_ref};
use crate::checkpoint::{self, CheckpointRef, LogPosition};
use crate::derived::Derived;
use crate::facts::{SpanFacts, trace_u128};
use crate::integrity::Verdict;
use crate::sealed::{self, IndexedBlock, IndexedRaw, SegmentIndex};
use crate::segment::{self, SegmentFile};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Where the store keeps its data and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// Segments whose newest data arrived longer ago than this are deleted.
    pub retention_secs: u64,
    /// When the segment files grow past this, the oldest are deleted (the derived-state
    /// checkpoint, a few MB at most, is not counted).
    pub max_disk_bytes: u64,
    /// How long after its last span arrived a trace is judged for integrity, and how long a
    /// client span waits for its server for the service graph.
    pub settle_secs: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_max_bytes: u64,
    /// `fdatasync` every write: survives power loss, not only a killed process.
    pub sync_writes: bool,
    /// How often derived state is checkpointed (it is also checkpointed on close).
    pub checkpoint_interval_secs: u64,
}

impl StoreConfig {
    /// Defaults: retention 7 days, 10 GiB, settle 10 s, 64 MiB segments, no fsync, checkpoint
    /// every 30 s.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            retention_secs: 7 * 24 * 3600,
            max_disk_bytes: 10 << 30,
            settle_secs: 10,
            segment_max_bytes: 64 << 20,
            sync_writes: false,
            checkpoint_interval_secs: 30,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub config: StoreConfig,
    pub segments: Vec<Segment>,
    pub derived: Derived,
    /// Interned service names; blocks list services by number.
    pub service_names: Vec<String>,
    last_checkpoint: u64,
    /// The log position the last checkpoint covers (`None` before the first one).
    checkpointed_at: Option<LogPosition>,
    last_prune: u64,
    checkpoint_bytes: u64,
}

/// A durable embedded trace store. Share it as `Arc<Store>`.
#[derive(Debug)]
pub struct Store {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) cache: Mutex<BlockCache>,
    dir: PathBuf,
}

/// Recently decoded blocks by (segment, offset), oldest first.
type BlockCache = VecDeque<((u64, u64), Arc<SpanBlockBody>)>;

/// Decoded blocks kept for repeated reads (a search, then the traces it found).
const BLOCK_CACHE_ENTRIES: usize = 64;

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Inner {
    /// Writes a sealed segment's index file; a failure only makes the next open slower.
    fn save_index(&self, dir: &Path, seg: &Segment) {
        let index = SegmentIndex {
            segment_len: seg.file.len,
            blocks: seg
                .blocks
                .iter()
                .map(|b| IndexedBlock {
                    offset: b.offset,
                    len: b.len,
                    arrival: b.arrival,
                    min_start: b.min_start,
                    max_start: b.max_start,
                    span_count: b.span_count,
                    services: b
                        .services
                        .iter()
                        .map(|i| {
                            self.service_names
                                .get(*i as usize)
                                .cloned()
                                .unwrap_or_default()
                        })
                        .collect(),
                })
                .collect(),
            raws: seg
                .raws
                .iter()
                .map(|r| IndexedRaw {
                    kind: r.kind,
                    offset: r.offset,
                    len: r.len,
                    arrival: r.arrival,
                })
                .collect(),
            keys: seg.keys.clone(),
            key_blocks: seg.key_blocks.clone(),
        };
        if let Err(err) = sealed::save(dir, seg.file.id, &index) {
            tracing::warn!(segment = seg.file.id, error = %err, "could not write a segment index");
        }
    }

    /// A sealed segment from its index file.
    fn segment_from_index(&mut self, file: SegmentFile, index: SegmentIndex) -> Segment {
        let mut seg = Segment::new(file);
        for b in index.blocks {
            seg.touch(b.arrival);
            seg.blocks.push(BlockMeta {
                offset: b.offset,
                len: b.len,
                arrival: b.arrival,
                min_start: b.min_start,
                max_start: b.max_start,
                span_count: b.span_count,
                services: b.services.iter().map(|s| self.intern(s)).collect(),
            });
        }
        for r in index.raws {
            seg.touch(r.arrival);
            seg.raws.push(RawMeta {
                kind: r.kind,
                offset: r.offset,
                len: r.len,
                arrival: r.arrival,
            });
        }
        seg.keys = index.keys;
        seg.key_blocks = index.key_blocks;
        seg.sealed = true;
        seg
    }

    fn head(&mut self) -> &mut Segment {
        // Invariant: `open` creates a segment when there is none, and sealing always pushes
        // a new head before anything else can happen.
        self.segments
            .last_mut()
            .expect("the store always has a head segment")
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(i) = self.service_names.iter().position(|s| s == name) {
            return i as u32;
        }
        self.service_names.push(name.to_owned());
        (self.service_names.len() - 1) as u32
    }

    pub fn service_id(&self, name: &str) -> Option<u32> {
        self.service_names
            .iter()
            .position(|s| s == name)
            .map(|i| i as u32)
    }

    /// Indexes a span block that is already on disk at `offset` of the head segment.
    fn index_block(
        &mut self,
        offset: u64,
        payload_len: u32,
        header: &block::SpanBlockHeader,
        keys: &[u64],
    ) {
        let services = header.services.iter().map(|s| self.intern(s)).collect();
        let head = self.head();
        let number = head.blocks.len() as u32;
        head.blocks.push(BlockMeta {
            offset,
            len: payload_len,
            arrival: header.arrival_unix_nanos,
            min_start: header.min_start_unix_nanos,
            max_start: header.max_start_unix_nanos,
            span_count: header.span_count,
            services,
        });
        for key in keys {
            head.index_key(*key, number);
        }
        head.touch(header.arrival_unix_nanos);
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

    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.file.len).sum::<u64>() + self.checkpoint_bytes
    }

    fn position(&self) -> LogPosition {
        self.segments
            .last()
            .map(|s| LogPosition {
                segment: s.file.id,
                offset: s.file.len,
            })
            .unwrap_or_default()
    }

    fn checkpoint(&mut self, dir: &Path, now: u64) -> Result<(), StoreError> {
        let cp = CheckpointRef {
            position: self.position(),
            derived: &self.derived,
        };
        self.checkpoint_bytes = checkpoint::save(dir, &cp)?;
        self.last_checkpoint = now;
        self.checkpointed_at = Some(self.position());
        Ok(())
    }

    fn start_segment(&mut self, dir: &Path) -> Result<(), StoreError> {
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
    fn upkeep(&mut self, dir: &Path, now: u64) -> Result<(), StoreError> {
        let settle = self.config.settle_secs.saturating_mul(NANOS_PER_SEC);
        let Inner {
            segments, derived, ..
        } = self;
        derived.advance(now, settle, &mut |trace| recheck(segments, trace));

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

/// Reads a whole trace back under the lock (only for traces that look broken when they settle).
fn recheck(segments: &[Segment], trace: u128) -> Option<Verdict> {
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

/// The facts of every span of a stored block (replay at open).
fn facts_of(body: &SpanBlockBody) -> Vec<SpanFacts> {
    let services: Vec<Arc<str>> = body
        .groups
        .iter()
        .map(|g| Arc::from(g.service.as_str()))
        .collect();
    body.entries()
        .filter_map(|entry| {
            let mut span = decode_span(&entry).ok()?;
            let service = services.get(entry.group as usize)?;
            Some(SpanFacts::extract(
                service,
                trace_u128(&entry.trace_id),
                &mut span,
            ))
        })
        .collect()
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`: cuts a torn write off the newest
    /// segment, rebuilds the trace index and replays derived state from its last checkpoint.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let dir = config.data_dir.clone();
        fs::create_dir_all(&dir)?;
        let mut ids: Vec<u64> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| segment::parse_segment_name(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort_unstable();
        let cp = checkpoint::load(&dir);
        let replay_from = cp.as_ref().map(|c| c.position).unwrap_or_default();
        let checkpoint_bytes = fs::metadata(checkpoint::path(&dir)).map_or(0, |m| m.len());
        let mut inner = Inner {
            config,
            segments: Vec::new(),
            derived: cp.map(|c| c.derived).unwrap_or_default(),
            service_names: Vec::new(),
            last_checkpoint: now_nanos(),
            checkpointed_at: None,
            last_prune: 0,
            checkpoint_bytes,
        };
        let settle = inner.config.settle_secs.saturating_mul(NANOS_PER_SEC);
        for (i, id) in ids.iter().enumerate() {
            let mut file = SegmentFile::open(segment::segment_path(&dir, *id), *id)?;
            let is_last = i + 1 == ids.len();
            if !is_last
                && replay_from.segment > *id
                && let Some(index) = sealed::load(&dir, *id, file.len)
            {
                let seg = inner.segment_from_index(file, index);
                inner.segments.push(seg);
                continue;
            }
            let mut records = Vec::new();
            let valid = segment::scan(&file.file, 0, file.len, |offset, payload| {
                records.push((offset, payload.to_vec()));
            })?;
            if valid < file.len {
                if is_last {
                    tracing::warn!(segment = id, at = valid, "cutting a torn write off the log");
                    file.truncate(valid)?;
                } else {
                    tracing::warn!(
                        segment = id,
                        at = valid,
                        "segment is corrupt past this offset"
                    );
                }
            }
            inner.segments.push(Segment::new(file));
            for (offset, payload) in records {
                let replay = LogPosition {
                    segment: *id,
                    offset,
                } >= replay_from;
                inner.load_record(offset, &payload, replay, settle)?;
            }
            if !is_last {
                if let Some(seg) = inner.segments.last_mut() {
                    seg.seal();
                }
                if let Some(seg) = inner.segments.last() {
                    inner.save_index(&dir, seg);
                }
            }
        }
        if inner.segments.is_empty() {
            inner.start_segment(&dir)?;
        }
        let now = now_nanos();
        inner.upkeep(&dir, now)?;
        Ok(Store {
            inner: Mutex::new(inner),
            cache: Mutex::new(VecDeque::new()),
            dir,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data (no invariant spans two fields in a
        // way a reader could trip on), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

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

    /// The logs exports that arrived in `[start, end]`, with their arrival time.
    pub fn logs(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<Vec<(u64, ExportLogsServiceRequest)>, StoreError> {
        let refs: Vec<(Arc<File>, RawMeta)> = {
            let inner = self.lock();
            inner
                .segments
                .iter()
                .flat_map(|s| s.raws.iter().map(move |r| (Arc::clone(&s.file.file), *r)))
                .filter(|(_, r)| {
                    r.kind == block::KIND_LOGS
                        && r.arrival >= start_unix_nanos
                        && r.arrival <= end_unix_nanos
                })
                .collect()
        };
        let mut out = Vec::new();
        for (file, r) in refs {
            let payload = segment::read_record(&file, r.offset, r.len)?;
            let (_, arrival, bytes) = block::parse_raw(&payload).map_err(StoreError::corrupt)?;
            out.push((
                arrival,
                ExportLogsServiceRequest::decode(&bytes[..]).map_err(StoreError::corrupt)?,
            ));
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

    pub(crate) fn settle_nanos(&self) -> u64 {
        self.lock().config.settle_secs.saturating_mul(NANOS_PER_SEC)
    }
}

impl Inner {
    fn load_record(
        &mut self,
        offset: u64,
        payload: &[u8],
        replay: bool,
        settle: u64,
    ) -> Result<(), StoreError> {
        match block::kind_of(payload) {
            Some(block::KIND_SPANS) => {
                let (header, _, _) =
                    block::parse_span_header(payload).map_err(StoreError::corrupt)?;
                let body = SpanBlockBody::decode_payload(payload).map_err(StoreError::corrupt)?;
                let mut keys: Vec<u64> = body.entries().map(|e| trace_key(&e.trace_id)).collect();
                keys.sort_unstable();
                keys.dedup();
                self.index_block(offset, payload.len() as u32, &header, &keys);
                if replay {
                    let facts = facts_of(&body);
                    let arrival = header.arrival_unix_nanos;
                    self.derived.record(&facts, arrival);
                    let Inner {
                        segments, derived, ..
                    } = self;
                    derived.advance(arrival, settle, &mut |t| recheck(segments, t));
                }
            }
            Some(kind @ (block::KIND_LOGS | block::KIND_METRICS)) => {
                let (_, arrival, _) = block::parse_raw(payload).map_err(StoreError::corrupt)?;
                let head = self.head();
                head.raws.push(RawMeta {
                    kind,
                    offset,
                    len: payload.len() as u32,
                    arrival,
                });
                head.touch(arrival);
            }
            _ => tracing::warn!(offset, "skipping a record of unknown kind"),
        }
        Ok(())
    }

    fn append_raw(
        &mut self,
        kind: u8,
        mut framed: Vec<u8>,
        arrival: u64,
    ) -> Result<(), StoreError> {
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
        Ok(())
    }
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

impl SpanSink for Store {
    fn write_traces(&self, request: ExportTraceServiceRequest) -> Result<WriteReport, StoreError> {
        let arrival = now_nanos();
        let PreparedBlock {
            mut payload,
            header,
            facts,
            rejected_spans,
            rejection_reason,
        } = block::prepare_spans(request, arrival);
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

    fn write_logs(&self, request: ExportLogsServiceRequest) -> Result<u64, StoreError> {
        let count: usize = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let arrival = now_nanos();
        let payload = block::prepare_raw(block::KIND_LOGS, &block::encode_logs(&request), arrival);
        self.lock().append_raw(block::KIND_LOGS, payload, arrival)?;
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
        self.lock()
            .append_raw(block::KIND_METRICS, payload, arrival)?;
        Ok(count as u64)
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
