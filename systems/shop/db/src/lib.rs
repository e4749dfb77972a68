//! What the shop's services share, and nothing a second system would need: which database
//! (`DATABASE_URL`: SQLite or PostgreSQL, [`database`]), the schema
//! and its seed ([`schema`]), the bounded connection pool with a wait time ([`pool`]), the
//! Black Friday clock ([`demo`]), the shop's own attribute and log names ([`names`]), and how a
//! shop service starts as a process ([`process`]: `demo.phase` on every span of a demo).

pub mod database;
pub mod demo;
pub mod names;
pub mod pool;
pub mod process;
pub mod schema;

pub use database::{Database, DatabaseConfigError, Postgres};
pub use demo::{DemoClock, DemoConfigError, DemoFieldError, DemoRequest, Phase};
pub use pool::{Pool, PoolExhausted, PooledConnection};
pub use schema::{OpenError, open_sqlite, seed_products};

/// `sqlite:PATH` (or a bare path) as a file path; `None` for other schemes.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        return Some(rest.into());
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        return Some(rest.into());
    }
    if url.contains("://") {
        return None;
    }
    Some(url.into())
}
