//! The customer table, in an embedded SQLite file (the default) or in PostgreSQL when
//! `DATABASE_URL` names one. [`CustomerStore`] is the one type the routes use; each backend
//! lives in its own module.
//!
//! The worker (`onboarding-lambda`) opens the same database to move a customer's `status` as it
//! processes the record: [`SCHEMA`] and [`postgres::SCHEMA`] are the contract between the two.

pub mod postgres;
pub mod sqlite;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::DatabaseConfig;
use crate::names;

pub use postgres::PostgresCustomers;
pub use sqlite::{SCHEMA, SqliteCustomers, open_connection};

/// A customer to insert.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub customer_id: String,
    pub email: String,
    pub name: String,
    pub customer_type: String,
    pub company_size: Option<String>,
    pub request_id: String,
    pub trace_id: String,
    pub created_at: String,
}

/// A customer as `GET /customers/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub customer_id: String,
    pub email: String,
    pub name: String,
    #[serde(rename = "type")]
    pub customer_type: String,
    pub company_size: Option<String>,
    pub status: String,
    pub status_detail: Option<String>,
    pub risk_score: Option<f64>,
    pub attempts: i64,
    pub request_id: String,
    pub trace_id: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Why a store operation failed. PostgreSQL errors name the URL with its password redacted.
#[derive(Debug, thiserror::Error)]
pub enum CustomerStoreError {
    #[error("customer {0:?} already exists")]
    Duplicate(String),
    #[error("customer database {path}")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A group commit failed; every request in it gets the same message.
    #[error("customer database {path}: {message}")]
    Batch { path: PathBuf, message: String },
    #[error("customer database {0}: the writer thread has stopped")]
    WriterGone(PathBuf),
    #[error("customer database {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// PostgreSQL could not be reached, or refused us, at start-up.
    #[error("DATABASE_URL {url}: cannot open the customer database")]
    Connect { url: String, source: sqlx::Error },
    /// PostgreSQL did not answer within `DATABASE_CONNECT_TIMEOUT_MS` at start-up.
    #[error(
        "DATABASE_URL {url}: cannot open the customer database: no answer within {timeout_ms} ms"
    )]
    ConnectTimeout { url: String, timeout_ms: u64 },
    #[error("customer database {url}")]
    Postgres { url: String, source: sqlx::Error },
}

/// What a database CLIENT span says about where the customers are (the semantic conventions'
/// `db.system.name`, `db.namespace`, `server.address`, `server.port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseTarget {
    /// [`names::DB_SYSTEM_SQLITE`] or [`names::DB_SYSTEM_POSTGRESQL`].
    pub system: &'static str,
    pub namespace: Option<String>,
    /// A host name or address, or a unix socket's path.
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
}

impl DatabaseTarget {
    fn sqlite() -> Self {
        Self {
            system: names::DB_SYSTEM_SQLITE,
            namespace: None,
            server_address: None,
            server_port: None,
        }
    }
}

/// The customer store the routes use: SQLite (one writer thread, group commits) or PostgreSQL
/// (a connection pool). Cheap to clone.
#[derive(Debug, Clone)]
pub enum CustomerStore {
    Sqlite(SqliteCustomers),
    Postgres(PostgresCustomers),
}

impl CustomerStore {
    /// Opens the database `config` names and creates the table when missing. PostgreSQL is
    /// connected to now, so an unreachable server stops start-up.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, CustomerStoreError> {
        match config {
            DatabaseConfig::Sqlite(path) => {
                let owned = path.clone();
                tokio::task::spawn_blocking(move || SqliteCustomers::open(&owned))
                    .await
                    .map_err(|e| CustomerStoreError::Io {
                        path: path.clone(),
                        source: std::io::Error::other(e),
                    })?
                    .map(Self::Sqlite)
            }
            DatabaseConfig::Postgres(pg) => {
                PostgresCustomers::connect(pg).await.map(Self::Postgres)
            }
        }
    }

    /// Inserts a new customer; [`CustomerStoreError::Duplicate`] when the id exists.
    pub async fn insert(&self, customer: NewCustomer) -> Result<(), CustomerStoreError> {
        match self {
            Self::Sqlite(s) => s.insert(customer).await,
            Self::Postgres(p) => p.insert(customer).await,
        }
    }

    /// Removes a customer whose message could not be queued, so the client may retry.
    pub async fn delete(&self, customer_id: String) -> Result<(), CustomerStoreError> {
        match self {
            Self::Sqlite(s) => s.delete(customer_id).await,
            Self::Postgres(p) => p.delete(&customer_id).await,
        }
    }

    pub async fn get(&self, customer_id: String) -> Result<Option<Customer>, CustomerStoreError> {
        match self {
            Self::Sqlite(s) => s.get(customer_id).await,
            Self::Postgres(p) => p.get(&customer_id).await,
        }
    }

    /// A cheap query that proves the database answers, for `/health`.
    pub async fn ping(&self) -> Result<(), CustomerStoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(p) => p.ping().await,
        }
    }

    /// Where the customers are, for the attributes of database spans.
    pub fn target(&self) -> DatabaseTarget {
        match self {
            Self::Sqlite(_) => DatabaseTarget::sqlite(),
            Self::Postgres(p) => p.target().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_reads_each_cause_once() {
        let errors = [
            CustomerStoreError::Io {
                path: PathBuf::from("/data/db.sqlite3"),
                source: std::io::Error::other("disk on fire"),
            },
            CustomerStoreError::Postgres {
                url: "postgres://app:***@db/shop".to_owned(),
                source: sqlx::Error::Protocol("disk on fire".to_owned()),
            },
        ];
        for e in &errors {
            let chain = throughline_service_kit::ErrorChain(e).to_string();
            assert_eq!(chain.matches("disk on fire").count(), 1, "{chain}");
        }
    }
}
