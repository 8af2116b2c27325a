//! Command-line flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use demo_kit::database::Location;
use demo_kit::faults::FaultArgs;
use demo_kit::postgres::DatabaseUrl;
use demo_kit::register::{EtcdUrl, RegisterSpec};
use demo_kit::resource::ReplicaSettings;

/// The users service: CRUD for users over SQLite or PostgreSQL. Several replicas may share one
/// database file, or one PostgreSQL database from different machines.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "demo-users", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, env = "USERS_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// SQLite database file, created with its directory if missing. Replicas that should share
    /// their users point at the same file.
    #[arg(long, env = "USERS_DB", default_value = "data/users.db")]
    pub db: PathBuf,

    /// PostgreSQL instead of the SQLite file, for replicas on different machines:
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`. When given, `--db` is not used. The schema
    /// is migrated at start-up.
    #[arg(long, env = "USERS_DATABASE_URL")]
    pub database_url: Option<DatabaseUrl>,

    /// Name of this replica, sent in the `x-served-by` header of every response.
    #[arg(long, env = "USERS_REPLICA", default_value = "users-1")]
    pub replica: String,

    /// Database connections kept open by this process.
    #[arg(long, env = "USERS_DB_POOL", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub db_pool: u32,

    /// Register this replica in etcd, `etcd://HOST:PORT/PREFIX`: under the key
    /// `PREFIX/users/REPLICA`, with a lease kept alive while it runs and revoked on graceful
    /// shutdown. A gateway started with `--users etcd://HOST:PORT/PREFIX/users` finds it there.
    #[arg(long, env = "USERS_REGISTER", value_name = "ETCD_URL")]
    pub register: Option<EtcdUrl>,

    /// Seconds the etcd lease lives without a keep-alive: how long a replica that died without
    /// deregistering (SIGKILL, a lost machine) stays in the set.
    #[arg(long, env = "USERS_REGISTER_TTL", default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub register_ttl: u64,

    /// The URL registered in etcd, for when the listen address is not what others call (a
    /// wildcard address, a container): e.g. `http://users-1:8081`. Default: `http://` and
    /// the bound address.
    #[arg(long, env = "USERS_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// Fault injection, off by default; can be changed at run time with `PUT /admin/faults`
    /// from the loopback interface.
    #[command(flatten)]
    pub faults: FaultArgs,

    /// Where spans go (`--otlp-endpoint`); nowhere by default.
    #[command(flatten)]
    pub telemetry: demo_kit::TelemetryArgs,
}

impl Config {
    /// The database to use: `--database-url` when given, else the `--db` file.
    pub fn location(&self) -> Location {
        Location::from_flags(&self.db, self.database_url.as_ref())
    }

    /// What the replica is started with.
    pub fn settings(&self) -> ReplicaSettings {
        ReplicaSettings {
            listen: self.listen,
            location: self.location(),
            db_pool: self.db_pool,
            replica: self.replica.clone(),
            faults: self.faults.config(),
            register: self.registration(),
        }
    }

    /// What to register in etcd, when `--register` is given.
    pub fn registration(&self) -> Option<RegisterSpec> {
        self.register.clone().map(|etcd| RegisterSpec {
            etcd,
            service: "users",
            replica: self.replica.clone(),
            advertise: self.advertise_url.clone(),
            ttl: std::time::Duration::from_secs(self.register_ttl),
        })
    }
}
