// Run with `cargo run -p demo-gateway`: the whole demo (gateway on 127.0.0.1:8080 plus two users
// replicas and the order service as child processes). `-- --help` lists every flag.
//! The gateway binary; it also runs the services it launches (`demo-gateway users ...`).

use std::process::ExitCode;

use clap::Parser;
use demo_gateway::config::Cli;
use demo_gateway::demo;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    demo_kit::init_tracing();
    match cli.service {
        Some(service) => demo::run_service(service).await,
        None => demo::run_gateway(cli.gateway).await,
    }
}
