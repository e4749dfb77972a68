//! OTLP receivers (gRPC and HTTP), the Jaeger-compatible query API and Prometheus metrics.
//!
//! [`Collector::start`] binds the OTLP/gRPC, OTLP/HTTP and query listeners over any
//! [`SpanSink`](throughline_store::SpanSink) / [`TraceReader`](throughline_store::TraceReader);
//! [`QueryServer`] is the query API alone, for embedding.

pub mod config_file;
pub mod export;
pub mod forward_only;
pub mod ingest;
pub mod lambda_extension;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod processors;
pub mod prometheus;
pub mod query;
pub mod self_metrics;
pub mod server;
pub mod tail_sampling;

pub use export::{Destination, ExportDefaults, ExportSettings, Exporter};
pub use forward_only::ForwardOnly;
pub use ingest::{Ingest, IngestError, IngestLimits};
pub use query::{QueryServer, SEARCH_DEFAULTS};
pub use self_metrics::{CollectorMetrics, RefusalReason, Signal};
pub use server::{
    Collector, CollectorConfig, Pipeline, RunningCollector, StartError, default_serve_config,
    otlp_router,
};
pub use throughline_jaeger::IntegrityReport;
