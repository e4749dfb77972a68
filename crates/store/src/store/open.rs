//! Opening the store and recovering it: segment files read back from their index files or
//! scanned, a torn last record cut off, and the derived state rebuilt from its checkpoint and the
//! records written after it.

use super::upkeep::recheck;
use super::*;

impl Inner {
    /// Writes a sealed segment's index file; a failure only makes the next open slower.
    pub(super) fn save_index(&self, dir: &Path, seg: &Segment) {
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
    pub(super) fn segment_from_index(&mut self, file: SegmentFile, index: SegmentIndex) -> Segment {
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

    pub(super) fn load_record(
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
                    let findings = self.config.findings;
                    let facts = facts_of(&body, findings.enabled);
                    let arrival = header.arrival_unix_nanos;
                    self.derived.record(&facts, arrival);
                    let Inner {
                        segments, derived, ..
                    } = self;
                    derived.advance(arrival, settle, &findings, &mut |t| recheck(segments, t));
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
        let detect = inner.config.findings.enabled;
        let store = Store {
            inner: Mutex::new(inner),
            cache: Mutex::new(VecDeque::new()),
            dir,
            detect,
            metric_index: Mutex::new(MetricIndexState::default()),
        };
        store.rebuild_metric_index()?;
        Ok(store)
    }
}

/// The facts of every span of a stored block (replay at open).
fn facts_of(body: &SpanBlockBody, detect: bool) -> Vec<SpanFacts> {
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
                detect,
            ))
        })
        .collect()
}
