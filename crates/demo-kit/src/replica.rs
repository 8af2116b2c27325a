//! What a replica of a demo service holds between requests, and how it is served: written once
//! for the users and the order service, which differ only in their routes and their storage.

use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::database::{Database, Location};
use crate::faults::{FaultConfig, Faults};
use crate::{AppError, HttpService, Stack, serve};

/// One replica's database, name and fault setting. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Replica {
    /// The database, SQLite or PostgreSQL.
    pub db: Database,
    /// This replica's name (`x-served-by`).
    pub replica: Arc<str>,
    /// The fault-injection setting.
    pub faults: Faults,
}

impl Replica {
    /// Opens the database at `location` with up to `pool_size` connections. Setting up the
    /// schema is the service's part: it knows its tables.
    ///
    /// # Errors
    /// The fault settings are out of range, or the database cannot be opened.
    pub fn open(
        location: &Location,
        pool_size: u32,
        replica: &str,
        faults: FaultConfig,
    ) -> Result<Self, AppError> {
        let faults = Faults::new(faults)?;
        let db = Database::open(location, pool_size)?;
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
