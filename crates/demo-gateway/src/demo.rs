//! Running the gateway: alone (`--no-spawn`), or as the whole demo with its services.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::process::ExitCode;

use rand::Rng;

use crate::access::{AdminKeys, ApiKeys};
use crate::app;
use crate::config::{GatewayConfig, ServiceCommand};
use crate::discovery::{self, Source};
use crate::launcher::{self, ChildSpec, Running};
use crate::routes;
use crate::state::GatewayState;
use crate::upstream::Upstream;

/// Runs the gateway, and unless `--no-spawn`, the services it calls as child processes.
pub async fn run_gateway(config: GatewayConfig) -> ExitCode {
    match try_run_gateway(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("demo-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn try_run_gateway(mut config: GatewayConfig) -> Result<(), String> {
    let (keys, generated_key) = api_keys(&config)?;
    let (admin_keys, admin_key) = admin_keys(&config)?;
    let mut children = Vec::new();
    if !config.no_spawn {
        if !(Source::parse(&config.users)?.is_static()
            && Source::parse(&config.orders)?.is_static())
        {
            return Err(concat!(
                "dns:// and etcd:// endpoints need --no-spawn: ",
                "the demo starts its services on fixed addresses"
            )
            .to_owned());
        }
        // Rewrites --users and --orders to where the services really listen.
        children = start_children(&mut config).await?;
    }
    let users_source = Source::parse(&config.users)?;
    let orders_source = Source::parse(&config.orders)?;
    let users = upstream("user-service", "users", &users_source, &config).await?;
    let orders = upstream("order-service", "orders", &orders_source, &config).await?;
    let state = GatewayState::with_admin_keys(users, orders, keys, admin_keys);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.listen))?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    print!(
        "{}",
        banner(
            addr,
            &children,
            generated_key
                .as_deref()
                .or(config.api_keys.first().map(String::as_str)),
            admin_key.as_deref()
        )
    );
    demo_kit::announce_listening(addr);
    tracing::info!(%addr, "gateway up");

    let shutdown = async {
        demo_kit::shutdown_signal().await;
        for child in &children {
            child.expect_exit();
        }
    };
    let served = app::run(listener, state, shutdown).await;
    tracing::info!("gateway stopped; stopping the services");
    for child in children {
        child.stop().await;
    }
    served.map_err(|error| format!("serving failed: {error}"))
}

/// The upstream `service` over the endpoints `source` finds (waiting for the first), kept up to
/// date in the background when they can change.
async fn upstream(
    service: &'static str,
    short_name: &str,
    source: &Source,
    config: &GatewayConfig,
) -> Result<Upstream, String> {
    let discovered = discovery::start(source, short_name, &config.discovery).await?;
    let upstream = Upstream::new(service, short_name, &discovered.initial, &config.upstream)
        .map_err(|error| error.to_string())?;
    if let Some(feed) = discovered.feed {
        tokio::spawn(upstream.clone().follow(feed));
    }
    Ok(upstream)
}

/// The configured keys, or a fresh one for the demo (returned so it can be printed).
fn api_keys(config: &GatewayConfig) -> Result<(ApiKeys, Option<String>), String> {
    let (keys, generated) =
        keys_or_new(&config.api_keys, config.api_keys_file.as_deref(), "demo-")?;
    let rate = NonZeroU32::new(config.rate_limit).ok_or("--rate-limit must be at least 1")?;
    let burst = NonZeroU32::new(config.rate_burst).ok_or("--rate-burst must be at least 1")?;
    Ok((ApiKeys::new(keys, rate, burst), generated))
}

/// The configured operator keys, or a fresh one (returned so it can be printed), which the
/// operator's tools and the dashboard use.
fn admin_keys(config: &GatewayConfig) -> Result<(AdminKeys, Option<String>), String> {
    let (keys, generated) = keys_or_new(
        &config.admin_keys,
        config.admin_key_file.as_deref(),
        "admin-",
    )?;
    let printed = generated.or_else(|| keys.first().cloned());
    Ok((AdminKeys::new(keys)?, printed))
}

/// The keys given on the command line and in `file`, or, if none, a new random one starting
/// with `prefix` (also returned, to be printed).
fn keys_or_new(
    given: &[String],
    file: Option<&Path>,
    prefix: &str,
) -> Result<(Vec<String>, Option<String>), String> {
    let mut keys: Vec<String> = given
        .iter()
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read keys from {}: {error}", path.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned),
        );
    }
    let generated = keys.is_empty().then(|| {
        let mut rng = rand::rng();
        (0..24).fold(String::from(prefix), |mut key, _| {
            let _ = write!(key, "{:x}", rng.random_range(0..16u8));
            key
        })
    });
    keys.extend(generated.clone());
    Ok((keys, generated))
}

/// Starts users-1, users-2 and orders on the addresses of `--users` and `--orders`, and
/// points those at where they really listen (port 0 becomes a real port).
async fn start_children(config: &mut GatewayConfig) -> Result<Vec<Running>, String> {
    let program = std::env::current_exe()
        .map_err(|error| format!("cannot find this program to start the services: {error}"))?;
    std::fs::create_dir_all(&config.data_dir).map_err(|error| {
        format!(
            "cannot create the data directory {}: {error}",
            config.data_dir.display()
        )
    })?;
    let users_db = config.data_dir.join("users.db");
    let orders_db = config.data_dir.join("orders.db");
    let mut specs = Vec::new();
    for (index, url) in config.users.iter().enumerate() {
        specs.push(ChildSpec {
            name: format!("users-{}", index + 1),
            service: "users",
            listen: local_addr(url)?,
            db: users_db.clone(),
            otlp_endpoint: config.telemetry.otlp_endpoint.clone(),
        });
    }
    for (index, url) in config.orders.iter().enumerate() {
        let name = if config.orders.len() == 1 {
            "orders".to_owned()
        } else {
            format!("orders-{}", index + 1)
        };
        specs.push(ChildSpec {
            name,
            service: "orders",
            listen: local_addr(url)?,
            db: orders_db.clone(),
            otlp_endpoint: config.telemetry.otlp_endpoint.clone(),
        });
    }
    let mut running = Vec::new();
    for spec in specs {
        let name = spec.name.clone();
        match launcher::start(&program, spec).await {
            Ok(child) => {
                tracing::info!(child = %name, pid = child.pid, addr = %child.addr, "started");
                running.push(child);
            }
            Err(error) => {
                for child in running {
                    child.stop().await;
                }
                return Err(format!("cannot start {name}: {error}"));
            }
        }
    }
    let url = |child: &Running| format!("http://{}", child.addr);
    config.users = running
        .iter()
        .filter(|c| c.spec.service == "users")
        .map(url)
        .collect();
    config.orders = running
        .iter()
        .filter(|c| c.spec.service == "orders")
        .map(url)
        .collect();
    Ok(running)
}

/// The address a spawned service listens on: the host and port of its URL, on loopback.
fn local_addr(url: &str) -> Result<SocketAddr, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|error| format!("{url:?} is not a URL: {error}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr: SocketAddr = format!("{host}:{port}").parse().map_err(|_| {
        format!(
            "{url:?}: the demo starts services on an IP address such as 127.0.0.1, not {host:?}"
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{url:?}: the demo's services listen on loopback only; use --no-spawn for services elsewhere"
        ));
    }
    Ok(addr)
}

fn banner(
    addr: SocketAddr,
    children: &[Running],
    key: Option<&str>,
    admin_key: Option<&str>,
) -> String {
    let mut text = String::from("\nresilience demo\n\n");
    let _ = writeln!(
        text,
        "  {:<9} http://{addr:<22} pid {}",
        "gateway",
        std::process::id()
    );
    for child in children {
        let _ = writeln!(
            text,
            "  {:<9} http://{:<22} pid {}",
            child.spec.name, child.addr, child.pid
        );
    }
    let key = key.unwrap_or("<your key>");
    let admin_key = admin_key.unwrap_or("<operator key>");
    let _ = writeln!(text, "\n  API key        {key}");
    let _ = writeln!(
        text,
        "  Operator key   {admin_key}   (for {} and {})",
        routes::ADMIN,
        routes::METRICS
    );
    let _ = writeln!(
        text,
        "  Dashboard      http://{addr}{}?key={admin_key}\n\nTry:",
        routes::DASHBOARD
    );
    for path in ["/api/users/1", "/api/users/1/orders"] {
        let _ = writeln!(text, "  curl -s -H 'x-api-key: {key}' http://{addr}{path}");
    }
    let _ = writeln!(
        text,
        "  curl -s -H 'x-api-key: {admin_key}' http://{addr}{}",
        routes::ADMIN_STATUS
    );
    if let Some(victim) = children.iter().find(|child| child.spec.name == "users-2") {
        let program =
            std::env::current_exe().unwrap_or_else(|_| Path::new("demo-gateway").to_path_buf());
        let _ = writeln!(
            text,
            "\nWatch the breaker trip: kill {}   (users-2 stops; clients keep getting answers from users-1)",
            victim.pid
        );
        let _ = writeln!(
            text,
            "Bring it back:          {}",
            victim.spec.command_line(&program)
        );
    }
    text.push('\n');
    text
}

/// Runs one of the services, as the launcher's child (or by hand, to restart a replica).
pub async fn run_service(command: ServiceCommand) -> ExitCode {
    match command {
        ServiceCommand::Users {
            config,
            exit_with_parent,
        } => {
            demo_kit::resource::main_with::<demo_users::Users>(
                config.settings(),
                stop_signal(exit_with_parent),
            )
            .await
        }
        ServiceCommand::Orders {
            config,
            exit_with_parent,
        } => {
            demo_kit::resource::main_with::<demo_orders::Orders>(
                config.settings(),
                stop_signal(exit_with_parent),
            )
            .await
        }
    }
}

/// SIGTERM or Ctrl-C, or, for the launcher's children, the gateway going away.
async fn stop_signal(exit_with_parent: bool) {
    if exit_with_parent {
        tokio::select! {
            () = demo_kit::shutdown_signal() => {}
            () = launcher::parent_gone() => tracing::info!("the gateway is gone; stopping"),
        }
    } else {
        demo_kit::shutdown_signal().await;
    }
}
