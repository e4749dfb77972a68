//! A host for the AWS Lambda Runtime API with an SQS event source mapping.
//!
//! [`EventSourceMapping`] polls one queue as Lambda's SQS event source mapping does and runs each
//! batch in an [`Environment`]: the real function process, started cold with the standard Lambda
//! environment and its own [`RuntimeApi`] on 127.0.0.1, reused warm, frozen (SIGSTOP) between
//! invocations and killed on timeout. Platform log lines (`START`, `END`, `REPORT`) go to a
//! [`PlatformLog`]. [`sqs_client::client_from_env`] builds the SQS client it polls with.

pub mod config;
pub mod environment;
pub mod mapping;
pub mod platform_log;
pub mod runtime_api;
pub mod sqs_client;
pub mod sqs_event;
pub mod telemetry_api;

pub use config::{ConfigError, HostConfig, RawHostConfig};
pub use environment::{Environment, EnvironmentSpec, InvocationOutcome, StartError};
pub use mapping::{EventSourceMapping, MappingError};
pub use platform_log::{LineContext, OtlpLog, PlatformLog, StdoutLog};
pub use runtime_api::RuntimeApi;
pub use sqs_event::{BatchFailure, BatchOutcome, EventSource};
