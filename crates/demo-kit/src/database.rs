//! Where a service keeps its data: an embedded SQLite file (the default, so the demo needs no
//! database server) or a PostgreSQL database (`--database-url`, when replicas live on different
//! machines). Each service matches on [`Database`] in one storage module, so its handlers do not
//! know which one they talk to.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::AppError;
use crate::postgres::{self, DatabaseUrl};
use crate::sqlite;

/// The database a service was told to use.
#[derive(Debug, Clone)]
pub enum Location {
    /// A SQLite file, created with its directory if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(DatabaseUrl),
}

impl Location {
    /// From a service's `--db FILE` and `--database-url URL` flags: the URL wins when given, so
    /// a launcher that always passes `--db` (the gateway's demo) can still be pointed at Postgres
    /// through the environment.
    pub fn from_flags(db: &Path, database_url: Option<&DatabaseUrl>) -> Self {
        match database_url {
            Some(url) => Self::Postgres(url.clone()),
            None => Self::Sqlite(db.to_path_buf()),
        }
    }
}

impl fmt::Display for Location {
    /// The file, or the URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// An open database of either kind. Cloning shares it.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded SQLite pool.
    Sqlite(sqlite::Pool),
    /// The PostgreSQL pool.
    Postgres(postgres::Pool),
}

impl Database {
    /// Opens `location` with up to `pool_size` connections. The schema is the service's to set
    /// up.
    ///
    /// # Errors
    /// A SQLite file that cannot be created or opened. (A Postgres server is first reached when
    /// the service migrates.)
    pub fn open(location: &Location, pool_size: u32) -> Result<Self, AppError> {
        Ok(match location {
            Location::Sqlite(path) => Self::Sqlite(sqlite::Pool::open(path, pool_size)?),
            Location::Postgres(url) => Self::Postgres(postgres::Pool::new(url, pool_size)?),
        })
    }

    /// Closes the database; later uses fail with 503. SQLite waits for the connections in use;
    /// Postgres connections in use are closed when they come back (the server drains requests
    /// before it closes the database, so none are).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close(),
        }
    }
}
