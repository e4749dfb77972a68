//! Our own attribute keys and metric names (the standard ones come from
//! `opentelemetry-semantic-conventions`).

/// The customer's opaque id (seed 000's `customer.id`). Not personal data; the email is.
pub const CUSTOMER_ID: &str = "customer.id";
/// `standard`, `premium` or `enterprise`.
pub const CUSTOMER_TYPE: &str = "customer.type";
/// The id the API gives each accepted request (seed 000's `request_id`).
pub const ONBOARDING_REQUEST_ID: &str = "onboarding.request_id";
/// `accepted`, `invalid`, `duplicate`, `unavailable`: what became of a request.
pub const ONBOARDING_OUTCOME: &str = "onboarding.outcome";

/// `db.system.name` of the SQLite store (a well-known value of the semantic conventions).
pub const DB_SYSTEM_SQLITE: &str = "sqlite";
/// `db.system.name` of the PostgreSQL store (a well-known value of the semantic conventions).
pub const DB_SYSTEM_POSTGRESQL: &str = "postgresql";

/// Counter: every `POST /onboard` (seed 002's `onboarding_requests_total`).
pub const METRIC_REQUESTS: &str = "onboarding.requests";
/// Counter: accepted requests (seed 002's `onboarding_success_total`).
pub const METRIC_SUCCESS: &str = "onboarding.success";
/// Histogram, seconds: request duration by customer type (seed 002's `onboarding_duration_seconds`).
pub const METRIC_DURATION: &str = "onboarding.duration";
