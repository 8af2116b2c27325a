// Run with `cargo run -p demo-gateway`: the whole demo (gateway on 127.0.0.1:8080 plus two users
// replicas and the order service as child processes). `-- --help` lists every flag.
//! The gateway binary; it also runs the services it launches (`demo-gateway users ...`).

use std::process::ExitCode;

use clap::Parser;
use demo_gateway::config::{Cli, ServiceCommand};
use demo_gateway::demo;

/// mimalloc rather than glibc's malloc: per-thread free lists make the many small, short-lived
/// allocations of an HTTP request (header maps, URLs, buffers) cheaper; measured in
/// `benches/README.md` (proxies).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("demo-gateway: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the span exporter's batch processor is a task.
    runtime.block_on(async move {
        // The services this binary runs (`demo-gateway users ...`) log every request, as the
        // standalone service binaries do; the gateway only with --access-log.
        let telemetry = match &cli.service {
            Some(ServiceCommand::Users { config, .. }) => {
                demo_kit::init_telemetry("users", &config.replica, &config.telemetry, true)
            }
            Some(ServiceCommand::Orders { config, .. }) => {
                demo_kit::init_telemetry("orders", &config.replica, &config.telemetry, true)
            }
            None => demo_kit::init_telemetry(
                "gateway",
                "gateway",
                &cli.gateway.telemetry,
                cli.gateway.access_log,
            ),
        };
        let code = match cli.service {
            Some(service) => demo::run_service(service).await,
            None => demo::run_gateway(cli.gateway).await,
        };
        // The spans still batched go out before the process ends.
        telemetry.shutdown().await;
        code
    })
}

/// One worker thread per CPU this process may run on; on one CPU (a container limited to one,
/// or `taskset -c 0`) the single-threaded scheduler, which does the same work without the
/// work-stealing machinery (atomics, an injection queue, waking a parked worker).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}
