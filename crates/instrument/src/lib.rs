//! The span shape of every kind of hop, in one place: what a service calls so that the trace
//! never breaks between it and its neighbours.
//!
//! - [`http_server`]: a tower layer for axum (or any tower) servers: the SERVER span with the
//!   HTTP conventions, the caller's context extracted, `traceresponse` added, health checks left
//!   untraced.
//! - [`http_client`]: a reqwest call under a CLIENT span, the context injected into its headers.
//! - [`messaging`]: the PRODUCER span of an SQS send or an EventBridge `PutEvents`, the context
//!   injected through `throughline-carriers` (the SQS 10-attribute rule and the EventBridge
//!   `detail._trace` field included), and the operation that ran recorded when it is known.
//! - [`lambda_sqs`]: the Lambda SQS batch consumer: invocation SERVER span with `faas.*`, batch
//!   span linking every record, a CONSUMER span per record (child of or linked to its producer),
//!   `batchItemFailures`, and the bounded flush before the invocation returns.
//! - [`db`]: the CLIENT span of a database call with the current conventions, the opt-in SQL
//!   commenter, and `OTEL_SEMCONV_STABILITY_OPT_IN=database/dup`.
//! - [`aws_metrics`]: the `AWS/Lambda` and `AWS/SQS` metrics CloudWatch reports, as OpenTelemetry
//!   instruments the Lambda host and the broker record (names, units and the mapping in one place).
//! - [`span`]: [`ActiveSpan`], the handle every helper returns (ends its span when dropped), and
//!   [`Spans`] for a service's own INTERNAL spans.
//!
//! Every helper takes its tracer from the caller (the global one in a service, a test provider
//! in tests) and the propagator from the global one (`opentelemetry::global`), which
//! `throughline-telemetry` installs from `OTEL_PROPAGATORS`.

pub mod aws_metrics;
pub mod db;
pub mod http_client;
pub mod http_server;
pub mod lambda_sqs;
pub mod messaging;
pub mod span;

pub use db::{DbClient, DbOperation, DbSemconv, DbTarget, SqlCommenter};
pub use http_client::HttpClient;
pub use http_server::{ErrorType, HttpServerFuture, HttpServerLayer, HttpServerService};
pub use lambda_sqs::{
    ConsumerContext, FlushFn, Invocation, RecordCarrier, RecordError, SqsBatchConsumer, SqsRecord,
};
pub use messaging::{EventBridgeProducer, SendOperation, SendReceipt, SqsProducer};
pub use span::{ActiveSpan, Spans};

/// A tracer shared by the helpers that hold one.
pub type SharedTracer = std::sync::Arc<opentelemetry::global::BoxedTracer>;
