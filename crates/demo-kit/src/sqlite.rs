//! SQLite for the demo services (feature `sqlite`): how a connection is opened, and a pool of
//! them, deadpool's (the pool deadpool-postgres uses for PostgreSQL here too).
//!
//! rusqlite is synchronous, so each use of a connection runs on tokio's blocking pool
//! (deadpool-sync's `interact`). Every connection is opened the same way, so that several
//! processes can share one database file: WAL journal (readers never block the writer, and a
//! committed write is visible to every connection at once), a busy timeout (a writer waits for
//! another process's write instead of failing), `synchronous = NORMAL` (in WAL mode a committed
//! transaction survives a process crash; only an OS crash or power loss can lose the last ones)
//! and foreign keys on.
//!
//! What is ours is only what deadpool-sqlite would have given, written against the rusqlite
//! the workspace uses (deadpool-sqlite and r2d2_sqlite pin older ones, and Cargo allows one
//! `libsqlite3-sys` per build): the connection manager, and errors mapped to HTTP.
//!
//! Writers should start with `BEGIN IMMEDIATE` ([`rusqlite::TransactionBehavior::Immediate`]) so
//! the write lock is taken up front and waited for, rather than a read lock being upgraded
//! later, which SQLite may refuse with `SQLITE_BUSY` without waiting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_sync::{InteractError, SyncWrapper};
use rusqlite::{Connection, ErrorCode as SqliteCode};

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
    /// The pool itself failed (no runtime for its blocking tasks); not expected once built.
    #[error("database pool: {0}")]
    Pool(String),
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

/// Opens connections to one file for deadpool, each with [`open_connection`] on the blocking
/// pool.
#[derive(Debug)]
struct Manager {
    path: Arc<Path>,
}

impl managed::Manager for Manager {
    type Type = SyncWrapper<Connection>;
    type Error = rusqlite::Error;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let path = Arc::clone(&self.path);
        SyncWrapper::new(Runtime::Tokio1, move || open_connection(&path)).await
    }

    /// A connection is reused unless a closure panicked while holding it. No query is sent to
    /// check it (deadpool-sqlite sends one per checkout): a file connection does not go stale,
    /// and a query would be one more trip through the blocking pool per request.
    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("a closure panicked with it"));
        }
        Ok(())
    }
}

/// A pool of up to `size` SQLite connections to one file. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct Pool {
    pool: managed::Pool<Manager>,
    path: PathBuf,
}

impl Pool {
    /// A pool of up to `size` connections to `path` (created if missing, parent directories
    /// included). One connection is opened (and closed) now, so a bad path fails here and not
    /// on the first request, and a new file is in WAL mode before any request.
    ///
    /// # Errors
    /// The directory or file cannot be created or opened.
    pub fn open(path: impl AsRef<Path>, size: u32) -> Result<Self, PoolError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(PoolError::CreateDir)?;
        }
        drop(open_connection(&path).map_err(PoolError::Open)?);
        let manager = Manager {
            path: Arc::from(path.as_path()),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(size.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| PoolError::Pool(err.to_string()))?;
        Ok(Self { pool, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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
        let conn = self.pool.get().await.map_err(|err| match err {
            managed::PoolError::Closed => PoolError::Closed,
            managed::PoolError::Backend(err) => PoolError::Open(err),
            other => PoolError::Pool(other.to_string()),
        })?;
        match conn.interact(f).await {
            Ok(result) => result,
            // The connection's mutex is poisoned: the pool drops it when it comes back.
            Err(InteractError::Panic(_)) => Err(PoolError::Panicked.into()),
            // deadpool-sync says it never answers this; the runtime shutting down would.
            Err(InteractError::Cancelled) => Err(PoolError::Closed.into()),
        }
    }

    /// Closes the pool: later [`run`](Self::run) calls fail with [`PoolError::Closed`], idle
    /// connections close now and those in use as they come back (SQLite checkpoints the WAL
    /// when the last connection to a file closes). The services close it after their drain, when
    /// none is in use.
    pub async fn close(&self) {
        // Closing a connection may checkpoint the WAL: file I/O, kept off the async threads.
        let pool = self.pool.clone();
        if tokio::task::spawn_blocking(move || pool.close())
            .await
            .is_err()
        {
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
