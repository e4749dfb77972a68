//! Which database a shop service uses, from `DATABASE_URL`: an SQLite file (`sqlite:PATH` or a
//! bare path), or PostgreSQL (`postgres://…`) with the shop's tables in their own schema
//! (`SHOP_DATABASE_SCHEMA`, `shop` unless told), so other systems on the same server keep
//! theirs apart. The URL (and its password) is never printed: messages name host, port and
//! database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
pub const SCHEMA_ENV: &str = "SHOP_DATABASE_SCHEMA";

/// A database setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseConfigError {
    #[error(
        "DATABASE_URL: not a PostgreSQL URL (postgres://user@host:port/database) nor sqlite:PATH"
    )]
    Url,
    #[error("SHOP_DATABASE_SCHEMA: {0:?} is not a schema name (letters, digits, _)")]
    Schema(String),
}

/// Where a service keeps its tables.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Postgres),
}

/// A PostgreSQL database and the schema the shop's tables live in.
#[derive(Debug, Clone)]
pub struct Postgres {
    options: PgConnectOptions,
    pub schema: String,
}

impl Postgres {
    pub fn host(&self) -> &str {
        self.options.get_host()
    }
    pub fn port(&self) -> u16 {
        self.options.get_port()
    }
    pub fn database(&self) -> &str {
        self.options.get_database().unwrap_or("postgres")
    }

    /// A pool of at most `size` connections, each waiter given `wait`, every connection's
    /// `search_path` the shop's schema (created first when missing).
    pub async fn pool(&self, size: u32, wait: Duration) -> Result<PgPool, sqlx::Error> {
        let mut first = PgConnection::connect_with(&self.options).await?;
        first
            .execute(format!("CREATE SCHEMA IF NOT EXISTS {}", self.schema).as_str())
            .await?;
        first.close().await?;
        let set_path = format!("SET search_path TO {}", self.schema);
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(wait)
            .after_connect(move |conn, _| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(self.options.clone())
            .await
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Self::Postgres(pg) => write!(
                f,
                "PostgreSQL {}:{}/{} (schema {})",
                pg.host(),
                pg.port(),
                pg.database(),
                pg.schema
            ),
        }
    }
}

impl Database {
    /// From `DATABASE_URL` (`default_sqlite` when it is not set) and `SHOP_DATABASE_SCHEMA`.
    pub fn from_env(
        env: &HashMap<String, String>,
        default_sqlite: &str,
    ) -> Result<Self, DatabaseConfigError> {
        let url = env
            .get(DATABASE_URL_ENV)
            .map_or(default_sqlite, String::as_str)
            .trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|_| DatabaseConfigError::Url)?;
            let schema = env
                .get(SCHEMA_ENV)
                .map_or("shop", String::as_str)
                .to_owned();
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(DatabaseConfigError::Schema(schema));
            }
            return Ok(Self::Postgres(Postgres { options, schema }));
        }
        crate::sqlite_path(url)
            .filter(|p| !p.as_os_str().is_empty())
            .map(Self::Sqlite)
            .ok_or(DatabaseConfigError::Url)
    }
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
            Database::from_env(&HashMap::new(), "sqlite:x.db").unwrap(),
            Database::Sqlite(p) if p == std::path::Path::new("x.db")
        ));
        let pg = Database::from_env(&env("postgres://u:secret@db.local:5433/shop"), "x").unwrap();
        assert_eq!(
            pg.to_string(),
            "PostgreSQL db.local:5433/shop (schema shop)"
        );
        assert_eq!(
            Database::from_env(&env("mysql://x/y"), "x").unwrap_err(),
            DatabaseConfigError::Url
        );
        let mut bad = env("postgres://u@h/d");
        bad.insert(SCHEMA_ENV.to_owned(), "shop; DROP".to_owned());
        assert!(Database::from_env(&bad, "x").is_err());
    }
}
