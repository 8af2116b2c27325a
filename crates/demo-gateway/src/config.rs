//! Command-line flags and environment variables of the gateway.
//!
//! A leaf: it imports nothing of the gateway. The flags of each part are a group of their own
//! ([`UpstreamSettings`], [`DiscoverySettings`]), flattened into [`GatewayConfig`], so each part
//! takes its own settings and the command line stays one flat list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The gateway's command line: the demo by default, or one of the services it launches.
#[derive(Debug, clap::Parser)]
#[command(name = "demo-gateway", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Run one of the demo's services instead of the gateway (what the demo launcher starts as
    /// child processes).
    #[command(subcommand)]
    pub service: Option<ServiceCommand>,

    /// The gateway's own settings.
    #[command(flatten)]
    pub gateway: GatewayConfig,
}

/// A service run by this binary as a child process of the demo.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// The users service (the same flags as `demo-users`).
    Users {
        /// The service's flags.
        #[command(flatten)]
        config: demo_users::Config,
        /// Stop when stdin closes (the launcher's pipe: the gateway is gone).
        #[arg(long, hide = true)]
        exit_with_parent: bool,
    },
    /// The order service (the same flags as `demo-orders`).
    Orders {
        /// The service's flags.
        #[command(flatten)]
        config: demo_orders::Config,
        /// Stop when stdin closes (the launcher's pipe: the gateway is gone).
        #[arg(long, hide = true)]
        exit_with_parent: bool,
    },
}

/// The API gateway: routes `/api/users` and `/api/orders` to the demo services through the
/// resilience stack, with API keys, rate limits and aggregation.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayConfig {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Do not start the services: call the ones given by --users and --orders.
    #[arg(long, env = "GATEWAY_NO_SPAWN")]
    pub no_spawn: bool,

    /// Users service endpoints: URLs, comma separated (default: the two replicas the demo
    /// starts); or `dns://NAME:PORT` (every A/AAAA address of NAME, e.g. a Kubernetes headless
    /// Service, re-resolved on the TTL); or `dns+srv://NAME` (the hosts and ports of NAME's SRV
    /// records, e.g. `_http._tcp.users.default.svc.cluster.local`); or
    /// `etcd://HOST:PORT/PREFIX/users` (the replicas registered there, watched). Discovery needs
    /// --no-spawn.
    #[arg(
        long,
        env = "GATEWAY_USERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8081,http://127.0.0.1:8083"
    )]
    pub users: Vec<String>,

    /// Order service endpoints: URLs, comma separated, or `dns://NAME:PORT`, `dns+srv://NAME`
    /// or `etcd://HOST:PORT/PREFIX/orders`, as for --users.
    #[arg(
        long,
        env = "GATEWAY_ORDERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8082"
    )]
    pub orders: Vec<String>,

    /// Where the demo keeps the services' databases (created if missing).
    #[arg(long, env = "GATEWAY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// An API key clients may use (`x-api-key: KEY` or `Authorization: Bearer KEY`); repeat for
    /// several. Without any key (here, in GATEWAY_API_KEYS or in --api-keys-file) the gateway
    /// makes one at start and prints it.
    #[arg(
        long = "api-key",
        env = "GATEWAY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// A file of API keys, one per line (blank lines and lines starting with # are skipped).
    #[arg(long, env = "GATEWAY_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// An operator key for `/admin` (the dashboard, its actions, `/admin/status`) and
    /// `/metrics`, distinct from the API keys, which get 403 there; repeat for several. Without
    /// any (here, in GATEWAY_ADMIN_KEYS or in --admin-key-file) the gateway makes one at start
    /// and prints it.
    #[arg(
        long = "admin-key",
        env = "GATEWAY_ADMIN_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_keys: Vec<String>,

    /// A file of operator keys, one per line (blank lines and lines starting with # are
    /// skipped).
    #[arg(long, env = "GATEWAY_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,

    /// Requests per second each API key may make, on average.
    #[arg(long, env = "GATEWAY_RATE_LIMIT", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,

    /// Requests an API key may make in a burst above the average rate.
    #[arg(long, env = "GATEWAY_RATE_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,

    /// How each upstream's client retries, breaks and times out.
    #[command(flatten)]
    pub upstream: UpstreamSettings,

    /// Log one line per answered request (method, path, request id, status, latency). Off by
    /// default, as in nginx and HAProxy as benchmarked: the line costs a formatted write per
    /// request. Failed requests (5xx), breaker transitions and retries are logged either way.
    /// `RUST_LOG` overrides both.
    #[arg(long, env = "GATEWAY_ACCESS_LOG")]
    pub access_log: bool,

    /// Where `dns://` endpoints are resolved, and how often.
    #[command(flatten)]
    pub discovery: DiscoverySettings,

    /// Where spans go (`--otlp-endpoint`), passed on to the services the demo starts.
    #[command(flatten)]
    pub telemetry: demo_kit::TelemetryArgs,
}

/// The settings of one upstream's resilient client (`Upstream::new` takes these, not the whole
/// configuration, so the client's module needs nothing else of the gateway's).
#[derive(Debug, Clone, clap::Args)]
pub struct UpstreamSettings {
    /// The limit for one attempt at an upstream, e.g. `1s` or `250ms`.
    #[arg(long, env = "GATEWAY_ATTEMPT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub attempt_timeout: Duration,

    /// The limit for a whole upstream request, retries included.
    #[arg(long, env = "GATEWAY_DEADLINE", default_value = "3s", value_parser = parse_duration)]
    pub deadline: Duration,

    /// Attempts per upstream request, the first included.
    #[arg(long, env = "GATEWAY_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_attempts: u32,

    /// Consecutive failures that open an endpoint's circuit breaker.
    #[arg(long, env = "GATEWAY_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: u32,

    /// How long an open breaker waits before it lets a probe through.
    #[arg(long, env = "GATEWAY_BREAKER_OPEN", default_value = "5s", value_parser = parse_duration)]
    pub breaker_open: Duration,

    /// The longest an open breaker waits: each failed probe doubles the wait up to this. The
    /// default (no growth) brings a restarted replica back within one open duration; raise it to
    /// probe a replica that stays down less often.
    #[arg(long, env = "GATEWAY_BREAKER_MAX_OPEN", default_value = "5s", value_parser = parse_duration)]
    pub breaker_max_open: Duration,

    /// The path checked on an endpoint whose breaker is open; a 2xx lets a live request probe
    /// the endpoint at once instead of waiting out the open duration.
    #[arg(long, env = "GATEWAY_HEALTH_PATH", default_value = "/ready")]
    pub health_path: String,

    /// How often an endpoint whose breaker is open is checked (jittered), each check allowed
    /// as long (at most the attempt timeout).
    #[arg(long, env = "GATEWAY_HEALTH_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// Do not hedge: a slow idempotent request waits for its attempt timeout instead of being
    /// raced by a copy to another replica after the 95th percentile of recent latency.
    #[arg(long, env = "GATEWAY_NO_HEDGE")]
    pub no_hedge: bool,

    /// Inside a service mesh (Linkerd, Istio) whose sidecar already retries and breaks: one
    /// attempt per request, no hedging, breakers forced closed, so retries do not multiply;
    /// timeouts, the deadline and trace headers stay.
    #[arg(long, env = "GATEWAY_MESH")]
    pub mesh: bool,
}

/// The settings of the `dns://` and `dns+srv://` endpoint sources.
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverySettings {
    /// The DNS server for `dns://` and `dns+srv://` endpoints, `IP:PORT` (default: the system's, from
    /// /etc/resolv.conf, with its search domains).
    #[arg(long, env = "GATEWAY_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,

    /// Re-resolve a `dns://` name no sooner than this, whatever its records' TTL says.
    #[arg(long, env = "GATEWAY_DNS_MIN_TTL", default_value = "1s", value_parser = parse_duration)]
    pub dns_min_ttl: Duration,

    /// Re-resolve a `dns://` name at least this often, whatever its records' TTL says.
    #[arg(long, env = "GATEWAY_DNS_MAX_TTL", default_value = "30s", value_parser = parse_duration)]
    pub dns_max_ttl: Duration,
}

/// Reads `1500ms`, `2s`, `1.5s` or `1m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, ""), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?} needs a unit: ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| format!("{text:?} must be a positive duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_explained() {
        use clap::CommandFactory;
        let command = Cli::command();
        command.clone().debug_assert();
        for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(
                help.split_whitespace().count() >= 3,
                "--{} needs an explanation, has {help:?}",
                arg.get_id()
            );
        }
    }

    #[test]
    fn reads_durations_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("0s").unwrap_err().contains("positive"));
        assert!(parse_duration("soon").is_err());
    }
}
