//! The local notification outbox that stands in for SES: one JSON line per message, appended to
//! `notifications.jsonl` in the outbox directory.
//!
//! One file for every message, not a file each: creating a file costs an inode allocation, which
//! made the notification step the most expensive thing the worker did. Each message is a single
//! `write` to a file opened with `O_APPEND`, so the lines of concurrent worker environments never
//! interleave.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file the outbox appends to, inside its directory.
pub const OUTBOX_FILE: &str = "notifications.jsonl";

/// Why the outbox could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("outbox {path}")]
pub struct OutboxError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An open outbox; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: PathBuf,
    file: Arc<File>,
}

impl Outbox {
    /// Opens (creating when missing) the outbox file in `dir`. Blocking (file system).
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        let path = dir.join(OUTBOX_FILE);
        let err = |source| OutboxError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        Ok(Self {
            path,
            file: Arc::new(file),
        })
    }

    /// Appends one message as one line, off the runtime's worker threads.
    pub async fn send(&self, message: &serde_json::Value) -> Result<(), OutboxError> {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        let outbox = self.clone();
        let written = tokio::task::spawn_blocking(move || (&*outbox.file).write_all(&line)).await;
        let result = written.unwrap_or_else(|join| Err(std::io::Error::other(join)));
        result.map_err(|source| OutboxError {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_are_appended_one_line_each() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outbox = Outbox::open(&dir.path().join("outbox")).expect("opens");
        for n in 0..3 {
            outbox
                .send(&serde_json::json!({"n": n, "text": "line\nbreak"}))
                .await
                .expect("written");
        }
        // A second handle on the same directory appends to the same file.
        let again = Outbox::open(&dir.path().join("outbox")).expect("opens again");
        again
            .send(&serde_json::json!({"n": 3}))
            .await
            .expect("written");
        let text = std::fs::read_to_string(dir.path().join("outbox").join(OUTBOX_FILE))
            .expect("outbox file");
        let ns: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["n"]
                    .as_i64()
                    .expect("n")
            })
            .collect();
        assert_eq!(ns, [0, 1, 2, 3]);
    }
}
