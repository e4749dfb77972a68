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

pub use database::{Database, DatabaseConfigError, Postgres, database_from_env, postgres_pool};
pub use demo::{DemoClock, DemoConfigError, DemoFieldError, DemoRequest, Phase};
pub use pool::{Pool, PoolExhausted, PooledConnection};
pub use schema::{OpenError, open_sqlite, seed_products};
