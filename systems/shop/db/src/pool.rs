//! A bounded pool of SQLite connections with a wait time: a caller that gets no connection
//! within it gets [`PoolExhausted`] (how long it waited, how big the pool is) instead of waiting
//! on. The connections are opened once; a checked-out one comes back when its guard drops.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// No connection came free within the wait time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection pool exhausted: no connection of {size} free within {waited_ms} ms")]
pub struct PoolExhausted {
    pub size: usize,
    pub waited_ms: u64,
}

#[derive(Debug)]
struct Inner {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    size: usize,
    wait: Duration,
}

/// The pool (cheap to clone).
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool of `connections` (at least one), each waiter given `wait` at most.
    pub fn new(connections: Vec<Connection>, wait: Duration) -> Self {
        let size = connections.len();
        Self {
            inner: Arc::new(Inner {
                idle: Mutex::new(connections),
                permits: Arc::new(Semaphore::new(size)),
                size,
                wait,
            }),
        }
    }

    pub fn size(&self) -> usize {
        self.inner.size
    }

    pub fn wait(&self) -> Duration {
        self.inner.wait
    }

    /// Connections checked out now.
    pub fn in_use(&self) -> usize {
        self.inner.size - self.inner.permits.available_permits()
    }

    /// A connection, or [`PoolExhausted`] when none came free within the wait time.
    pub async fn acquire(&self) -> Result<PooledConnection, PoolExhausted> {
        let started = Instant::now();
        let permit =
            tokio::time::timeout(self.inner.wait, self.inner.permits.clone().acquire_owned()).await;
        let waited = started.elapsed();
        let exhausted = PoolExhausted {
            size: self.inner.size,
            waited_ms: waited.as_millis() as u64,
        };
        // The semaphore is never closed, so only the timeout fails.
        let Ok(Ok(permit)) = permit else {
            return Err(exhausted);
        };
        let conn = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match conn {
            Some(conn) => Ok(PooledConnection {
                conn: Some(conn),
                pool: self.inner.clone(),
                waited,
                _permit: permit,
            }),
            // A permit stands for an idle connection, so this cannot happen; answer as
            // exhausted rather than panic.
            None => Err(exhausted),
        }
    }
}

/// A checked-out connection; back in the pool when dropped.
#[derive(Debug)]
pub struct PooledConnection {
    conn: Option<Connection>,
    pool: Arc<Inner>,
    waited: Duration,
    _permit: OwnedSemaphorePermit,
}

impl PooledConnection {
    /// How long the caller waited for it.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    pub fn connection(&mut self) -> &mut Connection {
        // Some until drop: set in `acquire`, taken only in `Drop`.
        self.conn
            .as_mut()
            .expect("a pooled connection until dropped")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(conn);
        }
        // The permit drops after this, so a waiter finds the connection idle.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_past_the_wait_time_is_told_the_pool_is_exhausted() {
        let pool = Pool::new(
            vec![Connection::open_in_memory().unwrap()],
            Duration::from_millis(50),
        );
        let held = pool.acquire().await.unwrap();
        assert_eq!(pool.in_use(), 1);
        let err = pool.acquire().await.unwrap_err();
        assert_eq!(err.size, 1);
        assert!(err.waited_ms >= 50, "{err:?}");
        drop(held);
        let mut again = pool.acquire().await.unwrap();
        let one: i64 = again
            .connection()
            .query_row("SELECT 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(one, 1);
    }
}
