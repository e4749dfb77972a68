//! Checkpoints of the derived state: written atomically with the log position they cover, so
//! that opening the store replays only the records written after it.

use std::collections::HashMap;
use std::fs;
use std::hash::Hash;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::derived::Derived;

/// Where the log stood when a checkpoint was taken: records at or after it are replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: LogPosition,
    pub derived: Derived,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join("derived.json")
}

/// Writes the checkpoint to a temporary file, syncs it and renames it over the previous one.
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> io::Result<u64> {
    let tmp = dir.join("derived.json.tmp");
    let bytes = serde_json::to_vec(checkpoint).map_err(io::Error::other)?;
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path(dir))?;
    Ok(bytes.len() as u64)
}

/// The last checkpoint, `None` when there is none or it cannot be read (then everything is
/// replayed from the log, which is always correct, only slower).
pub fn load(dir: &Path) -> Option<Checkpoint> {
    let bytes = fs::read(path(dir)).ok()?;
    match serde_json::from_slice(&bytes) {
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

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &HashMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}
