//! The database shared with onboarding-api, in the SQLite file or in PostgreSQL: the worker
//! appends to `audit_trail` and moves a customer's `status`.
//!
//! Both engines' tables are made sure of by the worker too (`customers`, whose contract is
//! `onboarding_db::schema`, and `audit_trail`), so it runs before the API or alone.
//!
//! PostgreSQL is reached through a small pool made at cold start without connecting; the first
//! use (or [`WorkerDatabase::connect`] at cold start) connects and creates the tables, and the
//! connection is reused by every later invocation of the environment. Messages carry the URL
//! with its password redacted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use onboarding_db::SqliteOpenError;
use onboarding_db::schema::{CUSTOMERS_POSTGRES, CUSTOMERS_SQLITE, SCHEMA_LOCK_KEY};
use sqlx::postgres::{PgPool, PgPoolOptions};
use throughline_instrument::DbTarget;
use tokio::sync::OnceCell;

use crate::config::{DatabaseConfig, PostgresConfig};
use crate::names::{DB_SYSTEM_POSTGRESQL, DB_SYSTEM_SQLITE};
use crate::open::OpenError;

const SQLITE_AUDIT_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit_trail (
    id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, request_id TEXT NOT NULL,
    event TEXT NOT NULL, attempt INTEGER NOT NULL, at TEXT NOT NULL)";

const POSTGRES_AUDIT_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit_trail (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id TEXT NOT NULL,
    request_id TEXT NOT NULL, event TEXT NOT NULL, attempt BIGINT NOT NULL, at TEXT NOT NULL)";

/// A customer's new status, as the status step or a failed attempt records it.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub customer_id: String,
    pub status: &'static str,
    pub detail: Option<String>,
    /// Kept as it was when `None`.
    pub risk_score: Option<f64>,
    /// `attempts` only grows: it becomes the larger of this and what is stored.
    pub attempt: i64,
    pub updated_at: String,
}

/// The worker's side of the shared database.
#[derive(Debug)]
pub enum WorkerDatabase {
    Sqlite {
        conn: Arc<Mutex<rusqlite::Connection>>,
        path: PathBuf,
    },
    Postgres(PostgresDatabase),
}

/// A PostgreSQL pool and whether `audit_trail` was made sure of.
#[derive(Debug)]
pub struct PostgresDatabase {
    pool: PgPool,
    /// The URL with its password redacted, for messages.
    url: String,
    schema: OnceCell<()>,
    target: DbTarget,
    connect_timeout: std::time::Duration,
}

impl WorkerDatabase {
    /// Opens the SQLite file (blocking) or makes the PostgreSQL pool (no I/O: nothing connects
    /// until [`Self::connect`] or the first query).
    pub fn open(config: &DatabaseConfig) -> Result<Self, OpenError> {
        match config {
            DatabaseConfig::Sqlite(path) => Ok(Self::Sqlite {
                conn: Arc::new(Mutex::new(open_sqlite(path)?)),
                path: path.clone(),
            }),
            DatabaseConfig::Postgres(pg) => Ok(Self::Postgres(PostgresDatabase::new(pg)?)),
        }
    }

    /// Connects now and creates `audit_trail` when missing (PostgreSQL; SQLite did it on open),
    /// so an unreachable database stops the cold start instead of failing the first records.
    pub async fn connect(&self) -> Result<(), OpenError> {
        match self {
            Self::Sqlite { .. } => Ok(()),
            // sqlx retries a refused connection until the deadline, then says only that.
            Self::Postgres(pg) => pg.ensure_schema().await.map_err(|source| match source {
                sqlx::Error::PoolTimedOut => OpenError::ConnectTimeout {
                    url: pg.url.clone(),
                    timeout_ms: pg.connect_timeout.as_millis() as u64,
                },
                source => OpenError::Connect {
                    url: pg.url.clone(),
                    source,
                },
            }),
        }
    }

    /// What the database's spans name: `db.system.name`, and for PostgreSQL `db.namespace`,
    /// `server.address`, `server.port`.
    pub fn target(&self) -> DbTarget {
        match self {
            Self::Sqlite { .. } => DbTarget::new(DB_SYSTEM_SQLITE),
            Self::Postgres(pg) => pg.target.clone(),
        }
    }

    /// Appends one `onboarding_processed` row to `audit_trail`.
    pub async fn insert_audit(
        &self,
        customer_id: String,
        request_id: String,
        attempt: i64,
        at: String,
    ) -> Result<(), String> {
        match self {
            Self::Sqlite { conn, .. } => {
                let conn = conn.clone();
                blocking(move || {
                    // A poisoned lock only means another step panicked; the connection is usable.
                    let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    // Cached: the statement is parsed once per environment, not per record.
                    conn.prepare_cached(
                        "INSERT INTO audit_trail (customer_id, request_id, event, attempt, at)
                         VALUES (?1, ?2, 'onboarding_processed', ?3, ?4)",
                    )
                    .and_then(|mut insert| {
                        insert.execute(rusqlite::params![customer_id, request_id, attempt, at])
                    })
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                })
                .await
            }
            Self::Postgres(pg) => {
                pg.ensure_schema().await.map_err(|e| pg.message(e))?;
                sqlx::query(
                    "INSERT INTO audit_trail (customer_id, request_id, event, attempt, at)
                     VALUES ($1, $2, 'onboarding_processed', $3, $4)",
                )
                .bind(customer_id)
                .bind(request_id)
                .bind(attempt)
                .bind(at)
                .execute(&pg.pool)
                .await
                .map(|_| ())
                .map_err(|e| pg.message(e))
            }
        }
    }

    /// Moves a customer's status; an error when there is no such customer.
    pub async fn update_status(&self, update: StatusUpdate) -> Result<(), String> {
        match self {
            Self::Sqlite { conn, path } => {
                let (conn, path) = (conn.clone(), path.clone());
                blocking(move || {
                    let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    let n = conn
                        .prepare_cached(
                            "UPDATE customers SET status = ?1, status_detail = ?2,
                                    risk_score = COALESCE(?3, risk_score),
                                    attempts = MAX(attempts, ?4), updated_at = ?5
                             WHERE customer_id = ?6",
                        )
                        .and_then(|mut update_row| {
                            update_row.execute(rusqlite::params![
                                update.status,
                                update.detail,
                                update.risk_score,
                                update.attempt,
                                update.updated_at,
                                update.customer_id
                            ])
                        })
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err(format!(
                            "no customer {} in {}",
                            update.customer_id,
                            path.display()
                        ));
                    }
                    Ok(())
                })
                .await
            }
            Self::Postgres(pg) => {
                pg.ensure_schema().await.map_err(|e| pg.message(e))?;
                let done = sqlx::query(
                    "UPDATE customers SET status = $1, status_detail = $2,
                            risk_score = COALESCE($3, risk_score),
                            attempts = GREATEST(attempts, $4), updated_at = $5
                     WHERE customer_id = $6",
                )
                .bind(update.status)
                .bind(update.detail)
                .bind(update.risk_score)
                .bind(update.attempt)
                .bind(update.updated_at)
                .bind(&update.customer_id)
                .execute(&pg.pool)
                .await
                .map_err(|e| pg.message(e))?;
                if done.rows_affected() == 0 {
                    return Err(format!("no customer {} in {}", update.customer_id, pg.url));
                }
                Ok(())
            }
        }
    }
}

impl PostgresDatabase {
    fn new(config: &PostgresConfig) -> Result<Self, OpenError> {
        let options = config
            .connect_options()
            .map_err(|source| OpenError::Connect {
                url: config.redacted_url.clone(),
                source,
            })?
            .application_name("onboarding-lambda");
        let server_address = match options.get_socket() {
            Some(dir) => dir.display().to_string(),
            None => options.get_host().to_owned(),
        };
        let namespace = options
            .get_database()
            .unwrap_or(options.get_username())
            .to_owned();
        let target = DbTarget::new(DB_SYSTEM_POSTGRESQL)
            .namespace(namespace)
            .server(server_address, Some(options.get_port()));
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout)
            // No background reaper: nothing is spawned (no runtime needed here), and a frozen
            // Lambda environment could not run it anyway. The ping before each use (on by
            // default) replaces a connection that died while the environment was frozen.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            url: config.redacted_url.clone(),
            schema: OnceCell::new(),
            target,
            connect_timeout: config.connect_timeout,
        })
    }

    /// Creates `customers` (the contract with onboarding-api, which may not have started) and
    /// `audit_trail` once per environment, under the advisory lock the API holds for its own.
    async fn ensure_schema(&self) -> Result<(), sqlx::Error> {
        self.schema
            .get_or_try_init(|| async {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SCHEMA_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(CUSTOMERS_POSTGRES).execute(&mut *tx).await?;
                sqlx::query(POSTGRES_AUDIT_SCHEMA).execute(&mut *tx).await?;
                tx.commit().await
            })
            .await
            .map(|_| ())
    }

    fn message(&self, e: sqlx::Error) -> String {
        format!("{}: {e}", self.url)
    }
}

/// Opens the shared file with the settings both services use and creates `customers` (the
/// contract with onboarding-api, so a worker started before the API or without it finds the
/// table, and a record of a customer the API never stored fails as "no customer", not "no such
/// table") and `audit_trail`.
fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, OpenError> {
    let conn = onboarding_db::open_sqlite(path, CUSTOMERS_SQLITE).map_err(|e| match e {
        SqliteOpenError::Directory { path, source } => OpenError::Directory { path, source },
        SqliteOpenError::Database { path, source } => OpenError::Database { path, source },
    })?;
    conn.execute(SQLITE_AUDIT_SCHEMA, [])
        .map_err(|source| OpenError::Database {
            path: path.to_owned(),
            source,
        })?;
    Ok(conn)
}

async fn blocking(f: impl FnOnce() -> Result<(), String> + Send + 'static) -> Result<(), String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}
