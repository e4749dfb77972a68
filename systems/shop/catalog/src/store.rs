//! The catalog's database, SQLite or PostgreSQL: the category page and product queries (each
//! returning what it really read), the seed at first start, and the index switch the Black
//! Friday degradation uses.
//!
//! On SQLite the rows a page read come from SQLite's own full-scan counter; on PostgreSQL from
//! the planner: after each index change the category query is `EXPLAIN`ed, and a sequential
//! scan reads the whole table.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, StatementStatus, params};
use serde::Serialize;
use shop_db::schema::{CATEGORY_INDEX, PRODUCTS, PRODUCTS_POSTGRES};
use shop_db::{Database, Pool, PoolExhausted};
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::CatalogConfig;

/// The category page's statement (parameters as placeholders: what `db.query.text` shows).
pub const CATEGORY_SQL: &str = "SELECT id, name, category, price_cents FROM products WHERE category = ?1 ORDER BY name LIMIT ?2";
/// One product's statement.
pub const PRODUCT_SQL: &str = "SELECT id, name, category, price_cents FROM products WHERE id = ?1";
/// The same statements in PostgreSQL's placeholders.
pub const CATEGORY_SQL_POSTGRES: &str = "SELECT id, name, category, price_cents FROM products WHERE category = $1 ORDER BY name LIMIT $2";
pub const PRODUCT_SQL_POSTGRES: &str =
    "SELECT id, name, category, price_cents FROM products WHERE id = $1";

/// How long a request waits for one of the catalog's read connections.
const READ_WAIT: Duration = Duration::from_secs(10);

/// Why a catalog query failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the catalog database")]
    Open(#[source] shop_db::OpenError),
    #[error("catalog database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("catalog database")]
    Postgres(#[source] sqlx::Error),
    #[error(transparent)]
    Busy(#[from] PoolExhausted),
    #[error("the database task stopped")]
    Task(#[source] tokio::task::JoinError),
}

/// A product as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
}

/// A category page and what it cost.
#[derive(Debug, Clone)]
pub struct CategoryPage {
    pub products: Vec<Product>,
    /// Rows a full table scan read (0 when the index served the query).
    pub rows_scanned: u64,
    pub took: Duration,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite { pool: Pool, path: PathBuf },
    Postgres { pool: PgPool },
}

/// The catalog database (cheap to clone).
#[derive(Debug, Clone)]
pub struct CatalogStore {
    backend: Backend,
    products: u64,
    /// Whether `idx_products_category` exists (as the last change left it).
    indexed: Arc<AtomicBool>,
    /// PostgreSQL: whether the planner scans the table for a category page.
    seq_scan: Arc<AtomicBool>,
    /// One index change at a time.
    ddl: Arc<tokio::sync::Mutex<()>>,
}

impl CatalogStore {
    /// Opens the database (seeding an empty table in one transaction) and its connections.
    pub async fn open(config: &CatalogConfig) -> Result<Self, StoreError> {
        let (count, connections) = (config.products, config.connections);
        let (backend, products) = match &config.database {
            Database::Sqlite(path) => open_sqlite(path.clone(), count, connections).await?,
            Database::Postgres(pg) => {
                let pool = shop_db::postgres_pool(pg, connections as u32, READ_WAIT)
                    .await
                    .map_err(StoreError::Postgres)?;
                let products = seed_postgres(&pool, count)
                    .await
                    .map_err(StoreError::Postgres)?;
                (Backend::Postgres { pool }, products)
            }
        };
        let store = Self {
            backend,
            products,
            indexed: Arc::new(AtomicBool::new(true)),
            seq_scan: Arc::new(AtomicBool::new(false)),
            ddl: Arc::default(),
        };
        store.set_category_index(true).await?;
        Ok(store)
    }

    pub fn product_count(&self) -> u64 {
        self.products
    }

    /// `sqlite` or `postgresql` (`db.system.name`).
    pub fn system(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgresql",
        }
    }

    /// The category page's statement as this engine runs it.
    pub fn category_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => CATEGORY_SQL,
            Backend::Postgres { .. } => CATEGORY_SQL_POSTGRES,
        }
    }

    pub fn product_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => PRODUCT_SQL,
            Backend::Postgres { .. } => PRODUCT_SQL_POSTGRES,
        }
    }

    /// The first `limit` products of `category` by name.
    pub async fn category_page(
        &self,
        category: String,
        limit: u32,
    ) -> Result<CategoryPage, StoreError> {
        match &self.backend {
            Backend::Sqlite { pool, path } => {
                let mut conn = pool.acquire().await?;
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    let db_err = |source| StoreError::Database {
                        path: path.clone(),
                        source,
                    };
                    let mut statement = conn
                        .connection()
                        .prepare_cached(CATEGORY_SQL)
                        .map_err(db_err)?;
                    statement.reset_status(StatementStatus::FullscanStep);
                    let products = statement
                        .query_map(params![category, limit], product_row)
                        .map_err(db_err)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(db_err)?;
                    // The counter counts the scan's steps from one row to the next: N rows,
                    // N - 1 steps.
                    let steps = statement.get_status(StatementStatus::FullscanStep).max(0) as u64;
                    let rows_scanned = if steps > 0 { steps + 1 } else { 0 };
                    Ok(CategoryPage {
                        products,
                        rows_scanned,
                        took: started.elapsed(),
                    })
                })
                .await
                .map_err(StoreError::Task)?
            }
            Backend::Postgres { pool } => {
                let started = Instant::now();
                let rows = sqlx::query(CATEGORY_SQL_POSTGRES)
                    .bind(category)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await
                    .map_err(postgres_error)?;
                let products = rows
                    .iter()
                    .map(pg_product)
                    .collect::<Result<_, _>>()
                    .map_err(StoreError::Postgres)?;
                let rows_scanned = if self.seq_scan.load(Ordering::Acquire) {
                    self.products
                } else {
                    0
                };
                Ok(CategoryPage {
                    products,
                    rows_scanned,
                    took: started.elapsed(),
                })
            }
        }
    }

    /// One product, `None` when there is none with that id.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        match &self.backend {
            Backend::Sqlite { pool, path } => {
                let mut conn = pool.acquire().await?;
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    conn.connection()
                        .prepare_cached(PRODUCT_SQL)
                        .and_then(|mut s| s.query_row(params![id], product_row).optional())
                        .map_err(|source| StoreError::Database { path, source })
                })
                .await
                .map_err(StoreError::Task)?
            }
            Backend::Postgres { pool } => {
                let row = sqlx::query(PRODUCT_SQL_POSTGRES)
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(postgres_error)?;
                row.as_ref()
                    .map(pg_product)
                    .transpose()
                    .map_err(StoreError::Postgres)
            }
        }
    }

    /// Whether `idx_products_category` exists now.
    pub fn category_index(&self) -> bool {
        self.indexed.load(Ordering::Acquire)
    }

    /// Creates (`present`) or drops `idx_products_category`; `true` when that changed it.
    /// Callers asking at once wait for one another, so a query that follows sees the change.
    pub async fn set_category_index(&self, present: bool) -> Result<bool, StoreError> {
        let _one_at_a_time = self.ddl.lock().await;
        let drop = format!("DROP INDEX IF EXISTS {}", shop_db::names::CATEGORY_INDEX);
        let sql = if present {
            CATEGORY_INDEX
        } else {
            drop.as_str()
        };
        let changed = match &self.backend {
            Backend::Sqlite { pool, path } => {
                let mut conn = pool.acquire().await?;
                let (path, sql) = (path.clone(), sql.to_owned());
                tokio::task::spawn_blocking(move || {
                    let db = conn.connection();
                    let db_err = |source| StoreError::Database {
                        path: path.clone(),
                        source,
                    };
                    let exists: bool = db
                        .query_row(
                            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = ?1",
                            params![shop_db::names::CATEGORY_INDEX],
                            |r| r.get(0),
                        )
                        .map_err(db_err)?;
                    if exists == present {
                        return Ok(false);
                    }
                    db.execute_batch(&sql).map_err(db_err)?;
                    Ok::<_, StoreError>(true)
                })
                .await
                .map_err(StoreError::Task)??
            }
            Backend::Postgres { pool } => {
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1)",
                )
                .bind(shop_db::names::CATEGORY_INDEX)
                .fetch_one(pool)
                .await
                .map_err(postgres_error)?;
                let changed = exists != present;
                if changed {
                    sqlx::query(sql)
                        .execute(pool)
                        .await
                        .map_err(postgres_error)?;
                }
                // What the planner does now with a category page.
                let plan: Vec<String> = sqlx::query_scalar(
                    "EXPLAIN SELECT id, name, category, price_cents FROM products WHERE category = 'books' ORDER BY name LIMIT 20",
                )
                .fetch_all(pool)
                .await
                .map_err(postgres_error)?;
                let seq_scan = plan.iter().any(|line| line.contains("Seq Scan"));
                self.seq_scan.store(seq_scan, Ordering::Release);
                changed
            }
        };
        self.indexed.store(present, Ordering::Release);
        Ok(changed)
    }
}

async fn open_sqlite(
    path: PathBuf,
    count: u64,
    connections: usize,
) -> Result<(Backend, u64), StoreError> {
    tokio::task::spawn_blocking(move || {
        let db_err = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let mut first = shop_db::open_sqlite(&path, PRODUCTS).map_err(StoreError::Open)?;
        let started = Instant::now();
        let seeded = shop_db::seed_products(&mut first, count).map_err(db_err)?;
        if seeded > 0 {
            tracing::info!(
                products = seeded,
                took_ms = started.elapsed().as_millis() as u64,
                "catalog seeded"
            );
        }
        let products: i64 = first
            .query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))
            .map_err(db_err)?;
        let mut all = vec![first];
        for _ in 1..connections {
            all.push(shop_db::open_sqlite(&path, PRODUCTS).map_err(StoreError::Open)?);
        }
        Ok((
            Backend::Sqlite {
                pool: Pool::new(all, READ_WAIT),
                path,
            },
            products as u64,
        ))
    })
    .await
    .map_err(StoreError::Task)?
}

/// Creates the table and seeds it (one statement, one transaction) when empty.
async fn seed_postgres(pool: &PgPool, count: u64) -> Result<u64, sqlx::Error> {
    sqlx::query(PRODUCTS_POSTGRES).execute(pool).await?;
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(pool)
        .await?;
    if existing > 0 {
        return Ok(existing as u64);
    }
    let started = Instant::now();
    sqlx::query(&shop_db::schema::seed_postgres_sql())
        .bind(count as i64)
        .execute(pool)
        .await?;
    sqlx::query("ANALYZE products").execute(pool).await?;
    tracing::info!(
        products = count,
        took_ms = started.elapsed().as_millis() as u64,
        "catalog seeded"
    );
    Ok(count)
}

/// A pool that gave no connection in time is busy, not broken.
fn postgres_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut => StoreError::Busy(PoolExhausted {
            size: 0,
            waited_ms: READ_WAIT.as_millis() as u64,
        }),
        other => StoreError::Postgres(other),
    }
}

fn pg_product(row: &sqlx::postgres::PgRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        category: row.try_get(2)?,
        price_cents: row.try_get(3)?,
    })
}

fn product_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: row.get(0)?,
        name: row.get(1)?,
        category: row.get(2)?,
        price_cents: row.get(3)?,
    })
}
