//! The checkout's settings, from the environment map: raw strings in, typed values with
//! defaults out, a bad value named by its setting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use shop_db::{Database, DatabaseConfigError, DemoClock, DemoConfigError};
use throughline_instrument::DbSemconv;

pub const ADDR_ENV: &str = "SHOP_CHECKOUT_ADDR";
pub const CATALOG_URL_ENV: &str = "SHOP_CATALOG_URL";
pub const POOL_SIZE_ENV: &str = "SHOP_POOL_SIZE";
pub const POOL_WAIT_MS_ENV: &str = "SHOP_POOL_WAIT_MS";
pub const CRITICAL_HOLD_MS_ENV: &str = "SHOP_CRITICAL_HOLD_MS";

/// A setting the checkout cannot start with.
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

/// The checkout's validated settings.
#[derive(Debug, Clone)]
pub struct CheckoutConfig {
    pub addr: SocketAddr,
    /// `DATABASE_URL`: an SQLite file, or PostgreSQL (the shop's own schema).
    pub database: Database,
    /// Where prices are read (`GET {catalog_url}/products/{id}`).
    pub catalog_url: String,
    /// Connections in the bounded pool.
    pub pool_size: usize,
    /// How long a checkout waits for a connection before it fails.
    pub pool_wait: Duration,
    /// How long a transaction holds its connection in the critical phase (the payment
    /// provider's slow answer, awaited inside the open transaction).
    pub critical_hold: Duration,
    pub demo: DemoClock,
    pub db_semconv: DbSemconv,
}

impl CheckoutConfig {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let addr = parse(
            env,
            ADDR_ENV,
            "127.0.0.1:8016",
            "is not an address like 127.0.0.1:8016",
        )?;
        let database = shop_db::database_from_env(env, "sqlite:shop-checkout.sqlite3")?;
        let catalog_url = env
            .get(CATALOG_URL_ENV)
            .map_or("http://127.0.0.1:8014", String::as_str)
            .trim_end_matches('/')
            .to_owned();
        if reqwest::Url::parse(&catalog_url).is_err() {
            return Err(ConfigError::Invalid {
                setting: CATALOG_URL_ENV,
                value: catalog_url,
                problem: "is not a URL like http://127.0.0.1:8014",
            });
        }
        let pool_size: usize = parse(env, POOL_SIZE_ENV, "10", "is not a number of connections")?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                setting: POOL_SIZE_ENV,
                value: "0".into(),
                problem: "must be at least 1",
            });
        }
        let wait_ms: u64 = parse(
            env,
            POOL_WAIT_MS_ENV,
            "1000",
            "is not a number of milliseconds",
        )?;
        let hold_ms: u64 = parse(
            env,
            CRITICAL_HOLD_MS_ENV,
            &(wait_ms * 3).to_string(),
            "is not a number of milliseconds",
        )?;
        Ok(Self {
            addr,
            database,
            catalog_url,
            pool_size,
            pool_wait: Duration::from_millis(wait_ms),
            critical_hold: Duration::from_millis(hold_ms),
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
    fn defaults_and_a_named_bad_value() {
        let config = CheckoutConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(config.addr.port(), 8016);
        assert_eq!(config.critical_hold, config.pool_wait * 3);
        let env = HashMap::from([(POOL_SIZE_ENV.to_owned(), "0".to_owned())]);
        let err = CheckoutConfig::from_env(&env).unwrap_err().to_string();
        assert_eq!(err, "SHOP_POOL_SIZE: \"0\" must be at least 1");
    }
}
