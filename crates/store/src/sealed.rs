//! The index file of a sealed segment: its block list and sorted trace index, so that opening
//! the store reads a few bytes per block instead of decompressing every block.
//!
//! The file is written (then renamed into place) when a segment is sealed. It is only a cache:
//! when it is missing, stale (written for a different segment length) or fails its checksum,
//! the segment is scanned instead.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"TLIDX001";

/// One span block as the index file lists it (service names, not numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedBlock {
    pub offset: u64,
    pub len: u32,
    pub arrival: u64,
    pub min_start: u64,
    pub max_start: u64,
    pub span_count: u32,
    pub services: Vec<String>,
}

/// One logs or metrics record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexedRaw {
    pub kind: u8,
    pub offset: u64,
    pub len: u32,
    pub arrival: u64,
}

/// Everything the store keeps in memory about a sealed segment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentIndex {
    pub segment_len: u64,
    pub blocks: Vec<IndexedBlock>,
    pub raws: Vec<IndexedRaw>,
    /// Sorted trace keys and the block each is in.
    pub keys: Vec<u64>,
    pub key_blocks: Vec<u32>,
}

pub fn index_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("segment-{id:010}.idx"))
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl SegmentIndex {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.blocks.len() * 64 + self.keys.len() * 12);
        out.extend_from_slice(MAGIC);
        put_u64(&mut out, self.segment_len);
        put_u32(&mut out, self.blocks.len() as u32);
        for b in &self.blocks {
            put_u64(&mut out, b.offset);
            put_u32(&mut out, b.len);
            put_u64(&mut out, b.arrival);
            put_u64(&mut out, b.min_start);
            put_u64(&mut out, b.max_start);
            put_u32(&mut out, b.span_count);
            let listed = &b.services[..b.services.len().min(u16::MAX as usize)];
            put_u16(&mut out, listed.len() as u16);
            for s in listed {
                let name = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
                put_u16(&mut out, name.len() as u16);
                out.extend_from_slice(name);
            }
        }
        put_u32(&mut out, self.raws.len() as u32);
        for r in &self.raws {
            out.push(r.kind);
            put_u64(&mut out, r.offset);
            put_u32(&mut out, r.len);
            put_u64(&mut out, r.arrival);
        }
        put_u32(&mut out, self.keys.len() as u32);
        for k in &self.keys {
            put_u64(&mut out, *k);
        }
        for b in &self.key_blocks {
            put_u32(&mut out, *b);
        }
        let crc = crc32fast::hash(&out);
        put_u32(&mut out, crc);
        out
    }

    /// The index in `bytes`, `None` when they are not a whole, intact index file.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader { bytes: body };
        if r.take(8)? != MAGIC {
            return None;
        }
        let mut index = SegmentIndex {
            segment_len: r.u64()?,
            ..Default::default()
        };
        let blocks = r.u32()?;
        for _ in 0..blocks {
            let mut b = IndexedBlock {
                offset: r.u64()?,
                len: r.u32()?,
                arrival: r.u64()?,
                min_start: r.u64()?,
                max_start: r.u64()?,
                span_count: r.u32()?,
                services: Vec::new(),
            };
            for _ in 0..r.u16()? {
                let len = r.u16()? as usize;
                b.services
                    .push(String::from_utf8_lossy(r.take(len)?).into_owned());
            }
            index.blocks.push(b);
        }
        for _ in 0..r.u32()? {
            index.raws.push(IndexedRaw {
                kind: *r.take(1)?.first()?,
                offset: r.u64()?,
                len: r.u32()?,
                arrival: r.u64()?,
            });
        }
        let keys = r.u32()? as usize;
        index.keys = (0..keys).map(|_| r.u64()).collect::<Option<_>>()?;
        index.key_blocks = (0..keys).map(|_| r.u32()).collect::<Option<_>>()?;
        Some(index)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Writes the index of segment `id` next to it (temporary file, then rename).
pub fn save(dir: &Path, id: u64, index: &SegmentIndex) -> io::Result<()> {
    let path = index_path(dir, id);
    let tmp = path.with_extension("idx.tmp");
    fs::write(&tmp, index.encode())?;
    fs::rename(&tmp, &path)
}

/// The index of segment `id` if its file is intact and was written for a segment of
/// `segment_len` bytes.
pub fn load(dir: &Path, id: u64, segment_len: u64) -> Option<SegmentIndex> {
    let bytes = fs::read(index_path(dir, id)).ok()?;
    SegmentIndex::decode(&bytes).filter(|i| i.segment_len == segment_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_round_trips_and_corruption_is_detected() {
        let index = SegmentIndex {
            segment_len: 1234,
            blocks: vec![IndexedBlock {
                offset: 0,
                len: 100,
                arrival: 5,
                min_start: 6,
                max_start: 7,
                span_count: 3,
                services: vec!["api".into(), "worker".into()],
            }],
            raws: vec![IndexedRaw {
                kind: 2,
                offset: 108,
                len: 50,
                arrival: 9,
            }],
            keys: vec![1, 2, 3],
            key_blocks: vec![0, 0, 0],
        };
        let mut bytes = index.encode();
        assert_eq!(SegmentIndex::decode(&bytes), Some(index));
        bytes[20] ^= 1;
        assert_eq!(SegmentIndex::decode(&bytes), None);
        assert_eq!(SegmentIndex::decode(&bytes[..10]), None);
    }
}
