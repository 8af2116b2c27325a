// Run with `cargo run -p demo-orders` (listens on 127.0.0.1:8082); `-- --help` lists every flag.
//! The orders service binary: read the configuration, open the database, bind, serve until
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use demo_orders::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let telemetry = demo_kit::init_telemetry("orders", &config.replica, &config.telemetry, true);
    let code = demo_kit::resource::main_with::<demo_orders::Orders>(
        config.settings(),
        demo_kit::shutdown_signal(),
    )
    .await;
    telemetry.shutdown().await;
    code
}
