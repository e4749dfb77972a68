//! Our own attribute keys and metric names (the standard ones come from
//! `opentelemetry-semantic-conventions`).

pub const CUSTOMER_ID: &str = "customer.id";
pub const CUSTOMER_TYPE: &str = "customer.type";
/// The delivery this is of the record (SQS `ApproximateReceiveCount`): > 1 on a redelivery.
pub const DELIVERY_ATTEMPT: &str = "onboarding.delivery_attempt";
/// The processing step a span stands for.
pub const STEP: &str = "onboarding.step";
/// The step that failed, on a failed record's CONSUMER span.
pub const FAILED_STEP: &str = "onboarding.failed_step";
pub const RISK_SCORE: &str = "onboarding.risk_score";
pub const RISK_LEVEL: &str = "onboarding.risk_level";
pub const COMPLIANCE_CHECK: &str = "compliance.check";
pub const COMPLIANCE_RESULT: &str = "compliance.result";
pub const COMPLIANCE_ENHANCED: &str = "compliance.enhanced_due_diligence";
pub const COMPLIANCE_CHECKS: &str = "compliance.check_count";
pub const DOCUMENT_COUNT: &str = "onboarding.document.count";
pub const DOCUMENT_BYTES: &str = "onboarding.document.bytes";
pub const NOTIFICATION_CHANNEL: &str = "notification.channel";
pub const NOTIFICATION_TEMPLATE: &str = "notification.template";
pub const FOLLOWUP_WORKFLOWS: &str = "onboarding.followup.workflow_count";
/// Records of a batch reported in `batchItemFailures`.
pub const BATCH_FAILURES: &str = "onboarding.batch.failure_count";

/// `db.system.name` of the shared SQLite file (a well-known value of the semantic conventions).
pub const DB_SYSTEM_SQLITE: &str = "sqlite";
/// `db.system.name` of a shared PostgreSQL database (a well-known value of the semantic
/// conventions).
pub const DB_SYSTEM_POSTGRESQL: &str = "postgresql";

/// Counter: records processed, by customer type and outcome (seed 002's
/// `lambda_processing_requests_total`).
pub const METRIC_PROCESSING_REQUESTS: &str = "lambda.processing.requests";
/// Counter: records processed successfully (seed 002's `lambda_processing_success_total`).
pub const METRIC_PROCESSING_SUCCESS: &str = "lambda.processing.success";
/// Histogram, seconds: processing time of a record by customer type.
pub const METRIC_PROCESSING_DURATION: &str = "lambda.processing.duration";
/// `success` or `failure`, on the processing metrics.
pub const OUTCOME: &str = "onboarding.outcome";
