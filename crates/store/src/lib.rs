//! A durable embedded trace store with indexes, span metrics, service graph and trace integrity.
//!
//! [`api`] is the boundary every other crate uses: the collector writes through [`SpanSink`],
//! the query API, the APM and `throughline verify` read through [`TraceReader`].

pub mod api;

pub use api::*;

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
