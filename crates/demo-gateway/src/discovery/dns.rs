//! DNS discovery: every A/AAAA address of a name, on a fixed port, re-resolved on the TTL.
//!
//! This is how a Kubernetes headless Service is found (one address per ready pod, all serving
//! the same port), so A/AAAA records and a port in the URL are the whole need. The answer is
//! asked again when its TTL runs out, bounded below (a TTL of 0 must not become a query loop)
//! and above (a long TTL must not hide a change for long); the resolver's own cache is capped
//! at the same bound, so a re-query never returns an answer older than that.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::sync::watch;

use super::{EndpointSet, Settings, publish};

/// A name to resolve and the port its addresses serve on: `dns://NAME:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName {
    host: String,
    port: u16,
}

impl FromStr for DnsName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("dns://")
            .ok_or_else(|| format!("{text:?} is not a dns://NAME:PORT URL"))?;
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} needs a port: dns://NAME:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port"))?;
        if host.is_empty() {
            return Err(format!("{text:?} needs a name: dns://NAME:PORT"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl DnsName {
    /// The endpoint URL for one address of the name.
    fn url(&self, ip: IpAddr) -> String {
        format!("http://{}", SocketAddr::new(ip, self.port))
    }
}

/// A resolver asking `settings.dns_server`, or the system's servers (with its search domains,
/// so a short Kubernetes name like `users` works in a pod).
///
/// # Errors
/// The system's configuration cannot be read.
pub fn resolver(settings: &Settings) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match settings.dns_server {
        Some(server) => {
            let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
            for connection in &mut name_server.connections {
                connection.port = server.port();
            }
            let config = ResolverConfig::from_name_servers(vec![name_server]);
            TokioResolver::builder_with_config(config, provider)
        }
        None => TokioResolver::builder(provider)
            .map_err(|error| format!("cannot read the system's DNS configuration: {error}"))?,
    };
    let options = builder.options_mut();
    options.positive_max_ttl = Some(settings.dns_max_ttl);
    options.negative_max_ttl = Some(settings.dns_min_ttl);
    builder
        .build()
        .map_err(|error| format!("cannot set up the DNS resolver: {error}"))
}

/// When to ask again after an answer valid for `ttl`: the TTL within `[min, max]`.
pub fn refresh_after(ttl: Duration, (min, max): (Duration, Duration)) -> Duration {
    ttl.clamp(min, max.max(min))
}

/// Resolves `name` again and again, publishing each new set of endpoints on `tx`, until no one
/// listens. A failed or empty lookup publishes nothing: the last known set stays.
pub async fn follow(
    name: DnsName,
    resolver: TokioResolver,
    bounds: (Duration, Duration),
    tx: watch::Sender<EndpointSet>,
) {
    while !tx.is_closed() {
        let ttl = match resolver.lookup_ip(name.host.as_str()).await {
            Ok(lookup) => {
                let set: EndpointSet = lookup.iter().map(|ip| name.url(ip)).collect();
                if set.is_empty() {
                    tracing::warn!(name = %name.host, "no addresses; keeping the last known endpoints");
                } else {
                    publish(&tx, set);
                }
                lookup
                    .valid_until()
                    .saturating_duration_since(Instant::now())
            }
            Err(error) => {
                tracing::warn!(name = %name.host, %error, "lookup failed; keeping the last known endpoints");
                bounds.0
            }
        };
        tokio::time::sleep(refresh_after(ttl, bounds)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_with_ports() {
        let name: DnsName = "dns://users.default.svc.cluster.local:8081"
            .parse()
            .unwrap();
        assert_eq!(name.host, "users.default.svc.cluster.local");
        assert_eq!(name.port, 8081);
        assert_eq!(
            name.url("10.0.0.7".parse().unwrap()),
            "http://10.0.0.7:8081"
        );
        assert_eq!(name.url("::1".parse().unwrap()), "http://[::1]:8081");
        assert!("dns://users".parse::<DnsName>().is_err());
        assert!("dns://:80".parse::<DnsName>().is_err());
        assert!("dns://users:http".parse::<DnsName>().is_err());
    }

    #[test]
    fn refreshes_on_the_ttl_within_bounds() {
        let bounds = (Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(
            refresh_after(Duration::ZERO, bounds),
            Duration::from_secs(1)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(5), bounds),
            Duration::from_secs(5)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(3600), bounds),
            Duration::from_secs(30)
        );
        // A maximum below the minimum does not panic: the minimum wins.
        let crossed = (Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(
            refresh_after(Duration::ZERO, crossed),
            Duration::from_secs(10)
        );
    }
}
