//! Where the tables are, from `DATABASE_URL`: an SQLite file (`sqlite:PATH`, `sqlite://PATH` or a
//! plain path), or PostgreSQL (`postgres://…`, `postgresql://…`) with the tables in the schema
//! `EVENTS_DATABASE_SCHEMA` (`events`). The URL is never printed: messages name host, port,
//! database and schema.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::{DATABASE_URL, DEFAULT_SCHEMA, DEFAULT_SQLITE_PATH, SCHEMA_ENV};

/// Why the database could not be opened (or named).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "DATABASE_URL: not a PostgreSQL URL (postgres://user@host:port/database) nor an SQLite path (sqlite:PATH, sqlite://PATH or a plain path)"
    )]
    Url,
    #[error("EVENTS_DATABASE_SCHEMA: {0:?} is not a schema name (letters, digits, _)")]
    Schema(String),
    #[error("cannot create the database directory {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot open the database {what}")]
    Postgres {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database set-up task stopped")]
    Task(#[source] tokio::task::JoinError),
}

/// Where the tables are.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(Postgres),
}

/// A PostgreSQL database and the schema the tables live in (`Debug` shows no password).
#[derive(Clone)]
pub struct Postgres {
    pub(crate) options: PgConnectOptions,
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
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("host", &self.host())
            .field("port", &self.port())
            .field("database", &self.database())
            .field("schema", &self.schema)
            .finish()
    }
}

impl Location {
    /// From `DATABASE_URL` (the SQLite file `events.sqlite3` when it is not set) and
    /// `EVENTS_DATABASE_SCHEMA`.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, OpenError> {
        let url = env
            .get(DATABASE_URL)
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_SQLITE_PATH);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|_| OpenError::Url)?;
            let schema = env
                .get(SCHEMA_ENV)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .unwrap_or(DEFAULT_SCHEMA)
                .to_owned();
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                || schema.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(OpenError::Schema(schema));
            }
            return Ok(Self::Postgres(Postgres { options, schema }));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(OpenError::Url);
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Location {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn database_url_forms_and_the_password_never_shown() {
        let sqlite = |v: &str| match Location::from_env(&env(&[(DATABASE_URL, v)])).unwrap() {
            Location::Sqlite(p) => p,
            other => panic!("{other}"),
        };
        assert_eq!(sqlite("sqlite:/a/b.db"), PathBuf::from("/a/b.db"));
        assert_eq!(sqlite("sqlite:///a/b.db"), PathBuf::from("/a/b.db"));
        assert_eq!(sqlite("b.db"), PathBuf::from("b.db"));
        assert!(matches!(
            Location::from_env(&HashMap::new()).unwrap(),
            Location::Sqlite(p) if p == std::path::Path::new(DEFAULT_SQLITE_PATH)
        ));
        let pg = Location::from_env(&env(&[(
            DATABASE_URL,
            "postgres://u:secret@db.local:5433/n",
        )]))
        .unwrap();
        assert_eq!(pg.to_string(), "PostgreSQL db.local:5433/n (schema events)");
        assert!(!format!("{pg:?}").contains("secret"), "{pg:?}");
        let err = Location::from_env(&env(&[(DATABASE_URL, "mysql://u:secret@h/db")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DATABASE_URL: not a PostgreSQL URL")
        );
        assert!(!err.to_string().contains("secret"));
        let err = Location::from_env(&env(&[
            (DATABASE_URL, "postgres://u@h/d"),
            (SCHEMA_ENV, "events; DROP"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "EVENTS_DATABASE_SCHEMA: \"events; DROP\" is not a schema name (letters, digits, _)"
        );
    }
}
