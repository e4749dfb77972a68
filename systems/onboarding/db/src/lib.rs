//! The database both onboarding services share: `DATABASE_URL` parsed once ([`DatabaseConfig`],
//! each service passing its own [`DatabaseDefaults`]), the SQLite opener with the settings both
//! use ([`open_sqlite`]), and the `customers` table contract ([`schema`]).
//!
//! The password of `DATABASE_URL` never leaves this crate unredacted: `Debug`, `Display` and every
//! error show [`redact_password`]'s form; only [`PostgresConfig::connect_options`] sees it.

mod config;
pub mod schema;
mod sqlite;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_SQLITE_PATH, DatabaseConfig, DatabaseConfigError,
    DatabaseDefaults, PostgresConfig,
};
pub use sqlite::{SqliteOpenError, open_sqlite};
pub use throughline_service_kit::database::redact_password;
