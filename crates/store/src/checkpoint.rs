//! Checkpoints of the derived state: written atomically with the log position they cover, so
//! that opening the store replays only the records written after it.

use std::collections::HashMap;
use std::fs;
use std::hash::Hash;
use std::io;

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::derived::Derived;

/// Where the log stood when a checkpoint was taken: records at or after it are replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, Deserialize)]
pub struct Checkpoint {
    pub position: LogPosition,
    pub derived: Derived,
}

/// A checkpoint to write, borrowing the live state (no copy under the store's lock).
#[derive(Debug, Serialize)]
pub struct CheckpointRef<'a> {
    pub position: LogPosition,
    pub derived: &'a Derived,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join("derived.json.deflate")
}

/// Writes the checkpoint (deflated JSON) to a temporary file, syncs it and renames it over the
/// previous one. Returns its size in bytes.
pub fn save(dir: &Path, checkpoint: &CheckpointRef<'_>) -> io::Result<u64> {
    let tmp = dir.join("derived.json.deflate.tmp");
    let file = fs::File::create(&tmp)?;
    // serde_json writes in small pieces; the deflater wants large ones.
    let encoder = DeflateEncoder::new(io::BufWriter::new(file), Compression::fast());
    let mut json = io::BufWriter::with_capacity(256 * 1024, encoder);
    serde_json::to_writer(&mut json, checkpoint).map_err(io::Error::other)?;
    let encoder = json.into_inner().map_err(|e| e.into_error())?;
    let file = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let len = file.metadata()?.len();
    fs::rename(&tmp, path(dir))?;
    Ok(len)
}

/// The last checkpoint, `None` when there is none or it cannot be read (then everything is
/// replayed from the log, which is always correct, only slower).
pub fn load(dir: &Path) -> Option<Checkpoint> {
    let file = fs::File::open(path(dir)).ok()?;
    let reader = io::BufReader::new(DeflateDecoder::new(io::BufReader::new(file)));
    match serde_json::from_reader(reader) {
        Ok(c) => Some(c),
        Err(err) => {
            tracing::warn!(error = %err, "derived-state checkpoint unreadable, replaying the log");
            None
        }
    }
}

/// Serializes a map whose keys are not strings as a sequence of pairs.
pub mod as_vec {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, H, S: Serializer>(
        map: &HashMap<K, V, H>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, H, D>(deserializer: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        H: std::hash::BuildHasher + Default,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}

/// Serializes an `Arc<str>` as a string (serde's `rc` feature is not enabled workspace-wide).
pub mod arc_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        Ok(Arc::from(String::deserialize(deserializer)?))
    }
}
