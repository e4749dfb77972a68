//! A durable embedded trace store with indexes, span metrics, service graph and trace integrity.
//!
//! [`api`] is the boundary every other crate uses: the collector writes through [`SpanSink`],
//! the query API, the APM and `throughline verify` read through [`TraceReader`]. [`Store`] is
//! the implementation; open it with [`Store::open`]`(`[`StoreConfig::new`]`(dir))`, share it as
//! `Arc<Store>`, call [`Store::maintain`] every few seconds (so that idle traces settle and
//! retention runs without writes) and [`Store::close`] (or drop it) on shutdown.
//!
//! # Design
//!
//! - **Log of blocks.** Each `write_traces` becomes one record appended to the newest
//!   *segment* file: a small header (arrival time, start-time range, services) and a
//!   LZ4-compressed body holding each resource and scope once and every span's protobuf
//!   bytes beside its trace id. Records carry a length and a crc32; a torn last record is cut
//!   off at open. Segments are sealed at [`StoreConfig::segment_max_bytes`]; a sealed segment
//!   gets an index file (its block list and sorted trace index) so opening does not decompress.
//! - **Durability.** `write_traces` returns after the record is written with one `write(2)`:
//!   it survives `kill -9`. With [`StoreConfig::sync_writes`] each write is also
//!   `fdatasync`ed, which covers power loss and kernel crashes (at a cost per write).
//! - **Indexes in memory.** Trace id → blocks (a hash map for the head segment, sorted arrays
//!   for sealed ones: 12 bytes per trace and block); per block its start-time range and services,
//!   which is what a search by service and time needs. Tag, operation and duration filters are
//!   applied to the spans of candidate blocks, newest first, until the limit is met.
//! - **Derived at ingest.** Span metrics (cumulative per service, span name, kind and status,
//!   and per minute for RED charts), the service graph (per minute) and trace integrity are
//!   updated under the write lock. They are checkpointed (every
//!   [`StoreConfig::checkpoint_interval_secs`], at each seal and on close) with the log position
//!   they cover; opening replays only the records after it, so each span counts exactly once.
//! - **Retention.** Whole segments are deleted when their newest data arrived more than
//!   [`StoreConfig::retention_secs`] ago, or oldest first while the segment files exceed
//!   [`StoreConfig::max_disk_bytes`]. Per-minute series older than the retention are pruned;
//!   cumulative span metrics never shrink.
//! - **Logs and metrics** exports are kept raw (compressed) with their arrival time in the same
//!   log; [`Store::logs`] reads logs back. Metrics are also decoded into an in-memory series
//!   index ([`otlp_metrics`]), rebuilt from the log at open: [`Store::metric_series`] answers a
//!   [`MetricQuery`] with rates for counters and percentiles for histograms.
//!
//! # Query semantics
//!
//! - [`TraceQuery`]: `service`, `operation`, `tags`, the time range and the duration range
//!   must all hold for *one span* of the trace (as Jaeger): the span's start is in the range,
//!   its own duration is in the duration range, and each tag is one of its attributes or of its
//!   resource's (values compared as strings; `error=true` matches spans with an error status).
//!   `errors_only` asks for that span to have an error status. `incomplete_only` lists traces
//!   judged [`TraceIntegrity::Incomplete`] (not the ones still settling). A `limit` of 0 means
//!   [`DEFAULT_LIMIT`]. Results are most recent first by trace start.
//! - Integrity: a trace is [`TraceIntegrity::Settling`] until
//!   [`StoreConfig::settle_secs`] have passed since its *last* span arrived; then it is judged
//!   (root present, every parent arrived). Late spans re-judge it from everything stored.
//! - Service graph: a CLIENT/PRODUCER span pairs with the SERVER/CONSUMER span whose parent is
//!   it, or which links to it, whatever the arrival order, within the settle time; each client
//!   pairs once, its own child first; a producer pairs with its CONSUMER children once per
//!   consumer service (a fan-out to several queues is an edge to each service, a second child in
//!   one service a redelivery); so every message counts once on each edge (a batch span linking
//!   to several messages takes none from their CONSUMER spans). Edges carry the connector's
//!   [`ConnectionType`] (messaging when a PRODUCER or CONSUMER takes part). A client
//!   span with `db.system.name`/`db.system` is an edge to a database node (`system/namespace`)
//!   at once; a client or producer left unpaired after the settle time becomes an edge to a
//!   messaging node (`system/destination`) or an external node (`peer.service`,
//!   `service.peer.name` or `server.address`). Edge latency is the server's (the client's for
//!   virtual nodes). Time series are bucketed by span start, at one-minute resolution.

pub mod api;
mod block;
mod catalog;
mod checkpoint;
pub mod database;
mod derived;
pub mod encoded;
pub mod errors;
mod facts;
mod findings;
mod graph;
mod integrity;
pub mod limits;
pub mod logs;
mod metrics;
pub mod otlp_metrics;
mod query;
mod sealed;
pub mod segment;
pub mod statement;
mod store;
#[cfg(any(test, feature = "testdata"))]
pub mod testdata;

pub use api::*;
pub use database::{DatabaseQuery, DatabaseReport};
pub use errors::{ErrorGroup, ErrorQuery, ErrorSpan, SpanError, error_spans, span_error};
pub use facts::{UNKNOWN_SERVICE, service_name_of, value_string};
pub use findings::FindingsConfig;
pub use logs::{DEFAULT_LOG_LIMIT, LogQuery, Severity, StoredLog};
pub use otlp_metrics::{MetricKind, MetricPoint, MetricQuery, MetricSeries};
pub use query::{DEFAULT_LIMIT, summarize_trace};
pub use store::{Store, StoreConfig};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the store's files failed; the cause is the `source`.
    #[error("store i/o failed")]
    Io(#[from] std::io::Error),
    /// A record in the store's files does not read back as it was written (a bad block or
    /// protobuf); the cause is the `source`.
    #[error("a stored record is corrupt")]
    CorruptRecord(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
}

impl StoreError {
    pub(crate) fn corrupt(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::CorruptRecord(Box::new(err))
    }
}
