//! A small SQLite connection pool for the demo services (feature `sqlite`).
//!
//! rusqlite is synchronous, so each use of a connection runs on tokio's blocking pool. Every
//! connection is opened the same way, so that several processes can share one database file:
//! WAL journal (readers never block the writer, and a committed write is visible to every
//! connection at once), a busy timeout (a writer waits for another process's write instead of
//! failing), `synchronous = NORMAL` (in WAL mode a committed transaction survives a process
//! crash; only an OS crash or power loss can lose the last ones) and foreign keys on.
//!
//! Writers should start with `BEGIN IMMEDIATE` ([`rusqlite::TransactionBehavior::Immediate`]) so
//! the write lock is taken up front and waited for, rather than a read lock being upgraded
//! later, which SQLite may refuse with `SQLITE_BUSY` without waiting.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode as SqliteCode};
use tokio::sync::Semaphore;

use crate::error::AppError;

/// How long a connection waits for another connection's (or process's) write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the pool could not run a closure.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// [`Pool::close`] was called.
    #[error("database is closed")]
    Closed,
    /// A connection could not be opened.
    #[error("cannot open database: {0}")]
    Open(#[source] rusqlite::Error),
    /// The directory for the database file cannot be created.
    #[error("cannot create the database directory: {0}")]
    CreateDir(#[source] std::io::Error),
    /// The closure panicked; its connection was dropped.
    #[error("database task panicked")]
    Panicked,
}

impl From<PoolError> for AppError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Closed => AppError::unavailable("database is closed"),
            other => AppError::internal(other),
        }
    }
}

impl From<rusqlite::Error> for AppError {
    /// Busy or locked databases are 503 (try again); anything else is a 500 with the detail in
    /// the log.
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(SqliteCode::DatabaseBusy | SqliteCode::DatabaseLocked) => {
                tracing::warn!(%err, "database busy");
                AppError::unavailable("database is busy, try again")
            }
            _ => AppError::internal(err),
        }
    }
}

/// Whether `err` is a UNIQUE constraint violation (a duplicate key such as an email).
pub fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// A fixed-size pool of SQLite connections to one file. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    size: u32,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    closed: AtomicBool,
}

/// Opens one connection configured for sharing the file between processes (see module docs).
///
/// # Errors
/// The file cannot be opened or configured.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Switching a fresh file to WAL needs a moment of exclusive access; when another process
    // is doing the same at the same instant SQLite can answer BUSY at once, so retry briefly.
    let mut attempts = 0;
    loop {
        match conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        {
            Ok(_) => break,
            Err(err)
                if attempts < 100
                    && matches!(
                        err.sqlite_error_code(),
                        Some(SqliteCode::DatabaseBusy | SqliteCode::DatabaseLocked)
                    ) =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(err) => return Err(err),
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl Pool {
    /// A pool of up to `size` connections to `path` (created if missing, parent directories
    /// included). One connection is opened now, so a bad path fails here and not on the first
    /// request.
    ///
    /// # Errors
    /// The directory or file cannot be created or opened.
    pub fn open(path: impl AsRef<Path>, size: u32) -> Result<Self, PoolError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(PoolError::CreateDir)?;
        }
        let size = size.max(1);
        let first = open_connection(&path).map_err(PoolError::Open)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                size,
                idle: Mutex::new(vec![first]),
                permits: Semaphore::new(size as usize),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with a connection on the blocking thread pool, waiting for a free connection
    /// when all are in use.
    ///
    /// # Errors
    /// `f`'s error, or a [`PoolError`] converted into `E`.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<PoolError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed.into());
        }
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| PoolError::Closed)?;
        let idle = self.take_idle();
        let inner = self.inner.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut conn = match idle {
                Some(conn) => conn,
                None => open_connection(&inner.path).map_err(PoolError::Open)?,
            };
            let result = f(&mut conn);
            Ok::<_, PoolError>((conn, result))
        })
        .await;
        match joined {
            Ok(Ok((conn, result))) => {
                self.put_idle(conn);
                result
            }
            Ok(Err(pool_err)) => Err(pool_err.into()),
            // The connection went down with the panicking closure; a new one is opened later.
            Err(_) => Err(PoolError::Panicked.into()),
        }
    }

    fn take_idle(&self) -> Option<Connection> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    fn put_idle(&self, conn: Connection) {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
    }

    /// Closes the pool: waits until no connection is in use, then closes every connection
    /// (SQLite checkpoints the WAL when the last connection to a file closes). Later
    /// [`run`](Self::run) calls fail with [`PoolError::Closed`].
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        // Every in-flight `run` holds a permit; taking them all waits for those to finish.
        if let Ok(all) = self.inner.permits.acquire_many(self.inner.size).await {
            all.forget();
        }
        self.inner.permits.close();
        let conns = std::mem::take(
            &mut *self
                .inner
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let closed = tokio::task::spawn_blocking(move || {
            for conn in conns {
                if let Err((_, err)) = conn.close() {
                    tracing::warn!(%err, "closing a database connection failed");
                }
            }
        })
        .await;
        if closed.is_err() {
            tracing::warn!("closing the database panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_queries_and_refuses_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path().join("sub/test.db"), 2).unwrap();
        let mode: String = pool
            .run(|c| {
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(AppError::from)
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        pool.close().await;
        let err = pool
            .run(|c| c.execute("SELECT 1", []).map_err(AppError::from))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 503);
    }

    #[tokio::test]
    async fn survives_a_panicking_closure() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path().join("p.db"), 1).unwrap();
        let err = pool
            .run::<(), AppError, _>(|_| panic!("boom"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 500);
        let one: i64 = pool
            .run(|c| {
                c.query_row("SELECT 1", [], |r| r.get(0))
                    .map_err(AppError::from)
            })
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}
