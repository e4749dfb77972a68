//! The catalog's settings, from the environment map: raw strings in, typed values with defaults
//! out, a bad value named by its setting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use shop_db::{Database, DatabaseConfigError, DemoClock, DemoConfigError};
use throughline_instrument::DbSemconv;

pub const ADDR_ENV: &str = "SHOP_CATALOG_ADDR";
pub const PRODUCTS_ENV: &str = "SHOP_PRODUCTS";
pub const SLOW_QUERY_MS_ENV: &str = "SHOP_SLOW_QUERY_MS";
pub const CONNECTIONS_ENV: &str = "SHOP_CATALOG_CONNECTIONS";

/// A setting the catalog cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {value:?} {problem}")]
    Invalid {
        setting: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error(transparent)]
    Demo(#[from] DemoConfigError),
    #[error(transparent)]
    Database(#[from] DatabaseConfigError),
}

/// The catalog's validated settings.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub addr: SocketAddr,
    /// `DATABASE_URL`: an SQLite file, or PostgreSQL (the shop's own schema).
    pub database: Database,
    /// Products seeded into an empty table.
    pub products: u64,
    /// A query at least this slow carries `db.slow_query=true`.
    pub slow_query: Duration,
    /// Read connections.
    pub connections: usize,
    pub demo: DemoClock,
    pub db_semconv: DbSemconv,
}

impl CatalogConfig {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let addr = parse(
            env,
            ADDR_ENV,
            "127.0.0.1:8014",
            "is not an address like 127.0.0.1:8014",
        )?;
        let database = shop_db::database_from_env(env, "sqlite:shop-catalog.sqlite3")?;
        let products: u64 = parse(env, PRODUCTS_ENV, "100000", "is not a number of products")?;
        if products == 0 {
            return Err(ConfigError::Invalid {
                setting: PRODUCTS_ENV,
                value: "0".into(),
                problem: "must be at least 1",
            });
        }
        let slow_ms: u64 = parse(
            env,
            SLOW_QUERY_MS_ENV,
            "100",
            "is not a number of milliseconds",
        )?;
        let connections: usize =
            parse(env, CONNECTIONS_ENV, "4", "is not a number of connections")?;
        if connections == 0 {
            return Err(ConfigError::Invalid {
                setting: CONNECTIONS_ENV,
                value: "0".into(),
                problem: "must be at least 1",
            });
        }
        Ok(Self {
            addr,
            database,
            products,
            slow_query: Duration::from_millis(slow_ms),
            connections,
            demo: DemoClock::from_env(env)?,
            db_semconv: DbSemconv::from_env(env),
        })
    }
}

fn parse<T: std::str::FromStr>(
    env: &HashMap<String, String>,
    setting: &'static str,
    default: &str,
    problem: &'static str,
) -> Result<T, ConfigError> {
    let value = env.get(setting).map_or(default, String::as_str);
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        setting,
        value: value.to_owned(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_port_and_a_bad_value_is_named() {
        let config = CatalogConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(config.addr.port(), 8014);
        assert_eq!(config.products, 100_000);
        let env = HashMap::from([(PRODUCTS_ENV.to_owned(), "many".to_owned())]);
        let err = CatalogConfig::from_env(&env).unwrap_err().to_string();
        assert_eq!(err, "SHOP_PRODUCTS: \"many\" is not a number of products");
        let env = HashMap::from([("DATABASE_URL".to_owned(), "mysql://x/y".to_owned())]);
        let err = CatalogConfig::from_env(&env).unwrap_err().to_string();
        assert!(err.starts_with("DATABASE_URL: "), "{err}");
    }
}
