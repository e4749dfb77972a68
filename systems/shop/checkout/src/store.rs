//! The checkout's database, SQLite or PostgreSQL, behind a bounded connection pool (a checkout
//! waits the pool's wait time at most): an order and all its lines in one transaction (or
//! nothing), each statement under its database CLIENT span; and reading an order back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use shop_db::schema::{ORDERS, ORDERS_POSTGRES};
use shop_db::{Database, Pool, PoolExhausted, PooledConnection};
use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};
use throughline_instrument::{DbClient, DbOperation};

/// The same statements in PostgreSQL's placeholders.
pub const INSERT_ORDER_POSTGRES: &str = "INSERT INTO orders (id, user_id, total_cents, created_at, trace_id) VALUES ($1, $2, $3, $4, $5)";
pub const INSERT_LINE_POSTGRES: &str = "INSERT INTO order_lines (order_id, line, product_id, quantity, price_cents) VALUES ($1, $2, $3, $4, $5)";
const SELECT_ORDER_POSTGRES: &str =
    "SELECT id, user_id, total_cents, created_at FROM orders WHERE id = $1";
const SELECT_LINES_POSTGRES: &str =
    "SELECT product_id, quantity, price_cents FROM order_lines WHERE order_id = $1 ORDER BY line";

use crate::CheckoutConfig;

pub const INSERT_ORDER_SQL: &str = "INSERT INTO orders (id, user_id, total_cents, created_at, trace_id) VALUES (?1, ?2, ?3, ?4, ?5)";
pub const INSERT_LINE_SQL: &str = "INSERT INTO order_lines (order_id, line, product_id, quantity, price_cents) VALUES (?1, ?2, ?3, ?4, ?5)";
pub const SELECT_ORDER_SQL: &str =
    "SELECT id, user_id, total_cents, created_at FROM orders WHERE id = ?1";
pub const SELECT_LINES_SQL: &str =
    "SELECT product_id, quantity, price_cents FROM order_lines WHERE order_id = ?1 ORDER BY line";

/// Why an order could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the order database")]
    Open(#[source] shop_db::OpenError),
    #[error("order database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("order database")]
    Postgres(#[source] sqlx::Error),
    #[error(transparent)]
    Exhausted(#[from] PoolExhausted),
    #[error("the database task stopped")]
    Task(#[source] tokio::task::JoinError),
}

/// An order to write.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: String,
    pub user_id: String,
    pub total_cents: i64,
    pub created_at: String,
    pub trace_id: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Line {
    pub product_id: i64,
    pub quantity: i64,
    pub price_cents: i64,
}

/// An order as `GET /orders/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub total_cents: i64,
    pub created_at: String,
    pub lines: Vec<Line>,
}

/// A checked-out connection of either engine.
#[derive(Debug)]
pub enum Connection {
    Sqlite(PooledConnection),
    Postgres(PoolConnection<Postgres>),
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite {
        pool: Pool,
        path: PathBuf,
    },
    Postgres {
        pool: PgPool,
        size: usize,
        wait: Duration,
    },
}

/// The order database (cheap to clone).
#[derive(Debug, Clone)]
pub struct OrderStore {
    backend: Backend,
}

impl OrderStore {
    /// Opens the database, its tables and the pool's connections.
    pub async fn open(config: &CheckoutConfig) -> Result<Self, StoreError> {
        let (size, wait) = (config.pool_size, config.pool_wait);
        let backend = match &config.database {
            Database::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let connections = (0..size)
                        .map(|_| shop_db::open_sqlite(&path, ORDERS))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(StoreError::Open)?;
                    Ok::<_, StoreError>(Backend::Sqlite {
                        pool: Pool::new(connections, wait),
                        path,
                    })
                })
                .await
                .map_err(StoreError::Task)??
            }
            Database::Postgres(pg) => {
                let pool = shop_db::postgres_pool(pg, size as u32, wait)
                    .await
                    .map_err(StoreError::Postgres)?;
                for ddl in ORDERS_POSTGRES {
                    sqlx::query(ddl)
                        .execute(&pool)
                        .await
                        .map_err(StoreError::Postgres)?;
                }
                Backend::Postgres { pool, size, wait }
            }
        };
        Ok(Self { backend })
    }

    /// Connections in the pool.
    pub fn pool_size(&self) -> usize {
        match &self.backend {
            Backend::Sqlite { pool, .. } => pool.size(),
            Backend::Postgres { size, .. } => *size,
        }
    }

    /// Connections checked out now.
    pub fn in_use(&self) -> usize {
        match &self.backend {
            Backend::Sqlite { pool, .. } => pool.in_use(),
            Backend::Postgres { pool, .. } => pool.size() as usize - pool.num_idle(),
        }
    }

    /// A connection, or [`PoolExhausted`] when none came free within the pool's wait time.
    pub async fn acquire(&self) -> Result<Connection, StoreError> {
        match &self.backend {
            Backend::Sqlite { pool, .. } => Ok(Connection::Sqlite(pool.acquire().await?)),
            Backend::Postgres { pool, size, wait } => {
                let started = Instant::now();
                match pool.acquire().await {
                    Ok(conn) => Ok(Connection::Postgres(conn)),
                    Err(sqlx::Error::PoolTimedOut) => Err(StoreError::Exhausted(PoolExhausted {
                        size: *size,
                        waited_ms: started.elapsed().max(*wait).as_millis() as u64,
                    })),
                    Err(e) => Err(StoreError::Postgres(e)),
                }
            }
        }
    }

    /// Writes `order` and its lines in one transaction on `conn`, `hold` after it began (the
    /// transaction keeps its connection all that time); the spans are children of `parent`.
    pub async fn write(
        &self,
        conn: Connection,
        order: NewOrder,
        hold: Duration,
        db: DbClient,
        parent: Context,
    ) -> Result<(), StoreError> {
        let mut conn = match conn {
            Connection::Sqlite(conn) => conn,
            Connection::Postgres(conn) => {
                return write_postgres(conn, order, hold, &db)
                    .await
                    .map_err(StoreError::Postgres);
            }
        };
        let path = match &self.backend {
            Backend::Sqlite { path, .. } => path.clone(),
            Backend::Postgres { .. } => PathBuf::new(),
        };
        tokio::task::spawn_blocking(move || {
            // A guard in this blocking closure only: no await while it is held.
            let _attached = parent.attach();
            let db_err = |source| StoreError::Database {
                path: path.clone(),
                source,
            };
            let tx = conn.connection().transaction().map_err(db_err)?;
            if !hold.is_zero() {
                std::thread::sleep(hold);
            }
            let span = db.start(
                DbOperation::new("INSERT")
                    .collection("orders")
                    .query_text(INSERT_ORDER_SQL),
            );
            if let Err(e) = tx.execute(
                INSERT_ORDER_SQL,
                params![
                    order.id,
                    order.user_id,
                    order.total_cents,
                    order.created_at,
                    order.trace_id
                ],
            ) {
                span.fail("database", &e);
                return Err(db_err(e));
            }
            span.end();
            let span = db.start(
                DbOperation::new("INSERT")
                    .collection("order_lines")
                    .query_text(INSERT_LINE_SQL),
            );
            {
                let mut insert = tx.prepare_cached(INSERT_LINE_SQL).map_err(db_err)?;
                for (i, line) in order.lines.iter().enumerate() {
                    if let Err(e) = insert.execute(params![
                        order.id,
                        i as i64,
                        line.product_id,
                        line.quantity,
                        line.price_cents
                    ]) {
                        span.fail("database", &e);
                        return Err(db_err(e));
                    }
                }
            }
            span.end();
            tx.commit().map_err(db_err)
        })
        .await
        .map_err(StoreError::Task)?
    }

    /// An order and its lines, `None` when there is none with that id.
    pub async fn order(&self, id: String) -> Result<Option<Order>, StoreError> {
        let (mut conn, path) = match self.acquire().await? {
            Connection::Sqlite(conn) => match &self.backend {
                Backend::Sqlite { path, .. } => (conn, path.clone()),
                Backend::Postgres { .. } => (conn, PathBuf::new()),
            },
            Connection::Postgres(conn) => {
                return read_postgres(conn, id).await.map_err(StoreError::Postgres);
            }
        };
        tokio::task::spawn_blocking(move || {
            let db = conn.connection();
            let read = || -> rusqlite::Result<Option<Order>> {
                let Some(mut order) = db
                    .query_row(SELECT_ORDER_SQL, params![id], |r| {
                        Ok(Order {
                            id: r.get(0)?,
                            user_id: r.get(1)?,
                            total_cents: r.get(2)?,
                            created_at: r.get(3)?,
                            lines: Vec::new(),
                        })
                    })
                    .optional()?
                else {
                    return Ok(None);
                };
                let mut lines = db.prepare_cached(SELECT_LINES_SQL)?;
                order.lines = lines
                    .query_map(params![id], |r| {
                        Ok(Line {
                            product_id: r.get(0)?,
                            quantity: r.get(1)?,
                            price_cents: r.get(2)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(Some(order))
            };
            read().map_err(|source| StoreError::Database { path, source })
        })
        .await
        .map_err(StoreError::Task)?
    }
}

/// The PostgreSQL transaction: begun, held `hold` (the connection kept all that time), the order
/// and its lines inserted, committed; dropped uncommitted (rolled back) on any error.
async fn write_postgres(
    mut conn: PoolConnection<Postgres>,
    order: NewOrder,
    hold: Duration,
    db: &DbClient,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut tx = conn.begin().await?;
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let span = db.start(
        DbOperation::new("INSERT")
            .collection("orders")
            .query_text(INSERT_ORDER_POSTGRES),
    );
    let inserted = span
        .run(
            sqlx::query(INSERT_ORDER_POSTGRES)
                .bind(&order.id)
                .bind(&order.user_id)
                .bind(order.total_cents)
                .bind(&order.created_at)
                .bind(&order.trace_id)
                .execute(&mut *tx),
        )
        .await;
    if let Err(e) = inserted {
        span.fail("database", &e);
        return Err(e);
    }
    span.end();
    let span = db.start(
        DbOperation::new("INSERT")
            .collection("order_lines")
            .query_text(INSERT_LINE_POSTGRES),
    );
    for (i, line) in order.lines.iter().enumerate() {
        let inserted = span
            .run(
                sqlx::query(INSERT_LINE_POSTGRES)
                    .bind(&order.id)
                    .bind(i as i64)
                    .bind(line.product_id)
                    .bind(line.quantity)
                    .bind(line.price_cents)
                    .execute(&mut *tx),
            )
            .await;
        if let Err(e) = inserted {
            span.fail("database", &e);
            return Err(e);
        }
    }
    span.end();
    tx.commit().await
}

async fn read_postgres(
    mut conn: PoolConnection<Postgres>,
    id: String,
) -> Result<Option<Order>, sqlx::Error> {
    let Some(row) = sqlx::query(SELECT_ORDER_POSTGRES)
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let lines = sqlx::query(SELECT_LINES_POSTGRES)
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Line {
                product_id: r.try_get(0)?,
                quantity: r.try_get(1)?,
                price_cents: r.try_get(2)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(Order {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        total_cents: row.try_get(2)?,
        created_at: row.try_get(3)?,
        lines,
    }))
}
