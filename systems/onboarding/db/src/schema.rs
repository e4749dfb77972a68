//! The `customers` table: the contract between onboarding-api (which inserts customers) and
//! onboarding-lambda (which moves their `status`), in its SQLite and PostgreSQL forms.

/// The table both services use. `status` moves `received` → `processing` → `completed`, or to
/// `failed` when a step failed (the record is redelivered, so it may move on again).
pub const CUSTOMERS_SQLITE: &str = "
CREATE TABLE IF NOT EXISTS customers (
    customer_id   TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    customer_type TEXT NOT NULL,
    company_size  TEXT,
    status        TEXT NOT NULL,
    status_detail TEXT,
    risk_score    REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    request_id    TEXT NOT NULL,
    trace_id      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
)";

/// The PostgreSQL form of [`CUSTOMERS_SQLITE`]: the same columns, PostgreSQL types.
pub const CUSTOMERS_POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS customers (
    customer_id   TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    customer_type TEXT NOT NULL,
    company_size  TEXT,
    status        TEXT NOT NULL,
    status_detail TEXT,
    risk_score    DOUBLE PRECISION,
    attempts      BIGINT NOT NULL DEFAULT 0,
    request_id    TEXT NOT NULL,
    trace_id      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
)";

/// Key of the PostgreSQL advisory lock both services hold while creating tables: concurrent
/// `CREATE TABLE IF NOT EXISTS` can otherwise fail on PostgreSQL's catalog.
pub const SCHEMA_LOCK_KEY: i64 = 0x7468_726f_7567_6800; // "through\0"
