//! The customer table in an embedded SQLite file, written in group commits by one thread.
//!
//! SQLite runs in WAL mode with a busy timeout so the API and the worker can write the same file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use onboarding_db::SqliteOpenError;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::{Customer, CustomerStoreError, NewCustomer};

/// The table both services use (the contract lives in `onboarding-db`).
pub use onboarding_db::schema::CUSTOMERS_SQLITE as SCHEMA;

/// Rows written per transaction at most: one commit (one fsync in WAL) serves many requests.
const MAX_GROUP_COMMIT_ROWS: usize = 512;

enum Job {
    Insert(NewCustomer, oneshot::Sender<Result<(), CustomerStoreError>>),
    Delete(String),
}

/// The SQLite customer store: inserts go through one writer thread in group commits; reads use
/// their own connection on the blocking pool.
#[derive(Debug, Clone)]
pub struct SqliteCustomers {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Insert(c, _) => write!(f, "Insert({})", c.customer_id),
            Self::Delete(id) => write!(f, "Delete({id})"),
        }
    }
}

/// Opens (creating when missing) the customer file with the settings both services use, and
/// creates [`SCHEMA`].
pub fn open_connection(path: &Path) -> Result<Connection, CustomerStoreError> {
    onboarding_db::open_sqlite(path, SCHEMA).map_err(|e| match e {
        SqliteOpenError::Directory { path, source } => CustomerStoreError::Io { path, source },
        SqliteOpenError::Database { path, source } => CustomerStoreError::Database { path, source },
    })
}

impl SqliteCustomers {
    /// Opens the file, creates the table, and starts the writer thread. Blocking: call it before
    /// serving or from `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Self, CustomerStoreError> {
        let write_conn = open_connection(path)?;
        let reader = open_connection(path)?;
        let (tx, rx) = mpsc::channel(4096);
        let thread_path = path.to_owned();
        std::thread::Builder::new()
            .name("customers-writer".into())
            .spawn(move || run_writer(write_conn, rx, thread_path))
            .map_err(|source| CustomerStoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inserts a new customer; [`CustomerStoreError::Duplicate`] when the id exists.
    pub async fn insert(&self, customer: NewCustomer) -> Result<(), CustomerStoreError> {
        let (tx, rx) = oneshot::channel();
        let gone = || CustomerStoreError::WriterGone(self.path.clone());
        self.writer
            .send(Job::Insert(customer, tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Removes a customer whose message could not be queued, so the client may retry.
    pub async fn delete(&self, customer_id: String) -> Result<(), CustomerStoreError> {
        self.writer
            .send(Job::Delete(customer_id))
            .await
            .map_err(|_| CustomerStoreError::WriterGone(self.path.clone()))
    }

    pub async fn get(&self, customer_id: String) -> Result<Option<Customer>, CustomerStoreError> {
        let reader = self.reader.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock only means another read panicked; the connection is still usable.
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            read_customer(&conn, &customer_id)
                .map_err(|source| CustomerStoreError::Database { path, source })
        })
        .await
        .map_err(|_| CustomerStoreError::WriterGone(self.path.clone()))?
    }

    /// A cheap query that proves the file answers, for `/health`.
    pub async fn ping(&self) -> Result<(), CustomerStoreError> {
        let reader = self.reader.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|source| CustomerStoreError::Database { path, source })
        })
        .await
        .map_err(|_| CustomerStoreError::WriterGone(self.path.clone()))?
    }
}

fn read_customer(conn: &Connection, id: &str) -> rusqlite::Result<Option<Customer>> {
    let mut stmt = conn.prepare_cached(
        "SELECT customer_id, email, name, customer_type, company_size, status, status_detail,
                risk_score, attempts, request_id, trace_id, created_at, updated_at
         FROM customers WHERE customer_id = ?1",
    )?;
    stmt.query_row([id], |r| {
        Ok(Customer {
            customer_id: r.get(0)?,
            email: r.get(1)?,
            name: r.get(2)?,
            customer_type: r.get(3)?,
            company_size: r.get(4)?,
            status: r.get(5)?,
            status_detail: r.get(6)?,
            risk_score: r.get(7)?,
            attempts: r.get(8)?,
            request_id: r.get(9)?,
            trace_id: r.get(10)?,
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
        })
    })
    .optional()
}

fn run_writer(mut conn: Connection, mut rx: mpsc::Receiver<Job>, path: PathBuf) {
    let mut batch = Vec::with_capacity(MAX_GROUP_COMMIT_ROWS);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP_COMMIT_ROWS {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = write_batch(&mut conn, &mut batch);
        for (index, job) in batch.drain(..).enumerate() {
            if let Job::Insert(c, reply) = job {
                let result = match &outcome {
                    Err(e) => Err(CustomerStoreError::Batch {
                        path: path.clone(),
                        message: e.to_string(),
                    }),
                    // `duplicates` is in ascending order: positions were pushed in order.
                    Ok(duplicates) if duplicates.binary_search(&index).is_ok() => {
                        Err(CustomerStoreError::Duplicate(c.customer_id))
                    }
                    Ok(_) => Ok(()),
                };
                // The requester may have gone (client disconnected); nothing to do then.
                let _ = reply.send(result);
            }
        }
    }
}

/// Writes a batch in one transaction; returns the positions in `batch` of the inserts whose id
/// already existed. (Positions, not ids: when one batch holds the same id twice, the first
/// insert succeeded and only the second is a duplicate.)
fn write_batch(conn: &mut Connection, batch: &mut [Job]) -> rusqlite::Result<Vec<usize>> {
    let tx = conn.transaction()?;
    let mut duplicates = Vec::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO customers (customer_id, email, name, customer_type, company_size, status,
                                    request_id, trace_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'received', ?6, ?7, ?8, ?8)
             ON CONFLICT(customer_id) DO NOTHING",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM customers WHERE customer_id = ?1")?;
        for (index, job) in batch.iter().enumerate() {
            match job {
                Job::Insert(c, _) => {
                    let n = insert.execute(params![
                        c.customer_id,
                        c.email,
                        c.name,
                        c.customer_type,
                        c.company_size,
                        c.request_id,
                        c.trace_id,
                        c.created_at
                    ])?;
                    if n == 0 {
                        duplicates.push(index);
                    }
                }
                Job::Delete(id) => {
                    delete.execute([id])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(duplicates)
}
