//! Where the tables are, from `DATABASE_URL` (read by the service kit's `database` module, as
//! every system's is): an SQLite file (`sqlite:PATH`, `sqlite://PATH` or a plain path), or
//! PostgreSQL (`postgres://…`, `postgresql://…`) with the tables in the schema
//! `EVENTS_DATABASE_SCHEMA` (`events`). The URL is never printed: messages name host, port,
//! database and schema.

use std::collections::HashMap;
use std::path::PathBuf;

use throughline_service_kit::database::{LocationError, SchemaSetting, SqliteOpenError};

use crate::{DEFAULT_SCHEMA, DEFAULT_SQLITE_PATH, SCHEMA_ENV};

/// Why the database could not be opened (or named).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `DATABASE_URL` or `EVENTS_DATABASE_SCHEMA` names nothing usable.
    #[error(transparent)]
    Setting(#[from] LocationError),
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

impl From<SqliteOpenError> for OpenError {
    fn from(e: SqliteOpenError) -> Self {
        match e {
            SqliteOpenError::Directory { path, source } => Self::Directory { path, source },
            SqliteOpenError::Database { path, source } => Self::Open { path, source },
        }
    }
}

/// Where the tables are.
pub type Location = throughline_service_kit::database::Location;

/// A PostgreSQL database and the schema the tables live in (`Debug` shows no password).
pub type Postgres = throughline_service_kit::database::PostgresSchema;

/// The events' schema setting: `EVENTS_DATABASE_SCHEMA`, `events` unless told.
pub const SCHEMA_SETTING: SchemaSetting = SchemaSetting {
    env: SCHEMA_ENV,
    default: DEFAULT_SCHEMA,
};

/// From `DATABASE_URL` (the SQLite file `events.sqlite3` when it is not set) and
/// `EVENTS_DATABASE_SCHEMA`.
pub fn location_from_env(env: &HashMap<String, String>) -> Result<Location, OpenError> {
    Ok(Location::from_env(
        env,
        DEFAULT_SQLITE_PATH,
        SCHEMA_SETTING,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DATABASE_URL;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn database_url_forms_and_the_password_never_shown() {
        let sqlite = |v: &str| match location_from_env(&env(&[(DATABASE_URL, v)])).unwrap() {
            Location::Sqlite(p) => p,
            other => panic!("{other}"),
        };
        assert_eq!(sqlite("sqlite:/a/b.db"), PathBuf::from("/a/b.db"));
        assert_eq!(sqlite("sqlite:///a/b.db"), PathBuf::from("/a/b.db"));
        assert_eq!(sqlite("b.db"), PathBuf::from("b.db"));
        assert!(matches!(
            location_from_env(&HashMap::new()).unwrap(),
            Location::Sqlite(p) if p == std::path::Path::new(DEFAULT_SQLITE_PATH)
        ));
        let pg = location_from_env(&env(&[(
            DATABASE_URL,
            "postgres://u:secret@db.local:5433/n",
        )]))
        .unwrap();
        assert_eq!(pg.to_string(), "PostgreSQL db.local:5433/n (schema events)");
        assert!(!format!("{pg:?}").contains("secret"), "{pg:?}");
        let err = location_from_env(&env(&[(DATABASE_URL, "mysql://u:secret@h/db")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DATABASE_URL: \"mysql://u:***@h/db\" is not sqlite:PATH")
        );
        assert!(!err.to_string().contains("secret"));
        let err = location_from_env(&env(&[
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
