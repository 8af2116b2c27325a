//! What every service binary does after reading its configuration, written once.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::register::{RegisterSpec, Registration};
use crate::{AppError, announce_listening};

/// Opens the service's state (its database), binds `listen`, says where it listens (a log line
/// and the [`LISTENING_PREFIX`](crate::LISTENING_PREFIX) line a parent process waits for),
/// registers in etcd when `register` says so, and serves with `serve` until that returns.
/// Every failure is logged and becomes a failing exit code, never a panic.
///
/// `serve` gets the listener, the state and the shutdown future to serve until: `shutdown`
/// followed, when registered, by deregistering. So a replica leaves the set before its listener
/// closes, and the requests it already has are drained while no new ones are sent its way.
pub async fn run_service<S, Serve, Served>(
    name: &str,
    listen: SocketAddr,
    register: Option<RegisterSpec>,
    state: impl Future<Output = Result<S, AppError>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    serve: Serve,
) -> ExitCode
where
    Serve: FnOnce(TcpListener, S, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Served,
    Served: Future<Output = std::io::Result<()>>,
{
    let state = match state.await {
        Ok(state) => state,
        Err(err) => {
            tracing::error!(%err, "{name}: cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%err, %listen, "{name}: cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(listen);
    let registration = match register {
        Some(spec) => match spec.url_for(addr) {
            Ok(url) => Some(Registration::start(spec, url)),
            Err(err) => {
                tracing::error!(%err, "{name}: cannot register");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    tracing::info!(%addr, "{name} up");
    announce_listening(addr);
    let shutdown = Box::pin(async move {
        shutdown.await;
        if let Some(registration) = registration {
            registration.deregister().await;
        }
    });
    match serve(listener, state, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "{name}: server failed");
            ExitCode::FAILURE
        }
    }
}
