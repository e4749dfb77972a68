//! The customer table in PostgreSQL, through a `sqlx` connection pool.
//!
//! The URL's password never leaves this module: errors and span attributes carry the redacted
//! URL, the database name, the host and the port only.

use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Row};

use super::{Customer, CustomerStoreError, DatabaseTarget, NewCustomer};
use crate::config::PostgresConfig;
use crate::names;

/// The PostgreSQL form of [`super::SCHEMA`]: the same columns, PostgreSQL types.
pub use onboarding_db::schema::CUSTOMERS_POSTGRES as SCHEMA;
/// Key of the advisory lock held while creating tables, shared with `onboarding-lambda`.
pub use onboarding_db::schema::SCHEMA_LOCK_KEY;

/// SQLSTATE `unique_violation`: the customer id is taken.
const UNIQUE_VIOLATION: &str = "23505";

const INSERT: &str = "INSERT INTO customers (customer_id, email, name, customer_type, company_size,
                                            status, request_id, trace_id, created_at, updated_at)
                      VALUES ($1, $2, $3, $4, $5, 'received', $6, $7, $8, $8)";

const SELECT: &str = "SELECT customer_id, email, name, customer_type, company_size, status,
                             status_detail, risk_score, attempts, request_id, trace_id,
                             created_at, updated_at
                      FROM customers WHERE customer_id = $1";

/// The PostgreSQL customer store: a pool of connections, each with its prepared statements.
#[derive(Debug, Clone)]
pub struct PostgresCustomers {
    pool: PgPool,
    /// The URL with its password redacted, for messages.
    url: Arc<str>,
    target: DatabaseTarget,
}

impl PostgresCustomers {
    /// Connects once (so a bad URL, host, user or database stops start-up with the server's own
    /// reason), creates the table when missing, then opens the pool.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, CustomerStoreError> {
        let url: Arc<str> = config.redacted_url.as_str().into();
        let connect_err = |source| CustomerStoreError::Connect {
            url: url.to_string(),
            source,
        };
        let options = config
            .connect_options()
            .map_err(connect_err)?
            .application_name("onboarding-api");
        let mut conn =
            tokio::time::timeout(config.connect_timeout, PgConnection::connect_with(&options))
                .await
                .map_err(|_| CustomerStoreError::ConnectTimeout {
                    url: url.to_string(),
                    timeout_ms: config.connect_timeout.as_millis() as u64,
                })?
                .map_err(connect_err)?;
        create_schema(&mut conn).await.map_err(connect_err)?;
        // Closing politely is a courtesy; a failure here changes nothing for the pool.
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout)
            // sqlx already pings a connection when it goes back to the pool; a second ping before
            // each use would add a round trip to every request. The price: a connection that dies
            // while idle (server restart) fails one request with a 503, then is dropped.
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        Ok(Self {
            pool,
            url,
            target: target(&options),
        })
    }

    fn error(&self, source: sqlx::Error) -> CustomerStoreError {
        CustomerStoreError::Postgres {
            url: self.url.to_string(),
            source,
        }
    }

    /// Inserts a new customer; a unique violation on the id is [`CustomerStoreError::Duplicate`].
    pub async fn insert(&self, c: NewCustomer) -> Result<(), CustomerStoreError> {
        let result = sqlx::query(INSERT)
            .bind(&c.customer_id)
            .bind(&c.email)
            .bind(&c.name)
            .bind(&c.customer_type)
            .bind(&c.company_size)
            .bind(&c.request_id)
            .bind(&c.trace_id)
            .bind(&c.created_at)
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(CustomerStoreError::Duplicate(c.customer_id)),
            Err(e) => Err(self.error(e)),
        }
    }

    pub async fn delete(&self, customer_id: &str) -> Result<(), CustomerStoreError> {
        sqlx::query("DELETE FROM customers WHERE customer_id = $1")
            .bind(customer_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub async fn get(&self, customer_id: &str) -> Result<Option<Customer>, CustomerStoreError> {
        let row = sqlx::query(SELECT)
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        row.map(|r| read_customer(&r))
            .transpose()
            .map_err(|e| self.error(e))
    }

    /// `SELECT 1` on a pooled connection, for `/health`.
    pub async fn ping(&self) -> Result<(), CustomerStoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub fn target(&self) -> &DatabaseTarget {
        &self.target
    }
}

/// Creates the table under the advisory lock, in one transaction.
async fn create_schema(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    sqlx::query(SCHEMA).execute(&mut *tx).await?;
    tx.commit().await
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == UNIQUE_VIOLATION)
}

fn read_customer(r: &PgRow) -> Result<Customer, sqlx::Error> {
    Ok(Customer {
        customer_id: r.try_get(0)?,
        email: r.try_get(1)?,
        name: r.try_get(2)?,
        customer_type: r.try_get(3)?,
        company_size: r.try_get(4)?,
        status: r.try_get(5)?,
        status_detail: r.try_get(6)?,
        risk_score: r.try_get(7)?,
        attempts: r.try_get(8)?,
        request_id: r.try_get(9)?,
        trace_id: r.try_get(10)?,
        created_at: r.try_get(11)?,
        updated_at: r.try_get(12)?,
    })
}

/// The span attributes' view of the options: the database (PostgreSQL's default is the user's
/// name) and the host, or the unix socket directory, with the port.
fn target(options: &PgConnectOptions) -> DatabaseTarget {
    let server_address = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_owned(),
    };
    DatabaseTarget {
        system: names::DB_SYSTEM_POSTGRESQL,
        namespace: Some(
            options
                .get_database()
                .unwrap_or(options.get_username())
                .to_owned(),
        ),
        server_address: Some(server_address),
        server_port: Some(options.get_port()),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn target_names_database_host_and_port_never_the_password() {
        let options = PgConnectOptions::from_str("postgres://u:secret@db.internal:6543/shop")
            .expect("a valid URL");
        let t = target(&options);
        assert_eq!(t.system, "postgresql");
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.server_address.as_deref(), Some("db.internal"));
        assert_eq!(t.server_port, Some(6543));
        assert!(!format!("{t:?}").contains("secret"));

        let options = PgConnectOptions::from_str("postgres://u@%2Fvar%2Frun%2Fpostgresql/")
            .expect("a socket URL");
        let t = target(&options);
        assert_eq!(t.namespace.as_deref(), Some("u"));
        assert_eq!(t.server_address.as_deref(), Some("/var/run/postgresql"));
    }
}
