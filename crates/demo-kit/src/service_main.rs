//! What every service binary does after reading its configuration, written once.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::{AppError, announce_listening};

/// Opens the service's state (its database), binds `listen`, says where it listens (a log line
/// and the [`LISTENING_PREFIX`](crate::LISTENING_PREFIX) line a parent process waits for), and
/// serves with `serve` until that returns. Every failure is logged and becomes a failing exit
/// code, never a panic.
pub async fn run_service<S, Serve, Served>(
    name: &str,
    listen: SocketAddr,
    state: impl Future<Output = Result<S, AppError>>,
    serve: Serve,
) -> ExitCode
where
    Serve: FnOnce(TcpListener, S) -> Served,
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
    tracing::info!(%addr, "{name} up");
    announce_listening(addr);
    match serve(listener, state).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "{name}: server failed");
            ExitCode::FAILURE
        }
    }
}
