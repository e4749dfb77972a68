//! Which database a shop service uses, from `DATABASE_URL` (read by the service kit's
//! `database` module, as every system's is): an SQLite file (`sqlite:PATH` or a bare path), or
//! PostgreSQL (`postgres://…`) with the shop's tables in their own schema
//! (`SHOP_DATABASE_SCHEMA`, `shop` unless told), so other systems on the same server keep
//! theirs apart. The URL (and its password) is never printed: messages name host, port and
//! database.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Connection, Executor, PgConnection};
use throughline_service_kit::database::{Location, LocationError, PostgresSchema, SchemaSetting};

pub use throughline_service_kit::database::DATABASE_URL as DATABASE_URL_ENV;
pub const SCHEMA_ENV: &str = "SHOP_DATABASE_SCHEMA";

/// The shop's schema setting: `SHOP_DATABASE_SCHEMA`, `shop` unless told.
pub const SCHEMA: SchemaSetting = SchemaSetting {
    env: SCHEMA_ENV,
    default: "shop",
};

/// A database setting that cannot be used (`DATABASE_URL`, `SHOP_DATABASE_SCHEMA`).
pub type DatabaseConfigError = LocationError;

/// Where a service keeps its tables.
pub type Database = Location;

/// A PostgreSQL database and the schema the shop's tables live in.
pub type Postgres = PostgresSchema;

/// From `DATABASE_URL` (`default_sqlite` when it is not set) and `SHOP_DATABASE_SCHEMA`.
pub fn database_from_env(
    env: &HashMap<String, String>,
    default_sqlite: &str,
) -> Result<Database, DatabaseConfigError> {
    Location::from_env(env, default_sqlite, SCHEMA)
}

/// A pool of at most `size` connections, each waiter given `wait`, every connection's
/// `search_path` the shop's schema (created first when missing).
pub async fn postgres_pool(
    pg: &Postgres,
    size: u32,
    wait: Duration,
) -> Result<PgPool, sqlx::Error> {
    let mut first = PgConnection::connect_with(&pg.url.connect_options()).await?;
    first
        .execute(format!("CREATE SCHEMA IF NOT EXISTS {}", pg.schema).as_str())
        .await?;
    first.close().await?;
    pg.pool(size, wait).await
}

/// The database as its spans name it: the SQLite file's stem, or PostgreSQL's
/// `{database}|{schema}` with its host and port.
pub fn db_target(database: &Database) -> throughline_instrument::DbTarget {
    use throughline_instrument::DbTarget;
    match database {
        Database::Sqlite(path) => DbTarget::new("sqlite").namespace(
            path.file_stem()
                .map_or_else(|| "shop".to_owned(), |s| s.to_string_lossy().into_owned()),
        ),
        Database::Postgres(pg) => DbTarget::new("postgresql")
            .namespace(format!("{}|{}", pg.database(), pg.schema))
            .server(pg.host(), Some(pg.port())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_chooses_the_engine_and_never_shows_its_password() {
        let env = |url: &str| HashMap::from([(DATABASE_URL_ENV.to_owned(), url.to_owned())]);
        assert!(matches!(
            database_from_env(&HashMap::new(), "sqlite:x.db").unwrap(),
            Database::Sqlite(p) if p == std::path::Path::new("x.db")
        ));
        let pg = database_from_env(&env("postgres://u:secret@db.local:5433/shop"), "x").unwrap();
        assert_eq!(
            pg.to_string(),
            "PostgreSQL db.local:5433/shop (schema shop)"
        );
        assert!(matches!(
            database_from_env(&env("mysql://x/y"), "x").unwrap_err(),
            DatabaseConfigError::Url(_)
        ));
        let mut bad = env("postgres://u@h/d");
        bad.insert(SCHEMA_ENV.to_owned(), "shop; DROP".to_owned());
        assert!(matches!(
            database_from_env(&bad, "x").unwrap_err(),
            DatabaseConfigError::Schema(_)
        ));
    }
}
