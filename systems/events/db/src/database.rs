//! [`Database`]: the tables on one engine (SQLite: one connection shared by a service's tasks,
//! each statement on the blocking pool; PostgreSQL: an `sqlx` pool whose connections'
//! `search_path` is the schema), each statement under its CLIENT span (`{operation} {table}`,
//! from `throughline-instrument`'s [`DbClient`]) with the caller's context as parent and, when
//! the commenter is on, the span's `traceparent` in a comment at the end of the statement.
//!
//! Statements are written once with SQLite's `?1`-numbered parameters; on PostgreSQL they are
//! sent as `$1`. Rows are read through [`Row`], whichever engine produced them.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::{ToSql, ToSqlOutput};
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::{Connection as _, Executor as _, PgConnection, Row as _};
use throughline_instrument::{ActiveSpan, DbClient, DbOperation, DbTarget, SharedTracer};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{Location, OpenError};

/// The advisory lock that serializes the schema's creation and the seed on PostgreSQL (the API
/// and three workers start at once).
const SCHEMA_LOCK_KEY: i64 = 0x6e65_646c_6961; // "nedlia"

/// A statement that failed, or the blocking task that ran it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database statement failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database statement failed")]
    Postgres(#[from] sqlx::Error),
    #[error("the database task stopped")]
    Task(#[source] tokio::task::JoinError),
    #[error("the transaction lost its connection when a database task stopped")]
    Lost,
}

/// A statement's parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Real(f64),
    Int(i64),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Self::Real(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Self::Text(s) => s.to_sql(),
            Self::Real(f) => f.to_sql(),
            Self::Int(i) => i.to_sql(),
        }
    }
}

/// One result row, by column position, on either engine.
pub trait Row {
    fn text(&self, i: usize) -> Result<String, DbError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, DbError>;
    fn real(&self, i: usize) -> Result<f64, DbError>;
    fn int(&self, i: usize) -> Result<i64, DbError>;
}

impl Row for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, DbError> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        Ok(self.get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64, DbError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, DbError> {
        Ok(self.get(i)?)
    }
}

impl Row for PgRow {
    fn text(&self, i: usize) -> Result<String, DbError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        Ok(self.try_get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64, DbError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, DbError> {
        Ok(self.try_get(i)?)
    }
}

#[derive(Debug, Clone)]
enum Engine {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(PgPool),
}

/// The tables and the spans of their statements.
#[derive(Debug, Clone)]
pub struct Database {
    engine: Engine,
    db: DbClient,
    commenter: bool,
}

/// A transaction (SQLite: `BEGIN IMMEDIATE` on the held connection; PostgreSQL: a pooled
/// connection's). Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx {
    inner: TxInner,
    db: DbClient,
    commenter: bool,
}

#[derive(Debug)]
enum TxInner {
    Sqlite(Option<OwnedMutexGuard<Connection>>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Database {
    /// Opens (creating and seeding) the tables at `location`; spans come from `tracer`. On
    /// PostgreSQL the pool holds at most `max_connections`.
    pub async fn open(
        location: &Location,
        tracer: SharedTracer,
        sql_commenter: bool,
        max_connections: u32,
    ) -> Result<Self, OpenError> {
        let (engine, target) = match location {
            Location::Sqlite(path) => {
                let path = path.clone();
                let conn = tokio::task::spawn_blocking(move || crate::open(&path))
                    .await
                    .map_err(OpenError::Task)??;
                (
                    Engine::Sqlite(Arc::new(Mutex::new(conn))),
                    DbTarget::new("sqlite").namespace(crate::NAMESPACE),
                )
            }
            Location::Postgres(pg) => {
                let pool = open_postgres(pg, max_connections.max(1))
                    .await
                    .map_err(|source| OpenError::Postgres {
                        what: location.to_string(),
                        source,
                    })?;
                (
                    Engine::Postgres(pool),
                    DbTarget::new("postgresql")
                        .namespace(format!("{}|{}", pg.database(), pg.schema))
                        .server(pg.host(), Some(pg.port())),
                )
            }
        };
        Ok(Self {
            engine,
            db: DbClient::shared(tracer, target).sql_commenter(sql_commenter),
            commenter: sql_commenter,
        })
    }

    /// `sqlite` or `postgresql`, as `db.system.name` says.
    pub fn system(&self) -> &str {
        &self.db.target().system
    }

    /// The rows of `sql` under the span `{operation} {table}`, each read by `map`.
    pub async fn rows<T, F>(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        args: Vec<Arg>,
        map: F,
    ) -> Result<Vec<T>, DbError>
    where
        T: Send + 'static,
        F: FnMut(&dyn Row) -> Result<T, DbError> + Send + 'static,
    {
        match &self.engine {
            Engine::Sqlite(conn) => {
                let guard = Arc::clone(conn).lock_owned().await;
                let (result, _) =
                    sqlite_rows(&self.db, guard, operation, table, sql, args, map).await;
                result
            }
            Engine::Postgres(pool) => {
                let (span, sql) = start(&self.db, operation, table, sql, true);
                let result = pg_query(&sql, &args, !self.commenter)
                    .fetch_all(pool)
                    .await
                    .map_err(DbError::from)
                    .and_then(|rows| pg_map(&rows, map));
                finish(span, result)
            }
        }
    }

    /// Runs `sql` under the span `{operation} {table}`; the number of rows changed.
    pub async fn execute(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<u64, DbError> {
        match &self.engine {
            Engine::Sqlite(conn) => {
                let guard = Arc::clone(conn).lock_owned().await;
                sqlite_execute(&self.db, guard, operation, table, sql, args)
                    .await
                    .0
            }
            Engine::Postgres(pool) => {
                let (span, sql) = start(&self.db, operation, table, sql, true);
                let result = pg_query(&sql, &args, !self.commenter)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(DbError::from);
                finish(span, result)
            }
        }
    }

    /// Starts a transaction (untraced, as `BEGIN` is).
    pub async fn begin(&self) -> Result<Tx, DbError> {
        let inner = match &self.engine {
            Engine::Sqlite(conn) => {
                let guard = Arc::clone(conn).lock_owned().await;
                let guard = tokio::task::spawn_blocking(move || {
                    guard.execute_batch("BEGIN IMMEDIATE").map(|()| guard)
                })
                .await
                .map_err(DbError::Task)??;
                TxInner::Sqlite(Some(guard))
            }
            Engine::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            inner,
            db: self.db.clone(),
            commenter: self.commenter,
        })
    }

    /// `SELECT 1`, untraced (the health routes).
    pub async fn ping(&self) -> Result<(), DbError> {
        match &self.engine {
            Engine::Sqlite(conn) => {
                let guard = Arc::clone(conn).lock_owned().await;
                tokio::task::spawn_blocking(move || {
                    guard.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                })
                .await
                .map_err(DbError::Task)??;
            }
            Engine::Postgres(pool) => {
                pool.execute("SELECT 1").await?;
            }
        }
        Ok(())
    }
}

impl Tx {
    /// [`Database::rows`] inside the transaction.
    pub async fn rows<T, F>(
        &mut self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        args: Vec<Arg>,
        map: F,
    ) -> Result<Vec<T>, DbError>
    where
        T: Send + 'static,
        F: FnMut(&dyn Row) -> Result<T, DbError> + Send + 'static,
    {
        match &mut self.inner {
            TxInner::Sqlite(held) => {
                let guard = held.take().ok_or(DbError::Lost)?;
                let (result, guard) =
                    sqlite_rows(&self.db, guard, operation, table, sql, args, map).await;
                *held = guard;
                result
            }
            TxInner::Postgres(tx) => {
                let (span, sql) = start(&self.db, operation, table, sql, true);
                let result = pg_query(&sql, &args, !self.commenter)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(DbError::from)
                    .and_then(|rows| pg_map(&rows, map));
                finish(span, result)
            }
        }
    }

    /// [`Database::execute`] inside the transaction.
    pub async fn execute(
        &mut self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<u64, DbError> {
        match &mut self.inner {
            TxInner::Sqlite(held) => {
                let guard = held.take().ok_or(DbError::Lost)?;
                let (result, guard) =
                    sqlite_execute(&self.db, guard, operation, table, sql, args).await;
                *held = guard;
                result
            }
            TxInner::Postgres(tx) => {
                let (span, sql) = start(&self.db, operation, table, sql, true);
                let result = pg_query(&sql, &args, !self.commenter)
                    .execute(&mut **tx)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(DbError::from);
                finish(span, result)
            }
        }
    }

    /// Holds `key` until the transaction ends, so two transactions on one key run one after
    /// the other (PostgreSQL's `pg_advisory_xact_lock`; on SQLite `BEGIN IMMEDIATE` already
    /// serializes every writer). Untraced, as `BEGIN` is.
    pub async fn serialize_on(&mut self, key: &str) -> Result<(), DbError> {
        if let TxInner::Postgres(tx) = &mut self.inner {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(key)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Commits (untraced).
    pub async fn commit(mut self) -> Result<(), DbError> {
        self.end("COMMIT").await
    }

    /// Rolls back (untraced).
    pub async fn rollback(mut self) -> Result<(), DbError> {
        self.end("ROLLBACK").await
    }

    async fn end(&mut self, how: &'static str) -> Result<(), DbError> {
        match &mut self.inner {
            TxInner::Sqlite(held) => {
                let Some(guard) = held.take() else {
                    return Ok(());
                };
                tokio::task::spawn_blocking(move || {
                    let ended = guard.execute_batch(how);
                    if ended.is_err() {
                        // A COMMIT that failed (busy) leaves the transaction open: end it, or
                        // the next BEGIN on this connection would fail.
                        let _ = guard.execute_batch("ROLLBACK");
                    }
                    ended
                })
                .await
                .map_err(DbError::Task)??;
                Ok(())
            }
            TxInner::Postgres(_) => {
                let TxInner::Postgres(tx) =
                    std::mem::replace(&mut self.inner, TxInner::Sqlite(None))
                else {
                    return Ok(());
                };
                if how == "COMMIT" {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(())
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // A transaction left without COMMIT (an error, a cancelled request) is rolled back
        // before the connection is let go; PostgreSQL's `Transaction` does so itself.
        if let TxInner::Sqlite(Some(guard)) = &self.inner {
            let _ = guard.execute_batch("ROLLBACK");
        }
    }
}

/// The span of a statement and the text to send (PostgreSQL's `$N`, the comment appended).
fn start(
    db: &DbClient,
    operation: &'static str,
    table: &'static str,
    sql: &str,
    postgres: bool,
) -> (ActiveSpan, String) {
    let sql = if postgres {
        dollar_parameters(sql)
    } else {
        sql.to_owned()
    };
    let span = db.start(
        DbOperation::new(operation)
            .collection(table)
            .query_text(sql.clone()),
    );
    let sent = db.comment(&span, &sql).into_owned();
    (span, sent)
}

fn finish<T>(span: ActiveSpan, result: Result<T, DbError>) -> Result<T, DbError> {
    if let Err(e) = &result {
        span.fail("database", e_source(e));
    }
    span.end();
    result
}

/// The engine's own message (the `DbError` itself only says a statement failed).
fn e_source(e: &DbError) -> String {
    match e {
        DbError::Sqlite(e) => e.to_string(),
        DbError::Postgres(e) => e.to_string(),
        DbError::Task(e) => e.to_string(),
        DbError::Lost => e.to_string(),
    }
}

/// `?N` parameters as PostgreSQL's `$N` (the statements here hold no `?` in literals).
fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_query<'q>(
    sql: &'q str,
    args: &'q [Arg],
    persistent: bool,
) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
    // With the commenter every statement's text is new: caching them would only churn.
    let mut query = sqlx::query(sql).persistent(persistent);
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s.as_str()),
            Arg::Real(f) => query.bind(*f),
            Arg::Int(i) => query.bind(*i),
        };
    }
    query
}

fn pg_map<T>(
    rows: &[PgRow],
    mut map: impl FnMut(&dyn Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    rows.iter().map(|r| map(r)).collect()
}

/// Runs one query on the held SQLite connection on the blocking pool; the guard comes back
/// (`None` only if the blocking task died).
async fn sqlite_rows<T, F>(
    db: &DbClient,
    guard: OwnedMutexGuard<Connection>,
    operation: &'static str,
    table: &'static str,
    sql: &str,
    args: Vec<Arg>,
    mut map: F,
) -> (Result<Vec<T>, DbError>, Option<OwnedMutexGuard<Connection>>)
where
    T: Send + 'static,
    F: FnMut(&dyn Row) -> Result<T, DbError> + Send + 'static,
{
    let (span, sql) = start(db, operation, table, sql, false);
    let ran = tokio::task::spawn_blocking(move || {
        let result = (|| {
            let mut stmt = guard.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(map(row)?);
            }
            Ok(out)
        })();
        (result, guard)
    })
    .await;
    match ran {
        Ok((result, guard)) => (finish(span, result), Some(guard)),
        Err(e) => (finish(span, Err(DbError::Task(e))), None),
    }
}

async fn sqlite_execute(
    db: &DbClient,
    guard: OwnedMutexGuard<Connection>,
    operation: &'static str,
    table: &'static str,
    sql: &str,
    args: Vec<Arg>,
) -> (Result<u64, DbError>, Option<OwnedMutexGuard<Connection>>) {
    let (span, sql) = start(db, operation, table, sql, false);
    let ran = tokio::task::spawn_blocking(move || {
        let result = guard
            .execute(&sql, rusqlite::params_from_iter(args.iter()))
            .map(|n| n as u64)
            .map_err(DbError::from);
        (result, guard)
    })
    .await;
    match ran {
        Ok((result, guard)) => (finish(span, result), Some(guard)),
        Err(e) => (finish(span, Err(DbError::Task(e))), None),
    }
}

async fn open_postgres(pg: &crate::Postgres, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let mut first = PgConnection::connect_with(&pg.url.connect_options()).await?;
    let mut tx = first.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    tx.execute(format!("CREATE SCHEMA IF NOT EXISTS {}", pg.schema).as_str())
        .await?;
    tx.execute(format!("SET LOCAL search_path TO {}", pg.schema).as_str())
        .await?;
    for statement in crate::SCHEMA_POSTGRES {
        tx.execute(*statement).await?;
    }
    crate::seed::postgres(&mut tx).await?;
    tx.commit().await?;
    first.close().await?;
    pg.pool(max_connections, Duration::from_secs(5)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughline_telemetry::testing::TestTracing;

    #[test]
    fn numbered_parameters_become_dollars() {
        assert_eq!(
            dollar_parameters("SELECT a FROM t WHERE b = ?1 AND c < ?12 AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c < $12 AND d = '?'"
        );
    }

    async fn each_statement_has_its_span(location: Location, system: &'static str) {
        let tracing = TestTracing::new();
        let tracer: SharedTracer = Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(
            tracing.tracer("db-test"),
        )));
        let db = Database::open(&location, tracer, true, 2).await.unwrap();
        assert_eq!(db.system(), system);
        let titles = db
            .rows(
                "SELECT",
                "videos",
                "SELECT title FROM videos WHERE id = ?1",
                vec!["vid-001".into()],
                |r| r.text(0),
            )
            .await
            .unwrap();
        assert_eq!(titles, ["Morning Routine"]);
        let spans = tracing.spans();
        spans.assert_attribute("SELECT videos", "db.system.name", system);
        let mut tx = db.begin().await.unwrap();
        tx.serialize_on("vid-001").await.unwrap();
        let changed = tx
            .execute(
                "UPDATE",
                "videos",
                "UPDATE videos SET title = ?2 WHERE id = ?1",
                vec!["vid-001".into(), "Renamed".into()],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        drop(tx); // rolled back
        let titles = db
            .rows(
                "SELECT",
                "videos",
                "SELECT title FROM videos WHERE id = ?1",
                vec!["vid-001".into()],
                |r| r.text(0),
            )
            .await
            .unwrap();
        assert_eq!(
            titles,
            ["Morning Routine"],
            "a dropped transaction rolls back"
        );
        let bad = db
            .execute("DELETE", "nowhere", "DELETE FROM nowhere", vec![])
            .await;
        assert!(bad.is_err());
        tracing
            .spans()
            .assert_attribute("DELETE nowhere", "error.type", "database");
        db.ping().await.unwrap();
    }

    #[tokio::test]
    async fn statements_are_traced_and_transactions_roll_back_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        each_statement_has_its_span(Location::Sqlite(dir.path().join("t.sqlite3")), "sqlite").await;
    }

    #[tokio::test]
    async fn statements_are_traced_and_transactions_roll_back_on_postgresql() {
        let server = throughline_testkit::PostgresServer::start();
        let env = std::collections::HashMap::from([(crate::DATABASE_URL.to_owned(), server.url())]);
        let location = crate::location_from_env(&env).unwrap();
        each_statement_has_its_span(location.clone(), "postgresql").await;
        // A second open (another service starting) keeps the seed as it is.
        let tracer: SharedTracer = Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(
            TestTracing::new().tracer("again"),
        )));
        let db = Database::open(&location, tracer, false, 1).await.unwrap();
        let n = db
            .rows(
                "SELECT",
                "placements",
                "SELECT count(*) FROM placements",
                vec![],
                |r| r.int(0),
            )
            .await
            .unwrap();
        assert_eq!(
            n,
            [(crate::SEED_VIDEO_COUNT * (1 + crate::CATALOGUE_PLACEMENTS_PER_VIDEO)) as i64]
        );
    }
}
