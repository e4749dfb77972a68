//! [`Database`]: one SQLite connection shared by a service's tasks, each statement run on the
//! blocking pool under its CLIENT span (`{operation} {table}`, from `throughline-instrument`'s
//! [`DbClient`]) with the caller's context as parent and, when the commenter is on, the span's
//! `traceparent` in a comment at the end of the statement.

use std::path::Path;
use std::sync::{Arc, Mutex};

use opentelemetry::Context;
use rusqlite::{Connection, Params, Row};
use throughline_instrument::{DbClient, DbOperation, DbTarget, SharedTracer};

use crate::OpenError;

/// A statement that failed, or the blocking task that ran it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database statement failed")]
    Query(#[from] rusqlite::Error),
    #[error("the database task stopped")]
    Task(#[source] tokio::task::JoinError),
}

/// The shared connection and the spans of its statements.
#[derive(Debug, Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
    db: DbClient,
}

/// What a [`Database::run`] closure works with: traced statements on the locked connection.
#[derive(Debug)]
pub struct Session<'a> {
    conn: &'a Connection,
    db: &'a DbClient,
}

impl Database {
    /// Opens (creating and seeding) the file; its spans come from `tracer`.
    pub fn open(path: &Path, tracer: SharedTracer, sql_commenter: bool) -> Result<Self, OpenError> {
        let conn = crate::open(path)?;
        let target = DbTarget::new("sqlite").namespace(crate::NAMESPACE);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            db: DbClient::shared(tracer, target).sql_commenter(sql_commenter),
        })
    }

    /// Runs `work` on the blocking pool, holding the connection, with the caller's context as
    /// the parent of every span it starts.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Session<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let cx = Context::current();
        let conn = Arc::clone(&self.conn);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            // Attached on this thread for the closure only (no `.await` in between).
            let _attached = cx.attach();
            // A poisoned lock means a statement panicked; SQLite's connection is still sound.
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            work(&Session {
                conn: &conn,
                db: &db,
            })
        })
        .await
        .map_err(DbError::Task)?
        .map_err(DbError::Query)
    }
}

impl Session<'_> {
    /// The rows of `sql` under the span `{operation} {table}`.
    pub fn rows<T>(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        params: impl Params,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let span = self.start(operation, table, sql);
        let sql = self.db.comment(&span, sql);
        let result = self
            .conn
            .prepare(&sql)
            .and_then(|mut stmt| stmt.query_map(params, map)?.collect());
        if let Err(e) = &result {
            span.fail("database", e);
        }
        result
    }

    /// Runs `sql` under the span `{operation} {table}`; the number of rows changed.
    pub fn execute(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        params: impl Params,
    ) -> rusqlite::Result<usize> {
        let span = self.start(operation, table, sql);
        let sql = self.db.comment(&span, sql);
        let result = self.conn.execute(&sql, params);
        if let Err(e) = &result {
            span.fail("database", e);
        }
        result
    }

    /// The connection itself, for untraced statements (`BEGIN`, `COMMIT`, health pings).
    pub fn connection(&self) -> &Connection {
        self.conn
    }

    fn start(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
    ) -> throughline_instrument::ActiveSpan {
        self.db.start(
            DbOperation::new(operation)
                .collection(table)
                .query_text(sql.to_owned()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughline_telemetry::testing::TestTracing;

    #[tokio::test]
    async fn each_statement_has_its_span_under_the_callers_context() {
        let tracing = TestTracing::new();
        let tracer: SharedTracer = Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(
            tracing.tracer("db-test"),
        )));
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.sqlite3"), tracer, true).unwrap();
        let titles = db
            .run(|s| {
                s.rows(
                    "SELECT",
                    "videos",
                    "SELECT title FROM videos WHERE id = ?1",
                    ["vid-001"],
                    |r| r.get::<_, String>(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(titles, ["Morning Routine"]);
        let spans = tracing.spans();
        spans.assert_attribute("SELECT videos", "db.system.name", "sqlite");
        spans.assert_attribute("SELECT videos", "db.namespace", "nedlia");
        let bad = db
            .run(|s| s.execute("DELETE", "nowhere", "DELETE FROM nowhere", []))
            .await;
        assert!(matches!(bad, Err(DbError::Query(_))));
        tracing
            .spans()
            .assert_attribute("DELETE nowhere", "error.type", "database");
    }
}
