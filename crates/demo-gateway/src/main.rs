// Run with `cargo run -p demo-gateway`: the whole demo (gateway on 127.0.0.1:8080 plus two users
// replicas and the order service as child processes). `-- --help` lists every flag.
//! The gateway binary; it also runs the services it launches (`demo-gateway users ...`).

use std::process::ExitCode;

use clap::Parser;
use demo_gateway::config::{Cli, ServiceCommand};
use demo_gateway::demo;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match &cli.service {
        Some(ServiceCommand::Users { config, .. }) => {
            demo_kit::init_telemetry("users", &config.replica, &config.telemetry)
        }
        Some(ServiceCommand::Orders { config, .. }) => {
            demo_kit::init_telemetry("orders", &config.replica, &config.telemetry)
        }
        None => demo_kit::init_telemetry("gateway", "gateway", &cli.gateway.telemetry),
    };
    let code = match cli.service {
        Some(service) => demo::run_service(service).await,
        None => demo::run_gateway(cli.gateway).await,
    };
    // The spans still batched go out before the process ends.
    telemetry.shutdown().await;
    code
}
