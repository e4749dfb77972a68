//! Jaeger's JSON model and query parameters, the one home of both for throughline.
//!
//! - [`model`]: the `data`/`errors` [`Envelope`], [`Trace`]s with spans, references, tags, logs
//!   and processes, operations, dependency links and throughline's [`IntegrityReport`]; every type
//!   serializes as Jaeger's query service does and deserializes leniently (missing fields take
//!   their defaults), so the query API writes it and `throughline verify`/`load` read it.
//! - [`analysis`]: throughline's own findings, database and error-group answers and their
//!   query parameters.
//! - [`logs`]: the log search's parameters and items (`/api/throughline/logs`, the Logs page).
//! - [`otlp`]: stored OTLP spans in that model, as Jaeger's own OTLP translator maps them.
//! - [`params`]: the query-parameter parser of the Jaeger-compatible API and the APM pages
//!   (percent-decoding, Go durations, tags, ids, the time window, a whole search); every bad value
//!   is a [`ParamError`] naming its parameter.

pub mod analysis;
pub mod logs;
pub mod model;
pub mod otlp;
pub mod params;

pub use model::{
    DependencyLink, Envelope, ErrorBody, IntegrityReport, Log, Operation, Process, RefType,
    Reference, Span, Tag, Trace, ValueType,
};
pub use params::{ParamError, Params, SearchDefaults};
