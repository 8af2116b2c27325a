//! A demo service of one resource (the users service, the order service), written once: its
//! app, probes, serving layers and `main`. A service says only what differs, as a
//! [`Resource`]: its name, its two paths, its handlers and its storage's set-up and ping
//! (feature `postgres`).
//!
//! Both services hold a [`Replica`] as their state (the database, the replica's name, the
//! fault setting), answer `/health` and `/ready` the same way, and are served by the same
//! [`Stack`]; before this module each had its own copy of all of it, differing in names only.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use rustapi_core::{MethodRouter, RustApi, State, get};
use tokio::net::TcpListener;

use crate::database::{Database, Location};
use crate::faults::FaultConfig;
use crate::register::RegisterSpec;
use crate::{AppError, HttpService, Replica, Stack, faults, response};

/// What one resource's service has of its own.
pub trait Resource: 'static {
    /// The service's name in logs and etcd keys: `users`.
    const NAME: &'static str;
    /// The collection's route: `/users`.
    const COLLECTION: &'static str;
    /// One item's route: `/users/{id}`.
    const ITEM: &'static str;

    /// The collection's methods (a page, a create).
    fn collection() -> MethodRouter;

    /// One item's methods (show, update, delete).
    fn item() -> MethodRouter;

    /// Brings the schema up to date and seeds the demo data once, even when several replicas
    /// start at the same moment.
    fn migrate_and_seed(db: &Database) -> impl Future<Output = Result<(), AppError>> + Send;

    /// Whether the database answers (for `/ready`).
    fn ping(db: &Database) -> impl Future<Output = Result<(), AppError>> + Send;
}

/// What a replica of a resource's service is started with (each service's flags make one).
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// Where to listen (port 0 picks one; the bound address is announced on stdout).
    pub listen: SocketAddr,
    /// The database: a SQLite file or PostgreSQL.
    pub location: Location,
    /// Database connections kept open.
    pub db_pool: u32,
    /// The replica's name (`x-served-by`).
    pub replica: String,
    /// The fault-injection setting at start.
    pub faults: FaultConfig,
    /// Where to register in etcd, if anywhere.
    pub register: Option<RegisterSpec>,
}

/// Opens the database `settings` name, brings its schema up to date and seeds it.
///
/// # Errors
/// The database cannot be opened or set up, or the fault settings are out of range.
pub async fn open<R: Resource>(settings: &ReplicaSettings) -> Result<Replica, AppError> {
    let replica = Replica::open(
        &settings.location,
        settings.db_pool,
        &settings.replica,
        settings.faults,
    )?;
    R::migrate_and_seed(&replica.db).await?;
    Ok(replica)
}

/// The rustapi-rs app: every route, with `replica` attached. Routes are registered explicitly
/// (never `RustApi::auto()`, which would also collect other services' macro routes).
pub fn app<R: Resource>(replica: Replica) -> RustApi {
    let faults = replica.faults.clone();
    let app = RustApi::new()
        .state(replica)
        .route("/health", get(health))
        .route("/ready", get(ready::<R>))
        .route(R::COLLECTION, R::collection())
        .route(R::ITEM, R::item());
    faults::routes(app, faults)
}

/// `GET /health`: 200 while the process serves (liveness; see [`response::alive`]).
async fn health(State(replica): State<Replica>) -> rustapi_core::Response {
    response::alive(&replica.replica)
}

/// `GET /ready`: 200 when the database answers, 503 otherwise (see [`response::ready`]).
async fn ready<R: Resource>(State(replica): State<Replica>) -> rustapi_core::Response {
    response::ready(&replica.replica, R::ping(&replica.db).await)
}

/// The route template of `path`, naming its server span (`GET /users/{id}`, never the raw
/// path); `None` for a path no route serves.
pub fn route_of<R: Resource>(path: &str) -> Option<&'static str> {
    crate::resource_route_of(path, R::COLLECTION, R::ITEM)
}

/// The serving layers for `replica`: `x-served-by`, request ids, tracing (spans named by
/// [`route_of`]), JSON errors, the 64 KiB body limit and fault injection.
pub fn stack<R: Resource>(replica: &Replica) -> Stack {
    replica.stack().with_route_templates(route_of::<R>)
}

/// The app as a tower service over any request body (in-process tests use `Full<Bytes>`).
pub fn service<R, B>(replica: Replica) -> HttpService<B>
where
    R: Resource,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    stack::<R>(&replica).service(&app::<R>(replica))
}

/// Serves `R`'s service on `listener` until `shutdown` completes; then stops accepting,
/// finishes in-flight requests and closes the database.
///
/// # Errors
/// I/O errors from serving.
pub async fn run<R: Resource>(
    listener: TcpListener,
    replica: Replica,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    replica
        .serve(listener, service::<R, _>(replica.clone()), shutdown)
        .await
}

/// `R`'s service's `main` after parsing its flags: opens the database, binds, announces the
/// address, registers in etcd when asked, and serves until `shutdown`, then leaves etcd, drains
/// and closes the database. Used by the service binaries and by the gateway's demo launcher.
pub async fn main_with<R: Resource>(
    settings: ReplicaSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> ExitCode {
    let name = format!(
        "{} service {} (database {})",
        R::NAME,
        settings.replica,
        settings.location
    );
    crate::run_service(
        &name,
        settings.listen,
        settings.register.clone(),
        open::<R>(&settings),
        shutdown,
        |listener, replica, shutdown: Pin<Box<dyn Future<Output = ()> + Send>>| {
            run::<R>(listener, replica, shutdown)
        },
    )
    .await
}
