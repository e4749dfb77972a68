//! The store: segments on disk, the trace index and derived state in memory. Split by idea:
//! [`open`] (opening and recovery), [`write`] (the write path), [`upkeep`] (settling,
//! rotation, retention, checkpoints, close) and [`read`] (records back for the query module).
//!
//! Durability: `write_traces` returns after the block is written to the newest segment with one
//! `write(2)`; the bytes are then in the kernel and survive the process being killed (`kill -9`).
//! They survive a power loss or kernel crash only with [`StoreConfig::sync_writes`], which adds
//! an `fdatasync` per write. Derived state (span metrics, service graph, integrity) is
//! checkpointed periodically and rebuilt from the log records written after the checkpoint.

mod logs;
mod metric_read;
mod open;
mod read;
mod upkeep;
mod write;

pub(crate) use read::{block_refs_in, stats_of, trace_of};

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
use crate::findings::FindingsConfig;
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
    /// The thresholds of the pattern detector (N+1 queries and its kin) run as traces settle.
    pub findings: FindingsConfig,
}

impl StoreConfig {
    /// Defaults: retention 7 days, 10 GiB, settle 10 s, 64 MiB segments, no fsync, checkpoint
    /// every 30 s, Sentry's N+1 thresholds.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            retention_secs: 7 * 24 * 3600,
            max_disk_bytes: 10 << 30,
            settle_secs: 10,
            segment_max_bytes: 64 << 20,
            sync_writes: false,
            checkpoint_interval_secs: 30,
            findings: FindingsConfig::default(),
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
    /// Whether ingest extracts the detector's patterns (read outside the lock).
    detect: bool,
    /// Decoded metric samples (their own lock: a dashboard's queries do not wait on span
    /// writes).
    pub(crate) metric_index: Mutex<MetricIndexState>,
}

/// The metric index and when it was last pruned to the retention.
#[derive(Debug, Default)]
pub(crate) struct MetricIndexState {
    pub index: crate::otlp_metrics::MetricIndex,
    pub last_prune: u64,
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
}

impl Store {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data (no invariant spans two fields in a
        // way a reader could trip on), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
