//! The checkout's SQLite file behind a bounded connection pool: an order and all its lines in
//! one transaction (or nothing), each statement under its database CLIENT span; and reading an
//! order back.

use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::Context;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use shop_db::schema::ORDERS;
use shop_db::{Pool, PoolExhausted, PooledConnection};
use throughline_instrument::{DbClient, DbOperation};

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

/// The order database (cheap to clone).
#[derive(Debug, Clone)]
pub struct OrderStore {
    pool: Pool,
    path: PathBuf,
}

impl OrderStore {
    /// Opens the file and the pool's connections.
    pub async fn open(config: &CheckoutConfig) -> Result<Self, StoreError> {
        let path = config.database_path.clone();
        let (size, wait) = (config.pool_size, config.pool_wait);
        tokio::task::spawn_blocking(move || {
            let connections = (0..size)
                .map(|_| shop_db::open_sqlite(&path, ORDERS))
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::Open)?;
            Ok(Self {
                pool: Pool::new(connections, wait),
                path,
            })
        })
        .await
        .map_err(StoreError::Task)?
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Writes `order` and its lines in one transaction on `conn`, `hold` after it began (the
    /// transaction keeps its connection all that time); the spans are children of `parent`.
    pub async fn write(
        &self,
        mut conn: PooledConnection,
        order: NewOrder,
        hold: Duration,
        db: DbClient,
        parent: Context,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
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
        let mut conn = self.pool.acquire().await?;
        let path = self.path.clone();
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
