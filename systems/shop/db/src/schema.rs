//! The shop's tables on SQLite: `products` (with `idx_products_category` on `(category, name)`,
//! the index the category page needs), `orders` and `order_lines`; and the catalog's seed,
//! written in one transaction at first start.

use rusqlite::{Connection, params};

/// The catalog's table and the index its category page reads through.
pub const PRODUCTS: &str = "CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    description TEXT NOT NULL
);";

/// `idx_products_category`: what the Black Friday degradation takes away.
pub const CATEGORY_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS idx_products_category ON products (category, name)";

/// The checkout's tables: an order and its lines, written in one transaction.
pub const ORDERS: &str = "CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    trace_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
);";

/// The categories the seed spreads products over.
pub const CATEGORIES: &[&str] = &[
    "electronics",
    "books",
    "clothing",
    "home",
    "garden",
    "toys",
    "sports",
    "beauty",
    "grocery",
    "automotive",
    "music",
    "office",
    "pets",
    "health",
    "jewelry",
    "shoes",
    "tools",
    "baby",
    "games",
    "outdoors",
];

/// The PostgreSQL forms of the same tables (in the shop's schema: `search_path` names it).
pub const PRODUCTS_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS products (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    description TEXT NOT NULL
)";

pub const ORDERS_POSTGRES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        total_cents BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        trace_id TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS order_lines (
        order_id TEXT NOT NULL REFERENCES orders (id),
        line BIGINT NOT NULL,
        product_id BIGINT NOT NULL,
        quantity BIGINT NOT NULL,
        price_cents BIGINT NOT NULL,
        PRIMARY KEY (order_id, line)
    )",
];

/// The seed on PostgreSQL in one statement (one transaction): the same spread of categories
/// and prices as [`seed_products`]; `$1` is the count.
pub fn seed_postgres_sql() -> String {
    let categories = CATEGORIES
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "INSERT INTO products (id, name, category, price_cents, description)
         SELECT g, c || ' item ' || lpad(to_hex((g * 2654435761) % 1048576), 5, '0'), c,
                199 + (g * 7919) % 49900, 'product ' || g || ' of the ' || c || ' aisle'
         FROM generate_series(1::bigint, $1::bigint) AS g,
              LATERAL (SELECT (ARRAY[{categories}])[1 + (g % {n})] AS c) AS pick",
        n = CATEGORIES.len()
    )
}

/// Why a database could not be opened (the service kit's SQLite opener, which every system's
/// file goes through: WAL, a 5 s busy timeout, `synchronous = NORMAL`, then the schema).
pub use throughline_service_kit::database::{SqliteOpenError as OpenError, open_sqlite};

/// Fills an empty `products` table with `count` products spread over [`CATEGORIES`], in one
/// transaction, then creates the category index. Returns how many rows it wrote (0 when the
/// table already held products).
pub fn seed_products(conn: &mut Connection, count: u64) -> rusqlite::Result<u64> {
    let existing: i64 = conn.query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))?;
    if existing > 0 {
        conn.execute_batch(CATEGORY_INDEX)?;
        return Ok(0);
    }
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO products (id, name, category, price_cents, description) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for id in 1..=count {
            let category = CATEGORIES[(id % CATEGORIES.len() as u64) as usize];
            // A spread of prices from 1.99 to 500.98, the same on every start.
            let price_cents = 199 + (id * 7919) % 49_900;
            // Names sort differently from ids, so the category page needs the index's order.
            let name = format!("{category} item {:05x}", (id * 2_654_435_761) % 1_048_576);
            insert.execute(params![
                id as i64,
                name,
                category,
                price_cents as i64,
                format!("product {id} of the {category} aisle")
            ])?;
        }
    }
    tx.commit()?;
    conn.execute_batch(CATEGORY_INDEX)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_writes_once_and_builds_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_sqlite(&dir.path().join("c.sqlite3"), PRODUCTS).unwrap();
        assert_eq!(seed_products(&mut conn, 1000).unwrap(), 1000);
        assert_eq!(seed_products(&mut conn, 1000).unwrap(), 0);
        let per_category: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM products WHERE category = 'books'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(per_category, 50);
        let index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'idx_products_category'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
    }
}
