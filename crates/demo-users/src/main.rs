// Run with `cargo run -p demo-users` (listens on 127.0.0.1:8081); `-- --help` lists every flag.
// A second replica on the same database file:
// `cargo run -p demo-users -- --listen 127.0.0.1:8083 --replica users-2`.
//! The users service binary: read the configuration, open the database, bind, serve until
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use demo_users::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let telemetry = demo_kit::init_telemetry("users", &config.replica, &config.telemetry, true);
    let code = demo_kit::resource::main_with::<demo_users::Users>(
        config.settings(),
        demo_kit::shutdown_signal(),
    )
    .await;
    telemetry.shutdown().await;
    code
}
