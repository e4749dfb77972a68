//! Opening the shared SQLite file with the settings both services use: WAL and a busy timeout,
//! so the API and the worker can write the same file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// How long a connection waits for the other service's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`open_sqlite`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    /// The file's directory could not be created.
    #[error("directory {path}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file could not be opened, configured, or given its table.
    #[error("database {path}")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// Opens (creating it and its directory when missing) an SQLite file in WAL mode with a busy
/// timeout and `synchronous = NORMAL`, then runs `schema` (one `CREATE TABLE IF NOT EXISTS`
/// statement). Blocking: call it at start-up or from `spawn_blocking`.
pub fn open_sqlite(path: &Path, schema: &str) -> Result<Connection, SqliteOpenError> {
    let db_err = |source| SqliteOpenError::Database {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SqliteOpenError::Directory {
            path: dir.to_owned(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    conn.execute(schema, []).map_err(db_err)?;
    Ok(conn)
}
