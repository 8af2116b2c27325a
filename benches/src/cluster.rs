//! The demo as the macro benches run it: users-1 and users-2 (one shared SQLite file), the order
//! service, and a gateway in front (`--no-spawn`), each its own process on a free loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::process::ServiceProcess;

/// The API key the benches' gateway accepts.
pub const API_KEY: &str = "bench-key";
/// The operator key the benches' gateway accepts on `/admin` and `/metrics`.
pub const ADMIN_KEY: &str = "bench-operator-key";

/// The rate limit given to the gateway: far above anything the benches send, so the limiter
/// is on the path (as in production) but never refuses.
const GENEROUS_RATE: &str = "1000000";

/// Four processes; dropping the cluster kills them all, the gateway first.
#[derive(Debug)]
pub struct Cluster {
    // Fields drop in order: the gateway, then the services, then the temporary directory.
    gateway: ServiceProcess,
    users: Vec<Option<ServiceProcess>>,
    orders: ServiceProcess,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the services and the gateway; `gateway_flags` are added to the gateway's command
    /// line (its breaker, timeouts...). Everything else is the gateway's default.
    pub fn start(binary: &Path, gateway_flags: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("resilience-bench-")
            .tempdir()
            .map_err(|err| format!("cannot create a temporary directory: {err}"))?;
        // One at a time: users-1 creates and seeds the database file that users-2 then opens.
        let users_1 = start_users(binary, dir.path(), "users-1", "127.0.0.1:0")?;
        let users_2 = start_users(binary, dir.path(), "users-2", "127.0.0.1:0")?;
        let orders = ServiceProcess::spawn(
            "orders",
            binary,
            &service_args("orders", dir.path(), "orders.db", "orders", "127.0.0.1:0"),
            &dir.path().join("orders.log"),
        )?;
        let users_urls = format!("{},{}", users_1.url(""), users_2.url(""));
        let mut args: Vec<String> = [
            "--no-spawn",
            "--listen",
            "127.0.0.1:0",
            "--users",
            &users_urls,
            "--orders",
            &orders.url(""),
            "--api-key",
            API_KEY,
            "--admin-key",
            ADMIN_KEY,
            "--rate-limit",
            GENEROUS_RATE,
            "--rate-burst",
            GENEROUS_RATE,
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(gateway_flags.iter().map(|flag| (*flag).to_owned()));
        let gateway =
            ServiceProcess::spawn("gateway", binary, &args, &dir.path().join("gateway.log"))?;
        Ok(Self {
            gateway,
            users: vec![Some(users_1), Some(users_2)],
            orders,
            binary: binary.to_path_buf(),
            dir,
        })
    }

    /// The gateway.
    pub fn gateway(&self) -> &ServiceProcess {
        &self.gateway
    }

    /// The order service.
    pub fn orders(&self) -> &ServiceProcess {
        &self.orders
    }

    /// Users replica `index` (0 is users-1), if it is running.
    pub fn users(&self, index: usize) -> Option<&ServiceProcess> {
        self.users.get(index).and_then(Option::as_ref)
    }

    /// Users replica `index`, to signal or kill it.
    pub fn users_mut(&mut self, index: usize) -> Option<&mut ServiceProcess> {
        self.users.get_mut(index).and_then(Option::as_mut)
    }

    /// Starts users replica `index` again on `addr` (its old port), with the same database.
    /// The old process must be dead already; its guard is replaced.
    pub fn restart_users(&mut self, index: usize, addr: SocketAddr) -> Result<()> {
        let name = format!("users-{}", index + 1);
        let process = start_users(&self.binary, self.dir.path(), &name, &addr.to_string())?;
        let slot = self
            .users
            .get_mut(index)
            .ok_or_else(|| format!("no users replica {index}"))?;
        *slot = Some(process);
        Ok(())
    }

    /// The gateway's stderr log so far (breaker transitions are logged there).
    pub fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }
}

fn start_users(binary: &Path, dir: &Path, name: &str, listen: &str) -> Result<ServiceProcess> {
    ServiceProcess::spawn(
        name,
        binary,
        &service_args("users", dir, "users.db", name, listen),
        &dir.join(format!("{name}.log")),
    )
}

/// `SERVICE --listen ADDR --db DIR/DB --replica NAME --exit-with-parent`.
fn service_args(service: &str, dir: &Path, db: &str, name: &str, listen: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        "--listen".to_owned(),
        listen.to_owned(),
        "--db".to_owned(),
        dir.join(db).display().to_string(),
        "--replica".to_owned(),
        name.to_owned(),
        // Stop when the bench's stdin pipe closes: also if the bench is killed outright.
        "--exit-with-parent".to_owned(),
    ]
}
