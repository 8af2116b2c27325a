//! What every handler shares: the database, the replica name, the fault setting.

use std::sync::Arc;

use demo_kit::AppError;
use demo_kit::faults::Faults;
use demo_kit::sqlite::Pool;

use crate::config::Config;
use crate::storage;

/// Shared state of one users replica. Cloning shares it.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Pool,
    /// This replica's name (`x-served-by`).
    pub replica: Arc<str>,
    /// The fault-injection setting.
    pub faults: Faults,
}

impl AppState {
    /// Opens (creating if needed) the database in `config`, creates the schema and seeds the
    /// demo users once, even when several replicas start at the same moment.
    ///
    /// # Errors
    /// The database cannot be opened or set up, or the fault flags are out of range.
    pub async fn open(config: &Config) -> Result<Self, AppError> {
        let faults = Faults::new(config.faults.config())?;
        let db = Pool::open(&config.db, config.db_pool)?;
        db.run(storage::migrate_and_seed).await?;
        Ok(Self {
            db,
            replica: config.replica.as_str().into(),
            faults,
        })
    }

    /// Closes the database once no request uses it.
    pub async fn close(&self) {
        self.db.close().await;
    }
}
