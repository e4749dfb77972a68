//! The persistent queue of one upstream destination: a directory of append-only segment files
//! (the store's own record format and write discipline, [`throughline_store::segment`]) and a
//! cursor naming the first record the upstream has not accepted yet.
//!
//! - **Durable before acknowledged.** [`PersistentQueue::append`] returns once the record is
//!   written with one `write(2)` (it survives `kill -9`); with `sync_writes` it is also
//!   `fdatasync`ed (power loss).
//! - **Leaves only once accepted.** [`PersistentQueue::ack`] moves the cursor past records the
//!   upstream accepted (or refused for good); the cursor file is replaced atomically (write,
//!   rename). A crash between the upstream's answer and the cursor write sends those records
//!   again: at least once, never lost.
//! - **Bounded.** Beyond `max_bytes` of pending records [`PersistentQueue::append`] refuses
//!   ([`QueueFull`]), so the receiver answers `RESOURCE_EXHAUSTED` / 429 and the sender keeps
//!   its data. Records older than `max_age` are dropped when they reach the head, counted as
//!   expired and logged.
//!
//! A record's payload is `[signal: u8][enqueued at, unix ms: u64 LE][items: u32 LE][OTLP
//! request protobuf]`. Records of one signal that follow each other are sent as one request:
//! concatenated protobuf encodings of a message merge their repeated fields, so the bodies are
//! joined without decoding.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use throughline_store::segment::{self, RECORD_HEADER_BYTES, SegmentFile};

use crate::self_metrics::Signal;

/// Bytes of the record payload before the OTLP request.
const PAYLOAD_HEADER_BYTES: usize = 1 + 8 + 4;
/// The cursor file: `segment id: u64 LE, offset: u64 LE, crc32 of both: u32 LE`.
const CURSOR_FILE: &str = "cursor";

/// The queue's bounds and write discipline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Pending bytes beyond which new data is refused.
    pub max_bytes: u64,
    /// Records older than this are dropped (counted as expired) instead of sent.
    pub max_age: Duration,
    /// A segment file is closed and a new one begun beyond this size.
    pub segment_max_bytes: u64,
    /// `fdatasync` every append and cursor move.
    pub sync_writes: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
            segment_max_bytes: 64 << 20,
            sync_writes: false,
        }
    }
}

/// The queue is over its size bound: the sender should retry later.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the export queue for {destination} is full ({pending_bytes} bytes pending, bound {max_bytes})"
)]
pub struct QueueFull {
    pub destination: String,
    pub pending_bytes: u64,
    pub max_bytes: u64,
}

/// Why the queue could not take a record.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Full(#[from] QueueFull),
    #[error("could not write the export queue")]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u64,
    offset: u64,
    /// Payload bytes (without the record header).
    len: u32,
    signal: Signal,
    enqueued_ms: u64,
    items: u32,
}

impl Entry {
    fn end(&self) -> u64 {
        self.offset + RECORD_HEADER_BYTES + u64::from(self.len)
    }
}

/// Requests read from the head of the queue, to be sent as one.
#[derive(Debug, Clone)]
pub struct Batch {
    pub signal: Signal,
    /// The concatenated OTLP request bodies (one valid request of `signal`).
    pub body: Vec<u8>,
    /// Spans, log records or metrics in it.
    pub items: u64,
    /// Records it covers; [`PersistentQueue::ack`] takes this back.
    pub records: usize,
    /// When its oldest record was queued.
    pub oldest_enqueued_ms: u64,
}

/// Figures of one queue, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub records: u64,
    pub items: u64,
    pub bytes: u64,
    /// Age of the oldest pending record, in milliseconds (0 when empty).
    pub oldest_age_ms: u64,
    pub expired_items: u64,
}

#[derive(Debug)]
struct Inner {
    /// Every segment still holding pending records, oldest first; the last is written to.
    segments: VecDeque<SegmentFile>,
    pending: VecDeque<Entry>,
    pending_bytes: u64,
    pending_items: u64,
    expired_items: u64,
}

/// A persistent FIFO of OTLP requests for one destination. Shared as `Arc`.
#[derive(Debug)]
pub struct PersistentQueue {
    name: String,
    dir: PathBuf,
    config: QueueConfig,
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn signal_byte(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 1,
        Signal::Logs => 2,
        Signal::Metrics => 3,
    }
}

fn signal_of(byte: u8) -> Option<Signal> {
    match byte {
        1 => Some(Signal::Traces),
        2 => Some(Signal::Logs),
        3 => Some(Signal::Metrics),
        _ => None,
    }
}

fn parse_header(payload: &[u8]) -> Option<(Signal, u64, u32)> {
    if payload.len() < PAYLOAD_HEADER_BYTES {
        return None;
    }
    let signal = signal_of(payload[0])?;
    let enqueued = u64::from_le_bytes(payload[1..9].try_into().ok()?);
    let items = u32::from_le_bytes(payload[9..13].try_into().ok()?);
    Some((signal, enqueued, items))
}

fn read_cursor(dir: &Path) -> io::Result<Option<(u64, u64)>> {
    let bytes = match fs::read(dir.join(CURSOR_FILE)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if bytes.len() != 20 || crc32fast::hash(&bytes[..16]).to_le_bytes() != bytes[16..20] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is corrupt", dir.join(CURSOR_FILE).display()),
        ));
    }
    let segment = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
    let offset = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    Ok(Some((segment, offset)))
}

fn write_cursor(dir: &Path, segment: u64, offset: u64, sync: bool) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(&segment.to_le_bytes());
    bytes.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("cursor.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    if sync {
        file.sync_data()?;
    }
    fs::rename(&tmp, dir.join(CURSOR_FILE))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl PersistentQueue {
    /// Opens (or creates) the queue in `dir`, named `name` in errors and figures. Records after
    /// the cursor are pending again; a torn last record is cut off.
    pub fn open(name: &str, dir: &Path, config: QueueConfig) -> io::Result<Arc<Self>> {
        fs::create_dir_all(dir)?;
        let cursor = read_cursor(dir)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| segment::parse_segment_name(e.file_name().to_str()?))
            .collect();
        ids.sort_unstable();
        let (cursor_segment, cursor_offset) = cursor.unwrap_or((0, 0));
        let mut segments = VecDeque::new();
        let mut pending = VecDeque::new();
        let count = ids.len();
        for (i, id) in ids.into_iter().enumerate() {
            let path = segment::segment_path(dir, id);
            if id < cursor_segment {
                // Every record in it was accepted before the cursor moved past it.
                fs::remove_file(&path)?;
                continue;
            }
            let mut file = SegmentFile::open(path, id)?;
            let start = if id == cursor_segment {
                cursor_offset
            } else {
                0
            };
            let valid = segment::scan(&file.file, start, file.len, |offset, payload| {
                if let Some((signal, enqueued_ms, items)) = parse_header(payload) {
                    pending.push_back(Entry {
                        segment: id,
                        offset,
                        len: payload.len() as u32,
                        signal,
                        enqueued_ms,
                        items,
                    });
                }
            })?;
            if valid < file.len {
                if i + 1 == count {
                    tracing::warn!(
                        queue = name,
                        segment = id,
                        cut = file.len - valid,
                        "cutting a torn record off the export queue"
                    );
                    file.truncate(valid)?;
                } else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is corrupt at offset {valid}", file.path.display()),
                    ));
                }
            }
            segments.push_back(file);
        }
        if segments.is_empty() {
            let id = cursor_segment.max(1);
            segments.push_back(SegmentFile::create(dir, id)?);
            write_cursor(dir, id, 0, config.sync_writes)?;
        }
        let pending_bytes = pending.iter().map(|e| u64::from(e.len)).sum();
        let pending_items = pending.iter().map(|e| u64::from(e.items)).sum();
        Ok(Arc::new(Self {
            name: name.to_owned(),
            dir: dir.to_owned(),
            config,
            inner: Mutex::new(Inner {
                segments,
                pending,
                pending_bytes,
                pending_items,
                expired_items: 0,
            }),
            notify: tokio::sync::Notify::new(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the queue's memory as it was at the last
        // completed step; the files are the truth, so carrying on is safe.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `bytes` more would fit under the size bound now.
    pub fn check_room(&self, bytes: u64) -> Result<(), QueueFull> {
        let inner = self.lock();
        self.room(&inner, bytes)
    }

    fn room(&self, inner: &Inner, bytes: u64) -> Result<(), QueueFull> {
        // An empty queue always takes one request, so a bound below one request cannot wedge.
        if inner.pending_bytes > 0 && inner.pending_bytes + bytes > self.config.max_bytes {
            return Err(QueueFull {
                destination: self.name.clone(),
                pending_bytes: inner.pending_bytes,
                max_bytes: self.config.max_bytes,
            });
        }
        Ok(())
    }

    /// Makes one OTLP request durable in the queue. Blocking (disk): call it off the runtime.
    pub fn append(&self, signal: Signal, request: &[u8], items: u64) -> Result<(), AppendError> {
        let items = u32::try_from(items).unwrap_or(u32::MAX);
        let enqueued_ms = now_ms();
        let mut framed =
            Vec::with_capacity(RECORD_HEADER_BYTES as usize + PAYLOAD_HEADER_BYTES + request.len());
        framed.resize(RECORD_HEADER_BYTES as usize, 0);
        framed.push(signal_byte(signal));
        framed.extend_from_slice(&enqueued_ms.to_le_bytes());
        framed.extend_from_slice(&items.to_le_bytes());
        framed.extend_from_slice(request);
        let len = (framed.len() - RECORD_HEADER_BYTES as usize) as u32;
        let mut inner = self.lock();
        self.room(&inner, u64::from(len))?;
        let needs_new = inner
            .segments
            .back()
            .is_none_or(|s| s.len >= self.config.segment_max_bytes);
        if needs_new {
            let id = inner.segments.back().map_or(1, |s| s.id + 1);
            inner
                .segments
                .push_back(SegmentFile::create(&self.dir, id)?);
        }
        let head = inner
            .segments
            .back_mut()
            .ok_or_else(|| io::Error::other("no segment"))?;
        let segment = head.id;
        let offset = head.append(&mut framed, self.config.sync_writes)?;
        inner.pending.push_back(Entry {
            segment,
            offset,
            len,
            signal,
            enqueued_ms,
            items,
        });
        inner.pending_bytes += u64::from(len);
        inner.pending_items += u64::from(items);
        drop(inner);
        self.notify.notify_one();
        Ok(())
    }

    /// Figures now.
    pub fn depth(&self) -> QueueDepth {
        let inner = self.lock();
        QueueDepth {
            records: inner.pending.len() as u64,
            items: inner.pending_items,
            bytes: inner.pending_bytes,
            oldest_age_ms: inner
                .pending
                .front()
                .map_or(0, |e| now_ms().saturating_sub(e.enqueued_ms)),
            expired_items: inner.expired_items,
        }
    }

    /// Drops records at the head older than the age bound, moving the cursor past them.
    fn expire(&self, inner: &mut Inner) -> io::Result<()> {
        let limit = now_ms().saturating_sub(self.config.max_age.as_millis() as u64);
        let mut dropped = 0usize;
        let mut items = 0u64;
        while inner
            .pending
            .get(dropped)
            .is_some_and(|e| e.enqueued_ms < limit)
        {
            items += u64::from(inner.pending[dropped].items);
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(queue = %self.name, records = dropped, items,
                max_age_secs = self.config.max_age.as_secs(),
                "dropping export records older than the queue's age bound");
            inner.expired_items += items;
            self.advance(inner, dropped)?;
        }
        Ok(())
    }

    /// Reads up to `max_bytes` of consecutive same-signal records from the head (at least one),
    /// or `None` when nothing is pending. Blocking (disk).
    pub fn peek(&self, max_bytes: usize) -> io::Result<Option<Batch>> {
        let mut inner = self.lock();
        self.expire(&mut inner)?;
        let Some(first) = inner.pending.front().copied() else {
            return Ok(None);
        };
        let mut body = Vec::new();
        let mut items = 0u64;
        let mut records = 0usize;
        for entry in inner.pending.iter() {
            if entry.signal != first.signal
                || (records > 0 && body.len() + entry.len as usize > max_bytes)
            {
                break;
            }
            let file = inner
                .segments
                .iter()
                .find(|s| s.id == entry.segment)
                .ok_or_else(|| io::Error::other("a pending record's segment is gone"))?;
            let payload = segment::read_record(&file.file, entry.offset, entry.len)?;
            body.extend_from_slice(&payload[PAYLOAD_HEADER_BYTES..]);
            items += u64::from(entry.items);
            records += 1;
        }
        Ok(Some(Batch {
            signal: first.signal,
            body,
            items,
            records,
            oldest_enqueued_ms: first.enqueued_ms,
        }))
    }

    /// Records pending now.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `index`-th pending record from the head (0: the head) — its signal and OTLP request
    /// body — or `None` beyond the last. Reads ahead without moving the cursor. Blocking (disk).
    pub fn read_pending(&self, index: usize) -> io::Result<Option<(Signal, Vec<u8>)>> {
        let inner = self.lock();
        let Some(entry) = inner.pending.get(index).copied() else {
            return Ok(None);
        };
        let file = inner
            .segments
            .iter()
            .find(|s| s.id == entry.segment)
            .ok_or_else(|| io::Error::other("a pending record's segment is gone"))?;
        let mut payload = segment::read_record(&file.file, entry.offset, entry.len)?;
        payload.drain(..PAYLOAD_HEADER_BYTES);
        Ok(Some((entry.signal, payload)))
    }

    /// The first `records` pending records left the queue (accepted, or refused for good).
    /// Blocking (disk).
    pub fn ack(&self, records: usize) -> io::Result<()> {
        let mut inner = self.lock();
        self.advance(&mut inner, records)
    }

    fn advance(&self, inner: &mut Inner, records: usize) -> io::Result<()> {
        let mut last = None;
        for _ in 0..records {
            let Some(entry) = inner.pending.pop_front() else {
                break;
            };
            inner.pending_bytes -= u64::from(entry.len);
            inner.pending_items -= u64::from(entry.items);
            last = Some(entry);
        }
        let Some(last) = last else { return Ok(()) };
        // The cursor: the next pending record, or the end of the last one taken.
        let (segment, offset) = inner
            .pending
            .front()
            .map_or((last.segment, last.end()), |e| (e.segment, e.offset));
        write_cursor(&self.dir, segment, offset, self.config.sync_writes)?;
        // Segments wholly before the cursor hold nothing pending (never the one written to).
        while inner.segments.len() > 1 && inner.segments.front().is_some_and(|s| s.id < segment) {
            if let Some(old) = inner.segments.pop_front() {
                fs::remove_file(&old.path)?;
            }
        }
        Ok(())
    }

    /// Waits until a record may be pending (returns at once if one was appended since the last
    /// wait).
    pub async fn wait_for_data(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_bytes: u64) -> QueueConfig {
        QueueConfig {
            max_bytes,
            segment_max_bytes: 200,
            ..QueueConfig::default()
        }
    }

    #[test]
    fn records_survive_reopening_until_acked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = PersistentQueue::open("t", dir.path(), config(1 << 20)).expect("open");
        for i in 0..10u8 {
            queue.append(Signal::Traces, &[i; 50], 1).expect("append");
        }
        queue.append(Signal::Logs, &[99; 10], 2).expect("append");
        let batch = queue.peek(120).expect("peek").expect("pending");
        assert_eq!(
            (batch.records, batch.items),
            (2, 2),
            "two 50-byte bodies fit in 120"
        );
        queue.ack(batch.records).expect("ack");
        drop(queue);
        let queue = PersistentQueue::open("t", dir.path(), config(1 << 20)).expect("reopen");
        assert_eq!(queue.depth().records, 9);
        let batch = queue.peek(1 << 20).expect("peek").expect("pending");
        assert_eq!(batch.signal, Signal::Traces);
        assert_eq!(
            batch.records, 8,
            "stops at the first record of another signal"
        );
        assert_eq!(&batch.body[..50], &[2u8; 50][..]);
        queue.ack(batch.records).expect("ack");
        let logs = queue.peek(1 << 20).expect("peek").expect("pending");
        assert_eq!(
            (logs.signal, logs.items, logs.body.clone()),
            (Signal::Logs, 2, vec![99; 10])
        );
        queue.ack(1).expect("ack");
        assert!(queue.peek(1 << 20).expect("peek").is_none());
        let segments = fs::read_dir(dir.path())
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("segment-"))
            })
            .count();
        assert_eq!(segments, 1, "accepted segments are deleted");
    }

    #[test]
    fn a_full_queue_refuses_and_takes_again_once_drained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = PersistentQueue::open("full", dir.path(), config(100)).expect("open");
        queue
            .append(Signal::Traces, &[1; 60], 1)
            .expect("first fits");
        let err = queue
            .append(Signal::Traces, &[1; 60], 1)
            .expect_err("over the bound");
        assert!(matches!(err, AppendError::Full(_)), "{err:?}");
        assert_eq!(queue.depth().records, 1, "a refusal keeps nothing");
        queue.ack(1).expect("ack");
        queue
            .append(Signal::Traces, &[1; 60], 1)
            .expect("room again");
    }

    #[test]
    fn a_torn_tail_is_cut_and_earlier_records_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue =
            PersistentQueue::open("torn", dir.path(), QueueConfig::default()).expect("open");
        queue.append(Signal::Metrics, &[7; 30], 3).expect("append");
        queue.append(Signal::Metrics, &[8; 30], 3).expect("append");
        drop(queue);
        let path = segment::segment_path(dir.path(), 1);
        let len = fs::metadata(&path).expect("meta").len();
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(len - 5).expect("tear");
        let queue =
            PersistentQueue::open("torn", dir.path(), QueueConfig::default()).expect("reopen");
        assert_eq!(queue.depth().items, 3);
        queue
            .append(Signal::Metrics, &[9; 30], 3)
            .expect("append after the cut");
        let batch = queue.peek(1 << 20).expect("peek").expect("pending");
        assert_eq!(batch.records, 2);
        assert_eq!(&batch.body[30..], &[9u8; 30][..]);
    }

    #[test]
    fn records_past_the_age_bound_are_counted_as_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = QueueConfig {
            max_age: Duration::ZERO,
            ..QueueConfig::default()
        };
        let queue = PersistentQueue::open("old", dir.path(), config).expect("open");
        queue.append(Signal::Traces, &[1; 10], 4).expect("append");
        std::thread::sleep(Duration::from_millis(5));
        assert!(queue.peek(1 << 20).expect("peek").is_none());
        assert_eq!(queue.depth().expired_items, 4);
        assert_eq!(queue.depth().records, 0);
    }
}
