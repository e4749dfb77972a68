//! The API's configuration: read from an environment map (never the process environment
//! directly, so tests pass their own), validated once at start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use onboarding_db::DatabaseDefaults;
pub use onboarding_db::{DatabaseConfig, PostgresConfig};
use throughline_service_kit::{AllowedHosts, AllowedHostsError};

/// The default listen address (the seeds' port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";
/// The default queue name.
pub const DEFAULT_QUEUE: &str = "onboarding-queue";
/// The default SQLite file, relative to the working directory.
pub const DEFAULT_DATABASE: &str = onboarding_db::DEFAULT_SQLITE_PATH;
/// The default PostgreSQL pool size (`DATABASE_MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// The default bound on connecting to PostgreSQL (`DATABASE_CONNECT_TIMEOUT_MS`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = onboarding_db::DEFAULT_CONNECT_TIMEOUT;

/// The API's defaults for `DATABASE_*`.
const DATABASE_DEFAULTS: DatabaseDefaults = DatabaseDefaults {
    url: DEFAULT_DATABASE,
    max_connections: DEFAULT_MAX_CONNECTIONS,
    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
};

/// Validated configuration of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Where `main` listens (`ONBOARDING_API_ADDR`); [`crate::serve`] takes a bound listener.
    pub addr: SocketAddr,
    /// The customer database (`DATABASE_URL`): an SQLite file or a PostgreSQL URL.
    pub database: DatabaseConfig,
    /// The queue's name (`ONBOARDING_QUEUE_NAME`); its url is resolved with `GetQueueUrl`.
    pub queue_name: String,
    /// `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL`: the local broker; unset means real AWS.
    pub sqs_endpoint: Option<String>,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`, `us-east-1` when neither is set.
    pub region: String,
    /// How long start-up waits for the queue to exist (`ONBOARDING_QUEUE_WAIT_MS`).
    pub queue_wait: Duration,
    /// Deadline of one queue call (`ONBOARDING_QUEUE_TIMEOUT_MS`).
    pub queue_timeout: Duration,
    /// Deadline of a whole request (`ONBOARDING_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Largest accepted body (`ONBOARDING_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Which database attribute names spans carry: `OTEL_SEMCONV_STABILITY_OPT_IN` naming
    /// `database/dup` adds the old ones (`db.system`, `db.name`, …) to the stable ones.
    pub db_semconv: throughline_instrument::DbSemconv,
    /// Host names beyond the loopback ones that a loopback listener answers to
    /// (`THROUGHLINE_ALLOWED_HOSTS`, comma-separated).
    pub allowed_hosts: AllowedHosts,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {value:?} {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error(transparent)]
    AllowedHosts(#[from] AllowedHostsError),
}

impl From<onboarding_db::DatabaseConfigError> for ConfigError {
    fn from(e: onboarding_db::DatabaseConfigError) -> Self {
        Self::Invalid {
            name: e.name,
            value: e.value,
            problem: e.problem,
        }
    }
}

impl ApiConfig {
    /// Reads the configuration from an environment map, applying defaults.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let addr = parse(
            get("ONBOARDING_API_ADDR").unwrap_or(DEFAULT_ADDR),
            "ONBOARDING_API_ADDR",
            "is not an ip:port address",
        )?;
        let ms = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => parse::<u64>(v, name, "is not a number of milliseconds")
                    .map(Duration::from_millis),
            }
        };
        let max_body_bytes = match get("ONBOARDING_MAX_BODY_BYTES") {
            None => 16 * 1024,
            Some(v) => parse(v, "ONBOARDING_MAX_BODY_BYTES", "is not a number of bytes")?,
        };
        let database = DatabaseConfig::from_env(env, &DATABASE_DEFAULTS)?;
        Ok(Self {
            addr,
            database,
            queue_name: get("ONBOARDING_QUEUE_NAME")
                .unwrap_or(DEFAULT_QUEUE)
                .to_owned(),
            sqs_endpoint: get("AWS_ENDPOINT_URL_SQS")
                .or_else(|| get("AWS_ENDPOINT_URL"))
                .map(str::to_owned),
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or("us-east-1")
                .to_owned(),
            queue_wait: ms("ONBOARDING_QUEUE_WAIT_MS", 10_000)?,
            queue_timeout: ms("ONBOARDING_QUEUE_TIMEOUT_MS", 5_000)?,
            request_timeout: ms("ONBOARDING_REQUEST_TIMEOUT_MS", 10_000)?,
            max_body_bytes,
            db_semconv: throughline_instrument::DbSemconv::from_env(env),
            allowed_hosts: AllowedHosts::from_env(env)?,
        })
    }
}

fn parse<T: std::str::FromStr>(
    v: &str,
    name: &'static str,
    problem: &'static str,
) -> Result<T, ConfigError> {
    v.parse().map_err(|_| ConfigError::Invalid {
        name,
        value: v.to_owned(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = ApiConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(
            c.database,
            DatabaseConfig::Sqlite(PathBuf::from(DEFAULT_DATABASE))
        );
        assert_eq!(c.queue_name, DEFAULT_QUEUE);
        assert_eq!(c.sqs_endpoint, None);
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn reads_standard_names_first() {
        let c = ApiConfig::from_env(&env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("DATABASE_URL", "sqlite:///tmp/x.db"),
        ]))
        .unwrap();
        assert_eq!(c.sqs_endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(
            c.database,
            DatabaseConfig::Sqlite(PathBuf::from("/tmp/x.db"))
        );
    }

    #[test]
    fn refuses_bad_values_naming_them() {
        let e = ApiConfig::from_env(&env(&[("ONBOARDING_API_ADDR", "localhost")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ONBOARDING_API_ADDR: \"localhost\""),
            "{e}"
        );
        let e = ApiConfig::from_env(&env(&[("DATABASE_URL", "postgres://u:secret@db:port/x")]))
            .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(e.to_string().starts_with("DATABASE_URL: "), "{e}");
        let e = ApiConfig::from_env(&env(&[("DATABASE_URL", "postgresql:x")])).unwrap_err();
        assert!(e.to_string().contains("is not a PostgreSQL URL"), "{e}");
        let e = ApiConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://u:secret@db/x"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("DATABASE_MAX_CONNECTIONS"), "{e}");
        let e = ApiConfig::from_env(&env(&[("ONBOARDING_QUEUE_TIMEOUT_MS", "soon")])).unwrap_err();
        assert!(e.to_string().contains("ONBOARDING_QUEUE_TIMEOUT_MS"), "{e}");
    }

    #[test]
    fn reads_postgres_urls_and_pool_settings() {
        for url in [
            "postgres://u:secret@db:6543/x",
            "postgresql://u:secret@db:6543/x",
        ] {
            let c = ApiConfig::from_env(&env(&[
                ("DATABASE_URL", url),
                ("DATABASE_MAX_CONNECTIONS", "3"),
                ("DATABASE_CONNECT_TIMEOUT_MS", "250"),
            ]))
            .unwrap();
            let DatabaseConfig::Postgres(pg) = &c.database else {
                panic!("{url} is not PostgreSQL: {:?}", c.database);
            };
            assert_eq!(pg.max_connections, 3);
            assert_eq!(pg.connect_timeout, Duration::from_millis(250));
            let options = pg.connect_options().unwrap();
            assert_eq!((options.get_host(), options.get_port()), ("db", 6543));
            assert_eq!(options.get_database(), Some("x"));
            for shown in [
                format!("{c:?}"),
                c.database.to_string(),
                pg.redacted_url.clone(),
            ] {
                assert!(!shown.contains("secret"), "{shown}");
            }
        }
        let c = ApiConfig::from_env(&env(&[("DATABASE_URL", "postgres://db/x")])).unwrap();
        let DatabaseConfig::Postgres(pg) = c.database else {
            panic!("not PostgreSQL")
        };
        assert_eq!(pg.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(pg.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }
}
