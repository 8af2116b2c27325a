//! What every handler shares: the database, the replica name, the fault setting.

use std::ops::Deref;

use demo_kit::{AppError, Replica};

use crate::config::Config;
use crate::storage;

/// Shared state of one users replica: a [`Replica`] over the users database. Cloning shares
/// it.
#[derive(Debug, Clone)]
pub struct AppState(Replica);

impl AppState {
    /// Opens (creating if needed) the database in `config` (the SQLite file, or PostgreSQL with
    /// `--database-url`), brings the schema up to date and seeds the demo users once, even when
    /// several replicas start at the same moment.
    ///
    /// # Errors
    /// The database cannot be opened or set up, or the fault flags are out of range.
    pub async fn open(config: &Config) -> Result<Self, AppError> {
        let replica = Replica::open(
            &config.location(),
            config.db_pool,
            &config.replica,
            config.faults.config(),
        )?;
        storage::migrate_and_seed(&replica.db).await?;
        Ok(Self(replica))
    }
}

impl Deref for AppState {
    type Target = Replica;

    fn deref(&self) -> &Replica {
        &self.0
    }
}
