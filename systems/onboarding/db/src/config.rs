//! `DATABASE_URL` (read by the service kit's `database` module, shared by every system) and
//! onboarding's pool settings, from an environment map: an SQLite file (the default) or a
//! PostgreSQL URL whose password is shown redacted everywhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use throughline_service_kit::database::{DATABASE_URL, DatabaseUrl, DatabaseUrlError, PostgresUrl};

/// The default SQLite file, relative to the working directory: both services open it unless
/// `DATABASE_URL` says otherwise.
pub const DEFAULT_SQLITE_PATH: &str = "data/onboarding.sqlite3";
/// The default bound on connecting to PostgreSQL (`DATABASE_CONNECT_TIMEOUT_MS`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a service uses when a variable is unset: the services differ in pool size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseDefaults {
    /// `DATABASE_URL` when unset or empty.
    pub url: &'static str,
    /// `DATABASE_MAX_CONNECTIONS` when unset (PostgreSQL only).
    pub max_connections: u32,
    /// `DATABASE_CONNECT_TIMEOUT_MS` when unset (PostgreSQL only).
    pub connect_timeout: Duration,
}

/// Where the shared database is: `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseConfig {
    /// `sqlite:PATH`, `sqlite://PATH` or a plain path: an embedded file.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(PostgresConfig),
}

impl std::fmt::Display for DatabaseConfig {
    /// The path, or the URL with its password redacted: safe for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(pg) => f.write_str(&pg.redacted_url),
        }
    }
}

/// A PostgreSQL database. `Debug` and every message show [`Self::redacted_url`] only.
#[derive(Clone, PartialEq)]
pub struct PostgresConfig {
    /// The URL as read by the service kit, password included: only for connecting.
    url: PostgresUrl,
    /// The URL with its password replaced by `***`.
    pub redacted_url: String,
    /// `DATABASE_MAX_CONNECTIONS`: the pool's size.
    pub max_connections: u32,
    /// `DATABASE_CONNECT_TIMEOUT_MS`: how long a connection (or a free one from the pool) may take.
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    /// The connection options; the URL was checked by [`DatabaseConfig::from_env`]. `PG*`
    /// variables of the process fill what the URL leaves out, as with libpq; rustls's crypto
    /// provider is installed for `sslmode=verify-ca` ([`PostgresUrl::connect_options`]).
    pub fn connect_options(&self) -> Result<sqlx::postgres::PgConnectOptions, sqlx::Error> {
        Ok(self.url.connect_options())
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A `DATABASE_*` value that cannot be used; `value` has any password redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {value:?} {problem}")]
pub struct DatabaseConfigError {
    /// The variable: `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS` or `DATABASE_CONNECT_TIMEOUT_MS`.
    pub name: &'static str,
    pub value: String,
    pub problem: &'static str,
}

impl From<DatabaseUrlError> for DatabaseConfigError {
    fn from(e: DatabaseUrlError) -> Self {
        Self {
            name: DATABASE_URL,
            value: e.value,
            problem: e.problem,
        }
    }
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL` (the service kit's [`DatabaseUrl`]), and for PostgreSQL
    /// `DATABASE_MAX_CONNECTIONS` and `DATABASE_CONNECT_TIMEOUT_MS`, from an environment map
    /// (values trimmed, empty as unset). A PostgreSQL URL is checked now, so a bad one stops
    /// start-up naming `DATABASE_URL`.
    pub fn from_env(
        env: &HashMap<String, String>,
        defaults: &DatabaseDefaults,
    ) -> Result<Self, DatabaseConfigError> {
        let url = match DatabaseUrl::from_env(env, defaults.url)? {
            DatabaseUrl::Sqlite(path) => return Ok(Self::Sqlite(path)),
            DatabaseUrl::Postgres(url) => url,
        };
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let invalid = |name, value: &str, problem| DatabaseConfigError {
            name,
            value: value.to_owned(),
            problem,
        };
        let max_connections = match get("DATABASE_MAX_CONNECTIONS") {
            None => defaults.max_connections,
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                invalid(
                    "DATABASE_MAX_CONNECTIONS",
                    v,
                    "is not a number of at least 1",
                )
            })?,
        };
        let connect_timeout = match get("DATABASE_CONNECT_TIMEOUT_MS") {
            None => defaults.connect_timeout,
            Some(v) => Duration::from_millis(v.parse().map_err(|_| {
                invalid(
                    "DATABASE_CONNECT_TIMEOUT_MS",
                    v,
                    "is not a number of milliseconds",
                )
            })?),
        };
        Ok(Self::Postgres(PostgresConfig {
            redacted_url: url.redacted().to_owned(),
            url,
            max_connections,
            connect_timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: DatabaseDefaults = DatabaseDefaults {
        url: DEFAULT_SQLITE_PATH,
        max_connections: 7,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
    };

    fn config(pairs: &[(&str, &str)]) -> Result<DatabaseConfig, DatabaseConfigError> {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DatabaseConfig::from_env(&env, &DEFAULTS)
    }

    #[test]
    fn defaults_to_the_sqlite_file_of_the_defaults() {
        assert_eq!(
            config(&[]).unwrap(),
            DatabaseConfig::Sqlite(PathBuf::from(DEFAULT_SQLITE_PATH))
        );
        assert_eq!(
            config(&[("DATABASE_URL", "  ")]).unwrap(),
            DatabaseConfig::Sqlite(PathBuf::from(DEFAULT_SQLITE_PATH))
        );
    }

    #[test]
    fn reads_every_sqlite_form() {
        for (url, path) in [
            ("sqlite:///tmp/x.db", "/tmp/x.db"),
            ("sqlite:x.db", "x.db"),
            ("sqlite://x.db", "x.db"),
            ("data/y.sqlite3", "data/y.sqlite3"),
        ] {
            assert_eq!(
                config(&[("DATABASE_URL", url)]).unwrap(),
                DatabaseConfig::Sqlite(PathBuf::from(path)),
                "{url}"
            );
        }
    }

    #[test]
    fn refuses_bad_values_naming_them_without_the_password() {
        for (pairs, name, needle) in [
            (
                &[("DATABASE_URL", "postgres://u:secret@db:port/x")][..],
                "DATABASE_URL",
                "is not a PostgreSQL URL",
            ),
            (
                &[("DATABASE_URL", "postgresql:x")],
                "DATABASE_URL",
                "is not a PostgreSQL URL",
            ),
            (
                &[("DATABASE_URL", "postgres:x")],
                "DATABASE_URL",
                "is not a PostgreSQL URL",
            ),
            (
                &[("DATABASE_URL", "mysql://u:secret@db/x")],
                "DATABASE_URL",
                "sqlite:PATH",
            ),
            (
                &[("DATABASE_URL", "sqlite:")],
                "DATABASE_URL",
                "sqlite:PATH",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://u:secret@db/x"),
                    ("DATABASE_MAX_CONNECTIONS", "0"),
                ],
                "DATABASE_MAX_CONNECTIONS",
                "at least 1",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://u:secret@db/x"),
                    ("DATABASE_MAX_CONNECTIONS", "many"),
                ],
                "DATABASE_MAX_CONNECTIONS",
                "is not a number",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://u:secret@db/x"),
                    ("DATABASE_CONNECT_TIMEOUT_MS", "soon"),
                ],
                "DATABASE_CONNECT_TIMEOUT_MS",
                "milliseconds",
            ),
        ] {
            let e = config(pairs).unwrap_err();
            assert_eq!(e.name, name, "{e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{name}: ")) && shown.contains(needle),
                "{shown}"
            );
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn reads_postgres_urls_and_pool_settings() {
        for url in [
            "postgres://u:secret@db:6543/x",
            "postgresql://u:secret@db:6543/x",
        ] {
            let c = config(&[
                ("DATABASE_URL", url),
                ("DATABASE_MAX_CONNECTIONS", "3"),
                ("DATABASE_CONNECT_TIMEOUT_MS", "250"),
            ])
            .unwrap();
            let DatabaseConfig::Postgres(pg) = &c else {
                panic!("{url} is not PostgreSQL: {c:?}");
            };
            assert_eq!(pg.max_connections, 3);
            assert_eq!(pg.connect_timeout, Duration::from_millis(250));
            let options = pg.connect_options().unwrap();
            assert_eq!((options.get_host(), options.get_port()), ("db", 6543));
            assert_eq!(options.get_database(), Some("x"));
            for shown in [format!("{c:?}"), c.to_string(), pg.redacted_url.clone()] {
                assert!(!shown.contains("secret"), "{shown}");
            }
        }
        let DatabaseConfig::Postgres(pg) = config(&[("DATABASE_URL", "postgres://db/x")]).unwrap()
        else {
            panic!("not PostgreSQL")
        };
        assert_eq!(pg.max_connections, DEFAULTS.max_connections);
        assert_eq!(pg.connect_timeout, DEFAULTS.connect_timeout);
    }

    #[test]
    fn pool_settings_do_not_matter_for_sqlite() {
        // A bad pool setting is not an error when DATABASE_URL names an SQLite file.
        assert_eq!(
            config(&[("DATABASE_URL", "x.db"), ("DATABASE_MAX_CONNECTIONS", "0")]).unwrap(),
            DatabaseConfig::Sqlite(PathBuf::from("x.db"))
        );
    }
}
