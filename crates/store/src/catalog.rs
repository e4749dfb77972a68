//! What the store knows of each segment in memory: its blocks and its trace index.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use crate::facts::IdHash;
use crate::segment::SegmentFile;

/// What the index knows of one span block.
#[derive(Debug, Clone)]
pub struct BlockMeta {
    pub offset: u64,
    pub len: u32,
    pub arrival: u64,
    pub min_start: u64,
    pub max_start: u64,
    pub span_count: u32,
    pub services: Vec<u32>,
}

/// A logs or metrics record.
#[derive(Debug, Clone, Copy)]
pub struct RawMeta {
    pub kind: u8,
    pub offset: u64,
    pub len: u32,
    pub arrival: u64,
}

#[derive(Debug)]
pub struct Segment {
    pub file: SegmentFile,
    pub blocks: Vec<BlockMeta>,
    pub raws: Vec<RawMeta>,
    /// Trace index: (trace key, block number), sorted by key once the segment is sealed.
    pub keys: Vec<u64>,
    pub key_blocks: Vec<u32>,
    /// While the segment is the head: trace key → its first two blocks (`u32::MAX` = none);
    /// a trace in more blocks lists the rest in `head_overflow`.
    pub head_map: HashMap<u64, [u32; 2], IdHash>,
    pub head_overflow: Vec<(u64, u32)>,
    /// The segment's logs exports by time, service, severity and trace.
    pub logs: crate::logs::LogIndex,
    pub sealed: bool,
    pub first_arrival: u64,
    pub last_arrival: u64,
}

impl Segment {
    pub fn new(file: SegmentFile) -> Self {
        Self {
            file,
            blocks: Vec::new(),
            raws: Vec::new(),
            keys: Vec::new(),
            key_blocks: Vec::new(),
            head_map: HashMap::default(),
            head_overflow: Vec::new(),
            logs: Default::default(),
            sealed: false,
            first_arrival: 0,
            last_arrival: 0,
        }
    }

    pub fn touch(&mut self, arrival: u64) {
        if self.first_arrival == 0 {
            self.first_arrival = arrival;
        }
        self.last_arrival = self.last_arrival.max(arrival);
    }

    pub fn seal(&mut self) {
        let mut pairs: Vec<(u64, u32)> = self
            .keys
            .iter()
            .copied()
            .zip(self.key_blocks.iter().copied())
            .collect();
        pairs.sort_unstable();
        self.keys = pairs.iter().map(|p| p.0).collect();
        self.key_blocks = pairs.iter().map(|p| p.1).collect();
        self.keys.shrink_to_fit();
        self.key_blocks.shrink_to_fit();
        self.head_map = HashMap::default();
        self.head_overflow = Vec::new();
        self.blocks.shrink_to_fit();
        self.logs.seal();
        self.sealed = true;
    }

    /// Block numbers that may hold the trace with this key.
    pub fn blocks_of(&self, key: u64, out: &mut Vec<u32>) {
        if self.sealed {
            let from = self.keys.partition_point(|k| *k < key);
            for i in from..self.keys.len() {
                if self.keys[i] != key {
                    break;
                }
                out.push(self.key_blocks[i]);
            }
        } else if let Some(slots) = self.head_map.get(&key) {
            out.extend(slots.iter().copied().filter(|b| *b != u32::MAX));
            if slots[1] != u32::MAX {
                out.extend(
                    self.head_overflow
                        .iter()
                        .filter(|(k, _)| *k == key)
                        .map(|(_, b)| *b),
                );
            }
        }
    }

    pub fn index_key(&mut self, key: u64, block: u32) {
        self.keys.push(key);
        self.key_blocks.push(block);
        let slots = self.head_map.entry(key).or_insert([u32::MAX; 2]);
        if slots[0] == u32::MAX {
            slots[0] = block;
        } else if slots[1] == u32::MAX {
            slots[1] = block;
        } else {
            self.head_overflow.push((key, block));
        }
    }
}

/// A block to read, found under the lock and read after it is released.
#[derive(Debug, Clone)]
pub struct BlockRef {
    pub file: Arc<File>,
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
    pub arrival: u64,
    pub max_start: u64,
}

pub fn block_ref(seg: &Segment, b: &BlockMeta) -> BlockRef {
    BlockRef {
        file: Arc::clone(&seg.file.file),
        segment: seg.file.id,
        offset: b.offset,
        len: b.len,
        arrival: b.arrival,
        max_start: b.max_start,
    }
}
