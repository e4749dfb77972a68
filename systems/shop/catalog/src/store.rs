//! The catalog's SQLite file: a small pool of connections, the category page and product
//! queries (each returning what it really read, from SQLite's full-scan counter), and the
//! index switch the Black Friday degradation uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, StatementStatus, params};
use serde::Serialize;
use shop_db::schema::{CATEGORY_INDEX, PRODUCTS};
use shop_db::{Pool, PoolExhausted};

use crate::CatalogConfig;

/// The category page's statement (parameters as placeholders: what `db.query.text` shows).
pub const CATEGORY_SQL: &str = "SELECT id, name, category, price_cents FROM products WHERE category = ?1 ORDER BY name LIMIT ?2";
/// One product's statement.
pub const PRODUCT_SQL: &str = "SELECT id, name, category, price_cents FROM products WHERE id = ?1";

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
    /// Rows a full table scan stepped through (0 when the index served the query).
    pub rows_scanned: u64,
    pub took: Duration,
}

/// The catalog database (cheap to clone).
#[derive(Debug, Clone)]
pub struct CatalogStore {
    pool: Pool,
    path: PathBuf,
    products: u64,
    /// Whether `idx_products_category` exists (as the last change left it).
    indexed: Arc<AtomicBool>,
    /// One index change at a time.
    ddl: Arc<tokio::sync::Mutex<()>>,
}

impl CatalogStore {
    /// Opens the file (seeding an empty table in one transaction) and its read connections.
    pub async fn open(config: &CatalogConfig) -> Result<Self, StoreError> {
        let path = config.database_path.clone();
        let (count, connections) = (config.products, config.connections);
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
            Ok(Self {
                pool: Pool::new(all, READ_WAIT),
                path,
                products: products as u64,
                indexed: Arc::new(AtomicBool::new(true)),
                ddl: Arc::default(),
            })
        })
        .await
        .map_err(StoreError::Task)?
    }

    pub fn product_count(&self) -> u64 {
        self.products
    }

    /// The first `limit` products of `category` by name.
    pub async fn category_page(
        &self,
        category: String,
        limit: u32,
    ) -> Result<CategoryPage, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let path = self.path.clone();
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
            // The counter counts the scan's steps from one row to the next: N rows, N - 1 steps.
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

    /// One product, `None` when there is none with that id.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            conn.connection()
                .prepare_cached(PRODUCT_SQL)
                .and_then(|mut s| s.query_row(params![id], product_row).optional())
                .map_err(|source| StoreError::Database { path, source })
        })
        .await
        .map_err(StoreError::Task)?
    }

    /// Whether `idx_products_category` exists now.
    pub fn category_index(&self) -> bool {
        self.indexed.load(Ordering::Acquire)
    }

    /// Creates (`present`) or drops `idx_products_category`; `true` when that changed it.
    /// Callers asking at once wait for one another, so a query that follows sees the change.
    pub async fn set_category_index(&self, present: bool) -> Result<bool, StoreError> {
        let _one_at_a_time = self.ddl.lock().await;
        let mut conn = self.pool.acquire().await?;
        let path = self.path.clone();
        let indexed = self.indexed.clone();
        tokio::task::spawn_blocking(move || {
            let db = conn.connection();
            let exists: bool = db
                .query_row(
                    "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = ?1",
                    params![shop_db::names::CATEGORY_INDEX],
                    |r| r.get(0),
                )
                .map_err(|source| StoreError::Database {
                    path: path.clone(),
                    source,
                })?;
            if exists == present {
                indexed.store(present, Ordering::Release);
                return Ok(false);
            }
            let sql = if present {
                CATEGORY_INDEX.to_owned()
            } else {
                format!("DROP INDEX IF EXISTS {}", shop_db::names::CATEGORY_INDEX)
            };
            db.execute_batch(&sql)
                .map_err(|source| StoreError::Database { path, source })?;
            indexed.store(present, Ordering::Release);
            Ok(true)
        })
        .await
        .map_err(StoreError::Task)?
    }
}

fn product_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: row.get(0)?,
        name: row.get(1)?,
        category: row.get(2)?,
        price_cents: row.get(3)?,
    })
}
