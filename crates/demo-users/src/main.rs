// Run with `cargo run -p demo-users` (listens on 127.0.0.1:8081); `-- --help` lists every flag.
// A second replica on the same database file:
// `cargo run -p demo-users -- --listen 127.0.0.1:8083 --replica users-2`.
//! The users service binary: read the configuration, open the database, bind, serve until
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use demo_users::{AppState, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    demo_kit::init_tracing();

    let state = match AppState::open(&config).await {
        Ok(state) => state,
        Err(err) => {
            tracing::error!(%err, db = %config.db.display(), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%err, listen = %config.listen, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(%addr, replica = %config.replica, db = %config.db.display(), "users service up");
    demo_kit::announce_listening(addr);

    match demo_users::run(listener, state, demo_kit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "server failed");
            ExitCode::FAILURE
        }
    }
}
