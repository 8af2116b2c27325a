//! PostgreSQL for the demo services when their replicas live on different machines (feature
//! `postgres`): a connection pool, migrations at start-up, and what Postgres errors mean over HTTP.
//!
//! Driver: `tokio-postgres` with a `deadpool-postgres` pool, migrations by `refinery`. sqlx was
//! the other candidate, but its optional SQLite driver depends on a different `libsqlite3-sys`
//! than rusqlite's, and Cargo allows one `links = "sqlite3"` package per dependency graph even
//! when the feature is off; tokio-postgres is async (no blocking pool needed, unlike rusqlite)
//! and reports SQLSTATE codes, which is all the services need to tell a duplicate from a failure.
//!
//! refinery takes no lock of its own, so [`Pool::migrate`] holds a session advisory lock on a
//! dedicated connection while it runs: replicas starting at the same moment migrate one after
//! the other, and the later ones find nothing left to do.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, RecyclingMethod, Runtime};
use refinery::{Migration, Runner};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::error::AppError;

/// How long opening a connection may take before the request fails with 503.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The advisory-lock key serialising migrations across replicas (any constant works; this one
/// is `"demo-kit"` in ASCII).
const MIGRATION_LOCK: i64 = 0x6465_6d6f_2d6b_6974;

/// refinery's history table for demo-kit's own migrations, apart from the service's, so the two
/// sets are numbered independently.
const KIT_HISTORY_TABLE: &str = "demo_kit_schema_history";

/// The tables demo-kit itself needs in every service's database.
const KIT_MIGRATIONS: [(&str, &str); 1] = [(
    "V1__idempotency_keys",
    include_str!("../migrations/postgres/V1__idempotency_keys.sql"),
)];

/// A validated `postgres://` URL. Its `Debug` and `Display` leave out the password, so a
/// configuration can be logged.
#[derive(Clone)]
pub struct DatabaseUrl {
    // Shared: a `Config` is a few hundred bytes, and it is cloned into every pool.
    config: Arc<tokio_postgres::Config>,
}

impl FromStr for DatabaseUrl {
    type Err = String;

    /// Accepts `postgres://` or `postgresql://` URLs (libpq's syntax).
    fn from_str(url: &str) -> Result<Self, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("must be a postgres:// or postgresql:// URL".to_owned());
        }
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
        if config.get_hosts().is_empty() {
            return Err("the URL names no host".to_owned());
        }
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => String::new(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or("");
        let dbname = self.config.get_dbname().unwrap_or("");
        write!(f, "postgres://{user}@{host}:{port}/{dbname}")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// A pool of connections to one PostgreSQL database. Cloning shares the pool.
#[derive(Clone)]
pub struct Pool {
    pool: deadpool_postgres::Pool,
    config: Arc<tokio_postgres::Config>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool of up to `size` connections to `url`. Connections are opened on first use;
    /// [`migrate`](Self::migrate), run at start-up, is what finds a bad URL or an unreachable
    /// server.
    ///
    /// # Errors
    /// The pool cannot be built (it needs a tokio runtime).
    pub fn new(url: &DatabaseUrl, size: u32) -> Result<Self, AppError> {
        let mut config = tokio_postgres::Config::clone(&url.config);
        config.connect_timeout(CONNECT_TIMEOUT);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A connection that broke is noticed by the query that uses it; checking each one
                // with a round trip before every use would cost more than the rare retry.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(size.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(AppError::internal)?;
        Ok(Self {
            pool,
            config: Arc::new(config),
        })
    }

    /// A connection, waiting for a free one when all are in use.
    ///
    /// # Errors
    /// 503 when the pool is closed or the server cannot be reached.
    pub async fn get(&self) -> Result<Object, AppError> {
        Ok(self.pool.get().await?)
    }

    /// Brings the schema up to date: demo-kit's own tables (idempotency keys), then the
    /// service's `migrations`, each recorded in its own refinery history table. Several replicas
    /// may call this at once (see the module docs).
    ///
    /// # Errors
    /// The server cannot be reached, or a migration fails or differs from the one applied.
    pub async fn migrate(&self, migrations: Runner) -> Result<(), AppError> {
        let (mut client, connection) = self.config.connect(NoTls).await?;
        // The connection task ends when `client` is dropped, which also releases the lock.
        let connection = tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(%err, "migration connection failed");
            }
        });
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let kit = KIT_MIGRATIONS
            .iter()
            .map(|(name, sql)| Migration::unapplied(name, sql))
            .collect::<Result<Vec<_>, _>>()
            .map_err(AppError::internal)?;
        let ran = async {
            Runner::new(&kit)
                .set_migration_table_name(KIT_HISTORY_TABLE)
                .run_async(&mut client)
                .await?;
            migrations.run_async(&mut client).await
        }
        .await;
        drop(client);
        let _ = connection.await;
        let report = ran.map_err(|err| AppError::internal(format!("migration failed: {err}")))?;
        for migration in report.applied_migrations() {
            tracing::info!(%migration, "applied migration");
        }
        Ok(())
    }

    /// Closes the pool: connections are closed as they come back, and later
    /// [`get`](Self::get) calls fail with 503.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// Claims the one-time seeding of a fresh database inside `tx`: true for the first replica to
/// ask, false for every later one. The service's `meta` table records the claim; a replica
/// starting at the same moment waits on the row until this transaction ends, then inserts
/// nothing, so the demo data is written exactly once however many replicas start together.
///
/// # Errors
/// Database errors.
pub async fn claim_seeding(tx: &deadpool_postgres::Transaction<'_>) -> Result<bool, AppError> {
    let inserted = tx
        .execute(
            "INSERT INTO meta (key, value) VALUES ('seeded', rfc3339_now())
             ON CONFLICT (key) DO NOTHING",
            &[],
        )
        .await?;
    Ok(inserted == 1)
}

/// Whether `err` is a UNIQUE constraint violation (a duplicate key such as an email).
pub fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// SQLSTATEs after which the same request may well succeed a moment later.
fn is_transient(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || code.code().starts_with("08")
}

impl From<tokio_postgres::Error> for AppError {
    /// A lost connection, an unreachable or restarting server, a deadlock or serialisation
    /// failure are 503 (try again); anything else is a 500 with the detail in the log.
    fn from(err: tokio_postgres::Error) -> Self {
        let transient = match err.code() {
            Some(code) => is_transient(code),
            // No SQLSTATE: the connection failed or broke, or the client refused the query
            // (a type mismatch: a bug, so 500).
            None => err.is_closed() || is_io(&err),
        };
        if transient {
            tracing::warn!(%err, "database unavailable");
            AppError::unavailable("database is unavailable, try again")
        } else {
            AppError::internal(err)
        }
    }
}

/// Whether the error came from the network (connecting, or a broken connection).
fn is_io(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Closed => AppError::unavailable("database is closed"),
            deadpool_postgres::PoolError::Backend(err) => err.into(),
            deadpool_postgres::PoolError::Timeout(_) => {
                tracing::warn!(%err, "database unavailable");
                AppError::unavailable("database is unavailable, try again")
            }
            other => AppError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_the_password() {
        let url: DatabaseUrl = "postgres://app:s3cret@db.internal:6543/users"
            .parse()
            .unwrap();
        assert_eq!(url.to_string(), "postgres://app@db.internal:6543/users");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!("postgresql://app@db/users".parse::<DatabaseUrl>().is_ok());
        for bad in [
            "",
            "users.db",
            "mysql://db/users",
            "postgres://app@db:notaport/x",
        ] {
            assert!(bad.parse::<DatabaseUrl>().is_err(), "{bad}");
        }
    }
}
