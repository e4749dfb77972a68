//! One `up` per data directory: an exclusive lock on `DATA/up.lock`, which holds the holder's
//! pid so a second `up` can name it. The lock goes with the process, however it ends.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {dir} is in use by another throughline up (pid {pid}); stop it or pass another --data-dir"
    )]
    Held { dir: PathBuf, pid: String },
    #[error("cannot lock the data directory {dir}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for as long as `up` runs.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Locks `dir` (which must exist), or names the pid that holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join("up.lock");
        let io = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = match pid.trim() {
                    "" => "unknown".to_owned(),
                    p => p.to_owned(),
                };
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DataDirLock::acquire(dir.path()).expect("first lock");
        let err = DataDirLock::acquire(dir.path()).expect_err("second lock refused");
        let text = err.to_string();
        assert!(
            text.contains(&std::process::id().to_string()) && text.contains("--data-dir"),
            "{text}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once the first is gone");
    }
}
