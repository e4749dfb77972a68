//! A durable embedded trace store with indexes, span metrics, service graph and trace integrity.
//!
//! [`api`] is the boundary every other crate uses: the collector writes through [`SpanSink`],
//! the query API, the APM and `throughline verify` read through [`TraceReader`]. [`Store`] is
//! the implementation: append-only segment files of compressed span blocks (see `block`), a
//! trace index and derived state in memory, checkpointed and rebuilt from the log on open.

pub mod api;
mod block;
mod checkpoint;
mod derived;
mod facts;
mod graph;
mod integrity;
mod metrics;
mod query;
mod segment;
mod store;
pub mod testdata;

pub use api::*;
pub use facts::UNKNOWN_SERVICE;
pub use query::DEFAULT_LIMIT;
pub use store::{Store, StoreConfig};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("store database: {0}")]
    Database(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
}
