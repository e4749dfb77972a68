//! The database the event fan-out's services share (seed 004's `nedlia` database): where it is
//! (`DATABASE_URL`: an SQLite file, or PostgreSQL with the tables in their own schema
//! `EVENTS_DATABASE_SCHEMA`, `events` unless told, as the shop keeps `shop`), the schema on both
//! engines, the videos, products and placements seeded at first start, the placement row, and
//! [`Database`], which runs each statement under the `throughline-instrument` CLIENT span of its
//! operation (SQL commenter included). The same SQL text (`?1`-numbered parameters) runs on both
//! engines. Knows nothing of HTTP, SQS or Lambda.

mod database;
mod location;
mod seed;

pub use database::{Arg, Database, DbError, Row, Tx};
pub use location::{Location, OpenError, Postgres, SCHEMA_SETTING, location_from_env};
pub use seed::{
    CATALOGUE_PLACEMENTS_PER_VIDEO, FREE_FROM_SECS, HOUSE_PLACEMENT_END, SEED_PRODUCTS,
    SEED_VIDEO_COUNT, SeedVideo, seed_videos,
};

use std::path::Path;

use rusqlite::Connection;

/// The setting naming the database.
pub use throughline_service_kit::database::DATABASE_URL;
/// The setting naming the PostgreSQL schema of the tables.
pub const SCHEMA_ENV: &str = "EVENTS_DATABASE_SCHEMA";
/// The schema unless `EVENTS_DATABASE_SCHEMA` says otherwise.
pub const DEFAULT_SCHEMA: &str = "events";
/// Where the database is when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_PATH: &str = "events.sqlite3";
/// `db.namespace` of the spans on SQLite: the seed's database name.
pub const NAMESPACE: &str = "nedlia";

/// The tables on SQLite. `placements.status` moves `created` → `valid` or `invalid`
/// (validator); the file generator sets `file_key`, the notifier `notified_at`. One house
/// placement per video (`start_time` 0 to 30) is seeded, so an overlapping request is refused
/// whatever the order.
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

/// The same tables on PostgreSQL (in the schema `search_path` names), one statement each.
pub const SCHEMA_POSTGRES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS videos (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        duration_secs DOUBLE PRECISION NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS products (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        price_cents BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS placements (
        id TEXT PRIMARY KEY,
        video_id TEXT NOT NULL REFERENCES videos(id),
        product_id TEXT NOT NULL REFERENCES products(id),
        start_time DOUBLE PRECISION NOT NULL,
        end_time DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL,
        file_key TEXT,
        notified_at TEXT,
        created_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS placements_by_video ON placements(video_id, start_time)",
];

/// Opens (creating) the SQLite file: directory, WAL, 5 s busy timeout, `synchronous = NORMAL`,
/// the schema and the seed (idempotent: rows already there are kept).
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    let conn = throughline_service_kit::database::open_sqlite(path, SCHEMA)?;
    seed::sqlite(&conn).map_err(|source| OpenError::Open {
        path: path.to_owned(),
        source,
    })?;
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
    /// A row selected with [`PLACEMENT_COLUMNS`] first.
    pub fn from_row(row: &dyn Row) -> Result<Self, DbError> {
        Ok(Self {
            id: row.text(0)?,
            video_id: row.text(1)?,
            product_id: row.text(2)?,
            start_time: row.real(3)?,
            end_time: row.real(4)?,
            status: row.text(5)?,
            file_key: row.opt_text(6)?,
            notified_at: row.opt_text(7)?,
            created_at: row.text(8)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(count("videos"), SEED_VIDEO_COUNT as i64);
        assert_eq!(count("products"), SEED_PRODUCTS.len() as i64);
        assert_eq!(
            count("placements"),
            (SEED_VIDEO_COUNT * (1 + CATALOGUE_PLACEMENTS_PER_VIDEO)) as i64
        );
    }
}
