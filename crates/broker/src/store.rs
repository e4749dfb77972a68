//! Durable storage: SQLite in WAL mode, written by one thread that commits concurrent changes
//! together (group commit) and acknowledges each change only once it is on disk.
//!
//! The in-memory state is the broker's working copy; every change to it is also sent here, in the
//! order it was made, and the request that made it answers only after its acknowledgement.

use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

use crate::message::{Attributes, Message};

/// Storage failures; they come from the disk, never from a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sqlite database {path}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("stored row in {table} is unreadable: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("the storage writer has stopped")]
    WriterGone,
}

/// One change to persist.
#[derive(Debug)]
pub enum WriteOp {
    PutQueue {
        name: String,
        json: String,
    },
    DeleteQueue {
        name: String,
    },
    PurgeQueue {
        name: String,
    },
    Insert {
        queue: String,
        message: Box<Message>,
    },
    /// A receive, a visibility change or a return to the queue.
    SetDelivery {
        seq: u64,
        available_at_ms: u64,
        receive_count: u32,
        first_receive_ms: Option<u64>,
    },
    Move {
        seq: u64,
        queue: String,
    },
    Delete {
        seq: u64,
    },
    PutRule {
        name: String,
        json: String,
    },
    DeleteRule {
        name: String,
    },
}

type Ack = oneshot::Sender<Result<(), String>>;

/// Everything read back at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// (name, attributes JSON)
    pub queues: Vec<(String, String)>,
    pub messages: Vec<(String, Message)>,
    /// (name, rule JSON)
    pub rules: Vec<(String, String)>,
}

/// Counts of the writer's work, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Transactions committed (each one fsync of the WAL).
    pub commits: AtomicU64,
    /// Requests whose changes were committed, summed over all commits.
    pub submissions: AtomicU64,
}

/// The handle to the writer thread.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<(Vec<WriteOp>, Ack)>,
    pub stats: Arc<StoreStats>,
}

impl Writer {
    /// Queues `ops` for the next commit; the receiver resolves once they are durable.
    /// Call while holding the state lock so the disk sees changes in the order memory did.
    pub fn submit(&self, ops: Vec<WriteOp>) -> oneshot::Receiver<Result<(), String>> {
        let (ack, done) = oneshot::channel();
        // A send fails only when the writer thread is gone; the dropped ack then reports it.
        let _ = self.tx.send((ops, ack));
        done
    }
}

/// Awaits a submitted change.
pub async fn durable(done: oneshot::Receiver<Result<(), String>>) -> Result<(), StoreError> {
    match done.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(detail)) => {
            tracing::error!(error = %detail, "storage commit failed");
            Err(StoreError::WriterGone)
        }
        Err(_) => Err(StoreError::WriterGone),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rules (name TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  id TEXT NOT NULL,
  body TEXT NOT NULL,
  attributes TEXT NOT NULL,
  system_attributes TEXT NOT NULL,
  group_id TEXT,
  sent_ms INTEGER NOT NULL,
  available_at_ms INTEGER NOT NULL,
  receive_count INTEGER NOT NULL,
  first_receive_ms INTEGER
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue);
";

/// Opens (or creates) the database in `data_dir`, reads everything back and starts the writer.
///
/// Every change is committed to the write-ahead log before the request that made it is answered,
/// so it survives `kill -9`. With `sync_writes` the log is also fsynced at each commit
/// (`synchronous=FULL`), so it survives power loss; without it (`synchronous=NORMAL`, the
/// default) a machine crash may lose the last commits, never the database.
pub fn open(data_dir: &Path, sync_writes: bool) -> Result<(Loaded, Writer), StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = data_dir.join("broker.sqlite3");
    let sql_err = |source| StoreError::Sqlite {
        path: path.clone(),
        source,
    };
    let conn = Connection::open(&path).map_err(sql_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err)?;
    let synchronous = if sync_writes { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(sql_err)?;
    conn.execute_batch(SCHEMA).map_err(sql_err)?;
    let loaded = load(&conn).map_err(|e| match e {
        LoadError::Sql(source) => sql_err(source),
        LoadError::Corrupt(table, detail) => StoreError::Corrupt { table, detail },
    })?;
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(StoreStats::default());
    let writer_stats = stats.clone();
    std::thread::Builder::new()
        .name("broker-store".to_owned())
        .spawn(move || run_writer(conn, rx, &writer_stats))
        .map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
    Ok((loaded, Writer { tx, stats }))
}

enum LoadError {
    Sql(rusqlite::Error),
    Corrupt(&'static str, String),
}

impl From<rusqlite::Error> for LoadError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

fn load(conn: &Connection) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    let mut stmt = conn.prepare("SELECT name, json FROM queues ORDER BY name")?;
    loaded.queues = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT name, json FROM rules ORDER BY name")?;
    loaded.rules = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT queue, seq, id, body, attributes, system_attributes, group_id, sent_ms,
                available_at_ms, receive_count, first_receive_ms FROM messages ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let attributes: String = r.get(4)?;
        let system: String = r.get(5)?;
        let parse = |text: &str| {
            serde_json::from_str::<Attributes>(text)
                .map_err(|e| LoadError::Corrupt("messages", e.to_string()))
        };
        let seq: i64 = r.get(1)?;
        let message = Message {
            seq: seq as u64,
            id: r.get(2)?,
            body: r.get(3)?,
            attributes: parse(&attributes)?,
            system_attributes: parse(&system)?,
            group_id: r.get(6)?,
            sent_ms: r.get::<_, i64>(7)? as u64,
            available_at_ms: r.get::<_, i64>(8)? as u64,
            receive_count: r.get(9)?,
            first_receive_ms: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
        };
        loaded.messages.push((r.get(0)?, message));
    }
    Ok(loaded)
}

/// Largest number of submissions folded into one transaction.
const MAX_GROUP: usize = 4096;

fn run_writer(mut conn: Connection, rx: mpsc::Receiver<(Vec<WriteOp>, Ack)>, stats: &StoreStats) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &group).map_err(|e| e.to_string());
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .submissions
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        for (_, ack) in group {
            // The requester may have gone away (client disconnected); the change is stored anyway.
            let _ = ack.send(result.clone());
        }
    }
}

fn commit(conn: &mut Connection, group: &[(Vec<WriteOp>, Ack)]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    for (ops, _) in group {
        for op in ops {
            apply(&tx, op)?;
        }
    }
    tx.commit()
}

fn apply(tx: &rusqlite::Transaction<'_>, op: &WriteOp) -> Result<(), rusqlite::Error> {
    match op {
        WriteOp::PutQueue { name, json } => {
            tx.prepare_cached("INSERT OR REPLACE INTO queues (name, json) VALUES (?1, ?2)")?
                .execute(params![name, json])?;
        }
        WriteOp::DeleteQueue { name } => {
            tx.prepare_cached("DELETE FROM queues WHERE name = ?1")?
                .execute(params![name])?;
            tx.prepare_cached("DELETE FROM messages WHERE queue = ?1")?
                .execute(params![name])?;
        }
        WriteOp::PurgeQueue { name } => {
            tx.prepare_cached("DELETE FROM messages WHERE queue = ?1")?
                .execute(params![name])?;
        }
        WriteOp::Insert { queue, message: m } => {
            let attributes = serde_json::to_string(&m.attributes).unwrap_or_default();
            let system = serde_json::to_string(&m.system_attributes).unwrap_or_default();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (seq, queue, id, body, attributes, system_attributes,
                 group_id, sent_ms, available_at_ms, receive_count, first_receive_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                m.seq as i64,
                queue,
                m.id,
                m.body,
                attributes,
                system,
                m.group_id,
                m.sent_ms as i64,
                m.available_at_ms as i64,
                m.receive_count,
                m.first_receive_ms.map(|v| v as i64),
            ])?;
        }
        WriteOp::SetDelivery {
            seq,
            available_at_ms,
            receive_count,
            first_receive_ms,
        } => {
            tx.prepare_cached(
                "UPDATE messages SET available_at_ms = ?2, receive_count = ?3, first_receive_ms = ?4
                 WHERE seq = ?1",
            )?
            .execute(params![
                *seq as i64,
                *available_at_ms as i64,
                receive_count,
                first_receive_ms.map(|v| v as i64)
            ])?;
        }
        WriteOp::Move { seq, queue } => {
            tx.prepare_cached("UPDATE messages SET queue = ?2 WHERE seq = ?1")?
                .execute(params![*seq as i64, queue])?;
        }
        WriteOp::Delete { seq } => {
            tx.prepare_cached("DELETE FROM messages WHERE seq = ?1")?
                .execute(params![*seq as i64])?;
        }
        WriteOp::PutRule { name, json } => {
            tx.prepare_cached("INSERT OR REPLACE INTO rules (name, json) VALUES (?1, ?2)")?
                .execute(params![name, json])?;
        }
        WriteOp::DeleteRule { name } => {
            tx.prepare_cached("DELETE FROM rules WHERE name = ?1")?
                .execute(params![name])?;
        }
    }
    Ok(())
}

/// The highest sequence number stored, to continue numbering after a restart.
pub fn max_seq(messages: &[(String, Message)]) -> u64 {
    messages.iter().map(|(_, m)| m.seq).max().unwrap_or(0)
}
