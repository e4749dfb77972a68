//! The database the event fan-out's services share (seed 004's `nedlia` database): where it is
//! (`DATABASE_URL`, an SQLite file), how it is opened (WAL, busy timeout, so the API and three
//! workers in other processes may write at once), the schema, and the videos and products seeded
//! at first start, the placement row, and [`Database`], which runs each statement under the
//! `throughline-instrument` CLIENT span of its operation (SQL commenter included) on the
//! blocking pool. Knows nothing of HTTP, SQS or Lambda.

mod database;

pub use database::{Database, DbError, Session};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// The setting naming the database.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Where the database is when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_PATH: &str = "events.sqlite3";
/// `db.namespace` of the spans: the seed's database name.
pub const NAMESPACE: &str = "nedlia";

/// The tables. `placements.status` moves `created` → `valid` or `invalid` (validator); the file
/// generator sets `file_key`, the notifier `notified_at`. One house placement per video
/// (`start_time` 0 to 30) is seeded, so an overlapping request is refused whatever the order.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS videos (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    duration_secs REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS placements (
    id TEXT PRIMARY KEY,
    video_id TEXT NOT NULL REFERENCES videos(id),
    product_id TEXT NOT NULL REFERENCES products(id),
    start_time REAL NOT NULL,
    end_time REAL NOT NULL,
    status TEXT NOT NULL,
    file_key TEXT,
    notified_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS placements_by_video ON placements(video_id, start_time);
";

/// The seeded videos: id, title, duration in seconds.
pub const SEED_VIDEOS: &[(&str, &str, f64)] = &[
    ("vid-001", "Morning Routine", 3_600_000.0),
    ("vid-002", "City Cycling", 3_600_000.0),
    ("vid-003", "Kitchen Basics", 3_600_000.0),
    ("vid-004", "Mountain Trail", 3_600_000.0),
    ("vid-005", "Home Office Tour", 3_600_000.0),
];

/// The seeded products: id, name, price in cents.
pub const SEED_PRODUCTS: &[(&str, &str, i64)] = &[
    ("prod-001", "Espresso Machine", 34_900),
    ("prod-002", "Road Helmet", 8_900),
    ("prod-003", "Chef Knife", 12_500),
    ("prod-004", "Trail Shoes", 14_000),
    ("prod-005", "Standing Desk", 49_900),
];

/// The house placement seeded on every video: `start_time` 0, `end_time` this.
pub const HOUSE_PLACEMENT_END: f64 = 30.0;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "DATABASE_URL: {url:?} is not an SQLite path (sqlite:PATH, sqlite://PATH or a plain path)"
    )]
    NotSqlite { url: String },
    #[error("cannot create the database directory {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// The SQLite path `DATABASE_URL` names (`sqlite:PATH`, `sqlite://PATH` or a plain path).
pub fn path_from_env(env: &HashMap<String, String>) -> Result<PathBuf, OpenError> {
    let Some(url) = env.get(DATABASE_URL).filter(|u| !u.trim().is_empty()) else {
        return Ok(PathBuf::from(DEFAULT_SQLITE_PATH));
    };
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(OpenError::NotSqlite { url: url.clone() });
    }
    Ok(PathBuf::from(path))
}

/// Opens (creating) the database: directory, WAL, 5 s busy timeout, `synchronous = NORMAL`,
/// the schema and the seed (idempotent: rows already there are kept).
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
            path: dir.to_owned(),
            source,
        })?;
    }
    let failed = |source| OpenError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(failed)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(failed)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(failed)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(failed)?;
    conn.execute_batch(SCHEMA).map_err(failed)?;
    seed(&conn).map_err(failed)?;
    Ok(conn)
}

/// The columns of [`Placement::from_row`], in order.
pub const PLACEMENT_COLUMNS: &str =
    "id, video_id, product_id, start_time, end_time, status, file_key, notified_at, created_at";

/// A placement row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Placement {
    pub id: String,
    pub video_id: String,
    pub product_id: String,
    pub start_time: f64,
    pub end_time: f64,
    pub status: String,
    pub file_key: Option<String>,
    pub notified_at: Option<String>,
    pub created_at: String,
}

impl Placement {
    /// A row selected with [`PLACEMENT_COLUMNS`].
    pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            video_id: row.get(1)?,
            product_id: row.get(2)?,
            start_time: row.get(3)?,
            end_time: row.get(4)?,
            status: row.get(5)?,
            file_key: row.get(6)?,
            notified_at: row.get(7)?,
            created_at: row.get(8)?,
        })
    }
}

fn seed(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    for (id, name, price) in SEED_PRODUCTS {
        tx.execute(
            "INSERT OR IGNORE INTO products (id, name, price_cents) VALUES (?1, ?2, ?3)",
            (id, name, price),
        )?;
    }
    for (id, title, duration) in SEED_VIDEOS {
        tx.execute(
            "INSERT OR IGNORE INTO videos (id, title, duration_secs) VALUES (?1, ?2, ?3)",
            (id, title, duration),
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO placements (id, video_id, product_id, start_time, end_time, status, created_at)
             VALUES (?1, ?2, 'prod-001', 0, ?3, 'valid', '2026-01-01T00:00:00Z')",
            (format!("house-{id}"), id, HOUSE_PLACEMENT_END),
        )?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_forms() {
        let env = |v: &str| HashMap::from([(DATABASE_URL.to_owned(), v.to_owned())]);
        assert_eq!(
            path_from_env(&env("sqlite:/a/b.db")).unwrap(),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(
            path_from_env(&env("sqlite:///a/b.db")).unwrap(),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(path_from_env(&env("b.db")).unwrap(), PathBuf::from("b.db"));
        assert_eq!(
            path_from_env(&HashMap::new()).unwrap(),
            PathBuf::from(DEFAULT_SQLITE_PATH)
        );
        let err = path_from_env(&env("postgres://u@h/db")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DATABASE_URL: \"postgres://u@h/db\"")
        );
    }

    #[test]
    fn opening_twice_seeds_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.sqlite3");
        drop(open(&path).unwrap());
        let conn = open(&path).unwrap();
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count("videos"), SEED_VIDEOS.len() as i64);
        assert_eq!(count("products"), SEED_PRODUCTS.len() as i64);
        assert_eq!(count("placements"), SEED_VIDEOS.len() as i64);
    }
}
