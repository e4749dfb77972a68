//! Where a service keeps its tables, from `DATABASE_URL`, held once for every system: an SQLite
//! file (`sqlite:PATH`, `sqlite://PATH` or a plain path) or PostgreSQL (`postgres://…`,
//! `postgresql://…`, libpq's unix-socket form `postgres://user@/db?host=/dir` included), with the
//! tables of a system in a schema of its own when it keeps them apart ([`Location`]), and the
//! SQLite file opened with the settings every service uses ([`open_sqlite`]).
//!
//! The URL's password is never shown: `Debug`, `Display` and every error carry
//! [`redact_password`]'s form; only [`PostgresUrl::connect_options`] carries it, to connect.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The setting naming the database.
pub const DATABASE_URL: &str = "DATABASE_URL";

/// A `DATABASE_URL` that names no database this kit opens; `value` has its password redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DATABASE_URL: {value:?} {problem}")]
pub struct DatabaseUrlError {
    pub value: String,
    pub problem: &'static str,
}

/// Where `DATABASE_URL` says the database is.
#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseUrl {
    /// `sqlite:PATH`, `sqlite://PATH` or a plain path: an embedded file.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(PostgresUrl),
}

impl DatabaseUrl {
    /// `DATABASE_URL` of `env` (trimmed; unset or empty is `default_url`).
    pub fn from_env(
        env: &HashMap<String, String>,
        default_url: &str,
    ) -> Result<Self, DatabaseUrlError> {
        let url = env
            .get(DATABASE_URL)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .unwrap_or(default_url);
        Self::parse(url)
    }

    /// Reads one URL. A PostgreSQL URL is checked now, so a bad one stops start-up naming
    /// `DATABASE_URL`.
    pub fn parse(url: &str) -> Result<Self, DatabaseUrlError> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return PostgresUrl::parse(url).map(Self::Postgres);
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(DatabaseUrlError {
                value: redact_password(url),
                problem: "is not sqlite:PATH, a file path, or postgres://…",
            });
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

/// A PostgreSQL URL, checked. `Debug` and `Display` show [`Self::redacted`] only.
#[derive(Clone)]
pub struct PostgresUrl {
    /// The URL as read (in its socket form), password included: compared, never shown.
    url: String,
    options: PgConnectOptions,
    redacted: String,
}

impl PartialEq for PostgresUrl {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl PostgresUrl {
    fn parse(url: &str) -> Result<Self, DatabaseUrlError> {
        let url = libpq_socket_form(url);
        let redacted = redact_password(&url);
        let options = url
            .contains("://")
            .then(|| PgConnectOptions::from_str(&url).ok())
            .flatten()
            .ok_or_else(|| DatabaseUrlError {
                value: redacted.clone(),
                problem: "is not a PostgreSQL URL (postgres://user:password@host:port/database)",
            })?;
        Ok(Self {
            url,
            options,
            redacted,
        })
    }

    /// The URL with its password replaced by `***`: safe for logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    pub fn host(&self) -> &str {
        self.options.get_host()
    }

    pub fn port(&self) -> u16 {
        self.options.get_port()
    }

    /// The database named, `postgres` when the URL names none.
    pub fn database(&self) -> &str {
        self.options.get_database().unwrap_or("postgres")
    }

    /// The options to connect with (`PG*` variables of the process filled what the URL left
    /// out, as with libpq).
    ///
    /// Also installs rustls's ring crypto provider as the process default if none is: sqlx's
    /// `sslmode=verify-ca` builds its own certificate verifier from the process default, and
    /// without one it panics when it connects (with more than one provider compiled in, rustls
    /// cannot pick).
    pub fn connect_options(&self) -> PgConnectOptions {
        // An error only means a provider is installed already, which is all that is needed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        self.options.clone()
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PostgresUrl").field(&self.redacted).finish()
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// A schema setting that is not a plain PostgreSQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {value:?} is not a schema name (letters, digits, _)")]
pub struct SchemaNameError {
    pub setting: &'static str,
    pub value: String,
}

/// The variable naming a system's PostgreSQL schema and the schema when it is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaSetting {
    /// `SHOP_DATABASE_SCHEMA`, `EVENTS_DATABASE_SCHEMA`, …
    pub env: &'static str,
    pub default: &'static str,
}

impl SchemaSetting {
    /// The schema `env` names (trimmed; unset or empty is the default): letters, digits and `_`,
    /// not starting with a digit, so it can stand unquoted in `CREATE SCHEMA` and `search_path`.
    pub fn read(&self, env: &HashMap<String, String>) -> Result<String, SchemaNameError> {
        let schema = env
            .get(self.env)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(self.default);
        let plain = schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if plain {
            Ok(schema.to_owned())
        } else {
            Err(SchemaNameError {
                setting: self.env,
                value: schema.to_owned(),
            })
        }
    }
}

/// A database setting of a system that keeps its tables in their own schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error(transparent)]
    Url(#[from] DatabaseUrlError),
    #[error(transparent)]
    Schema(#[from] SchemaNameError),
}

/// Where a system's tables are: an SQLite file, or a PostgreSQL database and the schema they
/// live in.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(PostgresSchema),
}

impl Location {
    /// From `DATABASE_URL` (`default_url` when unset) and, for PostgreSQL, the schema setting.
    pub fn from_env(
        env: &HashMap<String, String>,
        default_url: &str,
        schema: SchemaSetting,
    ) -> Result<Self, LocationError> {
        Ok(match DatabaseUrl::from_env(env, default_url)? {
            DatabaseUrl::Sqlite(path) => Self::Sqlite(path),
            DatabaseUrl::Postgres(url) => Self::Postgres(PostgresSchema {
                url,
                schema: schema.read(env)?,
            }),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Self::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

/// A PostgreSQL database and the schema a system's tables live in.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSchema {
    pub url: PostgresUrl,
    pub schema: String,
}

impl PostgresSchema {
    pub fn host(&self) -> &str {
        self.url.host()
    }
    pub fn port(&self) -> u16 {
        self.url.port()
    }
    pub fn database(&self) -> &str {
        self.url.database()
    }

    /// A pool of at most `size` connections, each waiter given `wait`, every connection's
    /// `search_path` the schema (which the caller has created).
    pub async fn pool(&self, size: u32, wait: Duration) -> Result<PgPool, sqlx::Error> {
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
            .connect_with(self.url.connect_options())
            .await
    }
}

impl std::fmt::Display for PostgresSchema {
    /// `PostgreSQL host:port/database (schema s)`: no user, no password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PostgreSQL {}:{}/{} (schema {})",
            self.host(),
            self.port(),
            self.database(),
            self.schema
        )
    }
}

/// libpq's unix-socket form has an empty host (`postgres://user@/db?host=/path/to/socket`),
/// which sqlx's URL parser refuses; libpq then takes the host from the `host` parameter. Gives
/// such a URL the placeholder host `localhost`, which sqlx, as libpq, replaces with a `host=`
/// parameter that is a directory (a socket). Any other URL is returned as it is.
fn libpq_socket_form(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let socket_param = tail
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("host=/")));
    if host.is_empty() && socket_param {
        format!("{scheme}://{authority}localhost{tail}")
    } else {
        url.to_owned()
    }
}

/// The URL with the password of its user info (`user:PASSWORD@`) and of a `password=` query
/// parameter replaced by `***`. Works on text that does not parse as a URL, too.
pub fn redact_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    // The user info ends at the last `@` before the query: a password may hold `/` or `@`.
    let query_at = url[start..].find('?').map_or(url.len(), |i| start + i);
    let mut out = match url[start..query_at].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!(
                "{}{user}{masked}{}",
                &url[..start],
                &url[start + at..query_at]
            )
        }
        None => url[..query_at].to_owned(),
    };
    if query_at < url.len() {
        let query = url[query_at + 1..]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out.push('?');
        out.push_str(&query);
    }
    out
}

/// How long an SQLite connection waits for another writer's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`open_sqlite`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    /// The file's directory could not be created.
    #[error("cannot create the directory {path}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file could not be opened, configured, or given its tables.
    #[error("database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// Opens (creating it and its directory when missing) an SQLite file in WAL mode with a 5 s
/// busy timeout and `synchronous = NORMAL`, so several services (and connections) can write the
/// same file, then runs `schema` (`CREATE … IF NOT EXISTS` statements). Blocking: call it at
/// start-up or from `spawn_blocking`.
pub fn open_sqlite(path: &Path, schema: &str) -> Result<rusqlite::Connection, SqliteOpenError> {
    let db_err = |source| SqliteOpenError::Database {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SqliteOpenError::Directory {
            path: dir.to_owned(),
            source,
        })?;
    }
    let conn = rusqlite::Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(db_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    conn.execute_batch(schema).map_err(db_err)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const SHOP: SchemaSetting = SchemaSetting {
        env: "SHOP_DATABASE_SCHEMA",
        default: "shop",
    };

    #[test]
    fn reads_every_sqlite_form_and_the_default() {
        for (url, path) in [
            ("sqlite:///tmp/x.db", "/tmp/x.db"),
            ("sqlite:x.db", "x.db"),
            ("sqlite://x.db", "x.db"),
            ("data/y.sqlite3", "data/y.sqlite3"),
        ] {
            assert_eq!(
                DatabaseUrl::from_env(&env(&[(DATABASE_URL, url)]), "d.db").unwrap(),
                DatabaseUrl::Sqlite(PathBuf::from(path)),
                "{url}"
            );
        }
        for unset in [&env(&[]), &env(&[(DATABASE_URL, "  ")])] {
            assert_eq!(
                DatabaseUrl::from_env(unset, "sqlite:d.db").unwrap(),
                DatabaseUrl::Sqlite(PathBuf::from("d.db"))
            );
        }
    }

    #[test]
    fn refuses_what_is_neither_naming_the_variable_without_the_password() {
        for (url, needle) in [
            ("postgres://u:secret@db:port/x", "is not a PostgreSQL URL"),
            ("postgresql:x", "is not a PostgreSQL URL"),
            ("postgres:x", "is not a PostgreSQL URL"),
            ("postgres://user@/db", "is not a PostgreSQL URL"),
            ("mysql://u:secret@db/x", "sqlite:PATH"),
            ("sqlite:", "sqlite:PATH"),
        ] {
            let shown = DatabaseUrl::parse(url).unwrap_err().to_string();
            assert!(
                shown.starts_with("DATABASE_URL: ") && shown.contains(needle),
                "{shown}"
            );
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn accepts_libpqs_unix_socket_form() {
        for url in [
            "postgres://user@/db?host=/run/postgresql",
            "postgresql://user:secret@/db?host=/run/postgresql&sslmode=disable",
            "postgres:///db?host=/run/postgresql",
        ] {
            let Ok(DatabaseUrl::Postgres(pg)) = DatabaseUrl::parse(url) else {
                panic!("{url} is refused");
            };
            assert_eq!(
                pg.connect_options()
                    .get_socket()
                    .map(|p| p.display().to_string()),
                Some("/run/postgresql".to_owned()),
                "{url}"
            );
            assert!(!format!("{pg:?} {pg}").contains("secret"));
        }
    }

    #[test]
    fn a_schema_location_names_host_port_database_and_schema_only() {
        let url = "postgres://u:secret@db.local:5433/n";
        let pg = Location::from_env(&env(&[(DATABASE_URL, url)]), "x.db", SHOP).unwrap();
        assert_eq!(pg.to_string(), "PostgreSQL db.local:5433/n (schema shop)");
        assert!(!format!("{pg:?}").contains("secret"), "{pg:?}");
        let named = env(&[(DATABASE_URL, url), ("SHOP_DATABASE_SCHEMA", " s_2 ")]);
        let Location::Postgres(pg) = Location::from_env(&named, "x.db", SHOP).unwrap() else {
            panic!("not PostgreSQL");
        };
        assert_eq!(pg.schema, "s_2");
        // SQLite ignores the schema setting, even a bad one.
        let sqlite = env(&[(DATABASE_URL, "x.db"), ("SHOP_DATABASE_SCHEMA", "a b")]);
        assert!(matches!(
            Location::from_env(&sqlite, "d.db", SHOP),
            Ok(Location::Sqlite(_))
        ));
    }

    #[test]
    fn a_schema_is_a_plain_identifier() {
        for bad in ["shop; DROP", "1shop", "sh-op", "sch\u{e9}ma"] {
            let e = SHOP
                .read(&env(&[("SHOP_DATABASE_SCHEMA", bad)]))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("SHOP_DATABASE_SCHEMA: {bad:?} is not a schema name (letters, digits, _)")
            );
        }
        assert_eq!(SHOP.read(&env(&[])).unwrap(), "shop");
        assert_eq!(
            SHOP.read(&env(&[("SHOP_DATABASE_SCHEMA", "")])).unwrap(),
            "shop"
        );
    }

    #[test]
    fn redacts_passwords_wherever_they_are() {
        for (url, shown) in [
            ("postgres://u:pw@h:5432/d", "postgres://u:***@h:5432/d"),
            ("postgres://u@h/d", "postgres://u@h/d"),
            ("postgres://h/d", "postgres://h/d"),
            ("postgres://u:p@w/rd@h/d", "postgres://u:***@h/d"),
            (
                "postgres://u:pw@h/d?sslmode=disable",
                "postgres://u:***@h/d?sslmode=disable",
            ),
            (
                "postgres://h/d?user=u&password=pw",
                "postgres://h/d?user=u&password=***",
            ),
            (
                "postgresql://u:secret@db:6543/x?password=secret",
                "postgresql://u:***@db:6543/x?password=***",
            ),
            ("postgres://h/d?a@b", "postgres://h/d?a@b"),
            ("not a url u:pw@h", "not a url u:pw@h"),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }
}
