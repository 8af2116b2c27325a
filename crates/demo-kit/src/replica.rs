//! What a replica of a demo service holds between requests, and how it is served: written once
//! for the users and the order service, which differ only in their routes and their storage.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use hyper::body::Incoming;
use rusqlite::Connection;
use tokio::net::TcpListener;

use crate::faults::{FaultConfig, Faults};
use crate::sqlite::Pool;
use crate::{AppError, HttpService, Stack, serve};

/// One replica's database, name and fault setting. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Replica {
    /// The database.
    pub db: Pool,
    /// This replica's name (`x-served-by`).
    pub replica: Arc<str>,
    /// The fault-injection setting.
    pub faults: Faults,
}

impl Replica {
    /// Opens (creating if needed) the database at `db` with `pool_size` connections and runs
    /// `migrate` on it (schema and seed data; it must be safe when several replicas start at the
    /// same moment).
    ///
    /// # Errors
    /// The database cannot be opened or set up, or the fault settings are out of range.
    pub async fn open(
        db: &Path,
        pool_size: u32,
        replica: &str,
        faults: FaultConfig,
        migrate: fn(&mut Connection) -> Result<(), AppError>,
    ) -> Result<Self, AppError> {
        let faults = Faults::new(faults)?;
        let db = Pool::open(db, pool_size)?;
        db.run(migrate).await?;
        Ok(Self {
            db,
            replica: replica.into(),
            faults,
        })
    }

    /// Closes the database once no request uses it.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// The serving layers for this replica: `x-served-by`, request ids, tracing, JSON errors,
    /// the 64 KiB body limit and fault injection.
    pub fn stack(&self) -> Stack {
        Stack::new()
            .with_served_by(&self.replica)
            .with_faults(self.faults.clone())
    }

    /// Serves `service` on `listener` until `shutdown` completes; then stops accepting, finishes
    /// in-flight requests and closes the database.
    ///
    /// # Errors
    /// I/O errors from serving.
    pub async fn serve(
        &self,
        listener: TcpListener,
        service: HttpService<Incoming>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let served = serve(listener, service, shutdown).await;
        self.close().await;
        tracing::info!("database closed");
        served
    }
}
