//! Append-only segment files: checksummed records, written before a write is acknowledged.
//!
//! A record is `[payload length: u32 LE][crc32 of payload: u32 LE][payload]`. A segment is only
//! ever appended to; a torn record at the end of the newest segment (a crash in the middle of a
//! `write`) fails its length or checksum test and is cut off when the store opens.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes before each record's payload.
pub const RECORD_HEADER_BYTES: u64 = 8;

/// The largest payload a record may carry; anything larger read back is corruption.
const MAX_RECORD_BYTES: u32 = 1 << 30;

/// The file name of segment `id`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("segment-{id:010}.log"))
}

/// The id of a segment file name, `None` for other files.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("segment-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// An open segment file. Reads go through a shared handle so that readers never wait for writers.
#[derive(Debug)]
pub struct SegmentFile {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes of whole records; the next record is written here.
    pub len: u64,
}

impl SegmentFile {
    pub fn create(dir: &Path, id: u64) -> io::Result<Self> {
        let path = segment_path(dir, id);
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(&path)?;
        Ok(Self {
            id,
            path,
            file: Arc::new(file),
            len: 0,
        })
    }

    pub fn open(path: PathBuf, id: u64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            id,
            path,
            file: Arc::new(file),
            len,
        })
    }

    /// Appends one record and returns its offset. The bytes are in the kernel when this returns
    /// (they survive the process being killed); `sync` also waits for the disk.
    pub fn append(&mut self, payload: &[u8], sync: bool) -> io::Result<u64> {
        let offset = self.len;
        let mut framed = Vec::with_capacity(payload.len() + RECORD_HEADER_BYTES as usize);
        framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        framed.extend_from_slice(payload);
        (&*self.file).write_all(&framed)?;
        if sync {
            self.file.sync_data()?;
        }
        self.len += framed.len() as u64;
        Ok(offset)
    }

    /// Cuts the file back to `len` bytes (a torn tail found at open).
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }
}

/// Reads the payload of the record at `offset` whose payload is `len` bytes, checking its crc.
pub fn read_record(file: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize + RECORD_HEADER_BYTES as usize];
    file.read_exact_at(&mut buf, offset)?;
    let stored_len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let payload = buf.split_off(RECORD_HEADER_BYTES as usize);
    if stored_len != len || crc32fast::hash(&payload) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record at offset {offset} fails its checksum"),
        ));
    }
    Ok(payload)
}

/// Walks every whole record of a segment from `start`, calling `visit(offset, payload)`. Returns
/// the length of the valid prefix: where a torn or corrupt record begins, or the file's end.
pub fn scan(
    file: &File,
    start: u64,
    file_len: u64,
    mut visit: impl FnMut(u64, &[u8]),
) -> io::Result<u64> {
    let mut offset = start;
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    let mut payload = Vec::new();
    while offset + RECORD_HEADER_BYTES <= file_len {
        file.read_exact_at(&mut header, offset)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let end = offset + RECORD_HEADER_BYTES + u64::from(len);
        if len > MAX_RECORD_BYTES || end > file_len {
            break;
        }
        payload.resize(len as usize, 0);
        file.read_exact_at(&mut payload, offset + RECORD_HEADER_BYTES)?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        visit(offset, &payload);
        offset = end;
    }
    Ok(offset)
}
