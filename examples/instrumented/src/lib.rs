//! Two small services written against `throughline-instrument`, each well under a hundred
//! lines of which almost all is business logic: an HTTP service that stores an order and
//! publishes an `OrderPlaced` event to EventBridge ([`http_service`]), and the SQS worker that a
//! rule feeds those events to ([`sqs_worker`]). `tests/spans.rs` runs them and checks that one
//! trace goes from the HTTP request through the event to the worker.

pub mod http_service;
pub mod sqs_worker;
