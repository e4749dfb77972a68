//! The shop's own span attribute keys and log event names, as seed 003 spells them (its Flow
//! Alerts match on them), in one place. The conventions' keys come from
//! `opentelemetry-semantic-conventions` where they are used.

/// `demo.phase`: the Black Friday phase a span ran in.
pub const DEMO_PHASE: &str = "demo.phase";

/// The category query passed the slow threshold.
pub const DB_SLOW_QUERY: &str = "db.slow_query";
/// The query read the whole table (measured: SQLite's full-scan step counter).
pub const DB_FULL_TABLE_SCAN: &str = "db.full_table_scan";
/// The index the query would have used.
pub const DB_MISSING_INDEX: &str = "db.missing_index";
/// Rows the scan stepped through.
pub const DB_ROWS_SCANNED: &str = "db.rows_scanned";

/// No connection came free within the pool's wait time.
pub const POOL_EXHAUSTED: &str = "db.connection.pool.exhausted";
/// Connections in the pool.
pub const POOL_SIZE: &str = "db.connection.pool.size";
/// How long the checkout waited for a connection.
pub const POOL_WAIT_TIME_MS: &str = "db.connection.pool.wait_time_ms";

pub const ORDER_ID: &str = "order.id";
pub const ORDER_TOTAL: &str = "order.total";
pub const USER_ID: &str = "user.id";
pub const CHECKOUT_ITEMS: &str = "checkout.items";
pub const CHECKOUT_FAILED: &str = "checkout.failed";
pub const CHECKOUT_FAILURE_REASON: &str = "checkout.failure_reason";
pub const CHECKOUT_CART_ABANDONED: &str = "checkout.cart_abandoned";
/// The revenue a failed checkout lost.
pub const CHECKOUT_TOTAL: &str = "checkout.total";

pub const USER_JOURNEY: &str = "user.journey";
pub const USER_SESSION_ID: &str = "user.session_id";
pub const PRODUCT_CATEGORY: &str = "product.category";
pub const PRODUCT_ID: &str = "product.id";

/// The failure reason of a checkout that got no connection.
pub const POOL_EXHAUSTED_REASON: &str = "ConnectionPoolExhausted";
/// The index the category query needs.
pub const CATEGORY_INDEX: &str = "idx_products_category";

/// Log events (the `message` of the JSON line).
pub const LOG_SLOW_QUERY: &str = "demo_slow_query_triggered";
pub const LOG_POOL_EXHAUSTION: &str = "demo_pool_exhaustion";
pub const LOG_CHECKOUT_FAILED: &str = "demo_checkout_failed";
pub const LOG_ORDER_CREATED: &str = "order_created";
