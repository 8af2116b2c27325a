//! DNS discovery: the addresses of a name on a fixed port (A/AAAA), or the targets and ports a
//! service's SRV records name, re-resolved on the TTL.
//!
//! - `dns://NAME:PORT`: every A/AAAA address of `NAME`, all serving `PORT`. This is how a
//!   Kubernetes headless Service is found: one address per ready pod, all on the same port.
//! - `dns+srv://NAME` (e.g. `_http._tcp.users.default.svc.cluster.local`): each SRV record
//!   names a target host *and its port*, so replicas may listen on different ports (several on
//!   one host, or a port the operator chose per replica). Kubernetes publishes SRV records for
//!   a Service's named ports; Consul answers them for every service.
//!
//! The answer is asked again when its TTL runs out, bounded below (a TTL of 0 must not become
//! a query loop) and above (a long TTL must not hide a change for long); the resolver's own
//! cache is capped at the same bound, so a re-query never returns an answer older than that.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use tokio::sync::watch;

use super::{EndpointSet, publish};
use crate::config::DiscoverySettings;

/// What to resolve: `dns://NAME:PORT` or `dns+srv://NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsName {
    /// Every A/AAAA address of `host`, on `port`.
    Addresses {
        /// The name whose addresses are the endpoints.
        host: String,
        /// The port every address serves on.
        port: u16,
    },
    /// The targets and ports of `name`'s SRV records.
    Service {
        /// The SRV name, `_SERVICE._PROTO.NAME`.
        name: String,
    },
}

impl FromStr for DnsName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("dns+srv://") {
            let name = rest.trim_end_matches('/');
            if name.is_empty() || name.contains(['/', ':']) {
                return Err(format!(
                    "{text:?} is not a dns+srv://NAME URL (the ports come from the SRV records)"
                ));
            }
            return Ok(Self::Service {
                name: name.to_owned(),
            });
        }
        let rest = text
            .strip_prefix("dns://")
            .ok_or_else(|| format!("{text:?} is not a dns://NAME:PORT or dns+srv://NAME URL"))?;
        let (host, port) = rest.trim_end_matches('/').rsplit_once(':').ok_or_else(|| {
            format!("{text:?} needs a port: dns://NAME:PORT (or dns+srv://NAME for SRV records)")
        })?;
        let port = port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port"))?;
        if host.is_empty() {
            return Err(format!("{text:?} needs a name: dns://NAME:PORT"));
        }
        Ok(Self::Addresses {
            host: host.to_owned(),
            port,
        })
    }
}

impl DnsName {
    /// The name asked for, for logs.
    fn queried(&self) -> &str {
        match self {
            Self::Addresses { host, .. } => host,
            Self::Service { name } => name,
        }
    }
}

/// The endpoint URL for an address and port.
fn url(ip: IpAddr, port: u16) -> String {
    format!("http://{}", SocketAddr::new(ip, port))
}

/// One SRV record's choice of server: where, and how preferred (lower first).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SrvTarget {
    priority: u16,
    port: u16,
    target: Name,
}

/// The SRV targets grouped by priority, most preferred first. A target of `.` ("the service is
/// decidedly not available here", RFC 2782) is dropped. Weights are not used: the round robin
/// shares calls evenly, and the breakers already take weight off an endpoint that fails.
fn by_priority(targets: Vec<SrvTarget>) -> Vec<Vec<SrvTarget>> {
    let mut groups: BTreeMap<u16, Vec<SrvTarget>> = BTreeMap::new();
    for target in targets.into_iter().filter(|t| !t.target.is_root()) {
        groups.entry(target.priority).or_default().push(target);
    }
    groups.into_values().collect()
}

/// The addresses `records` give for `target` (a server's additional section often carries them).
fn addresses_in(records: &[hickory_resolver::proto::rr::Record], target: &Name) -> Vec<IpAddr> {
    records
        .iter()
        .filter(|record| record.name == *target)
        .filter_map(|record| record.data.ip_addr())
        .collect()
}

/// A lookup's endpoints and until when they hold.
type Answer = (EndpointSet, Instant);

/// The endpoints of `host` on `port`.
async fn lookup_addresses(
    resolver: &TokioResolver,
    host: &str,
    port: u16,
) -> Result<Answer, String> {
    let lookup = resolver
        .lookup_ip(host)
        .await
        .map_err(|error| error.to_string())?;
    let set = lookup.iter().map(|ip| url(ip, port)).collect();
    Ok((set, lookup.valid_until()))
}

/// The endpoints of the most preferred priority of `name`'s SRV records that has any address.
/// Targets without addresses in the answer are resolved; the set holds until the soonest TTL
/// of every record used.
async fn lookup_service(resolver: &TokioResolver, name: &str) -> Result<Answer, String> {
    let lookup = resolver
        .srv_lookup(name)
        .await
        .map_err(|error| error.to_string())?;
    let mut valid_until = lookup.valid_until();
    let targets = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(SrvTarget {
                priority: srv.priority,
                port: srv.port,
                target: srv.target.clone(),
            }),
            _ => None,
        })
        .collect();
    for group in by_priority(targets) {
        let mut set = EndpointSet::new();
        for target in group {
            let mut ips = addresses_in(lookup.additionals(), &target.target);
            if ips.is_empty() {
                match resolver.lookup_ip(target.target.clone()).await {
                    Ok(found) => {
                        valid_until = valid_until.min(found.valid_until());
                        ips = found.iter().collect();
                    }
                    Err(error) => {
                        tracing::warn!(srv = name, target = %target.target, %error, "an SRV target has no address");
                    }
                }
            }
            set.extend(ips.into_iter().map(|ip| url(ip, target.port)));
        }
        if !set.is_empty() {
            return Ok((set, valid_until));
        }
    }
    Ok((EndpointSet::new(), valid_until))
}

/// A resolver asking `settings.dns_server`, or the system's servers (with its search domains,
/// so a short Kubernetes name like `users` works in a pod).
///
/// # Errors
/// The system's configuration cannot be read.
pub fn resolver(settings: &DiscoverySettings) -> Result<TokioResolver, String> {
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
        let answer = match &name {
            DnsName::Addresses { host, port } => lookup_addresses(&resolver, host, *port).await,
            DnsName::Service { name } => lookup_service(&resolver, name).await,
        };
        let ttl = match answer {
            Ok((set, valid_until)) => {
                if set.is_empty() {
                    tracing::warn!(
                        name = name.queried(),
                        "no addresses; keeping the last known endpoints"
                    );
                } else {
                    publish(&tx, set);
                }
                valid_until.saturating_duration_since(Instant::now())
            }
            Err(error) => {
                tracing::warn!(name = name.queried(), %error, "lookup failed; keeping the last known endpoints");
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
        assert_eq!(
            name,
            DnsName::Addresses {
                host: "users.default.svc.cluster.local".to_owned(),
                port: 8081
            }
        );
        assert_eq!(
            url("10.0.0.7".parse().unwrap(), 8081),
            "http://10.0.0.7:8081"
        );
        assert_eq!(url("::1".parse().unwrap(), 8081), "http://[::1]:8081");
        assert!("dns://users".parse::<DnsName>().is_err());
        assert!("dns://:80".parse::<DnsName>().is_err());
        assert!("dns://users:http".parse::<DnsName>().is_err());
    }

    #[test]
    fn reads_srv_names_without_ports() {
        let name: DnsName = "dns+srv://_http._tcp.users.default.svc.cluster.local"
            .parse()
            .unwrap();
        assert_eq!(
            name,
            DnsName::Service {
                name: "_http._tcp.users.default.svc.cluster.local".to_owned()
            }
        );
        assert!("dns+srv://".parse::<DnsName>().is_err());
        let with_port = "dns+srv://_http._tcp.users:8081".parse::<DnsName>();
        assert!(
            with_port
                .unwrap_err()
                .contains("ports come from the SRV records")
        );
    }

    fn target(priority: u16, port: u16, host: &str) -> SrvTarget {
        SrvTarget {
            priority,
            port,
            target: Name::from_ascii(host).unwrap(),
        }
    }

    #[test]
    fn srv_targets_group_by_priority_lowest_first_without_the_root() {
        let groups = by_priority(vec![
            target(20, 9000, "backup.test."),
            target(10, 8081, "a.test."),
            target(10, 8083, "b.test."),
            target(5, 1, "."),
        ]);
        assert_eq!(
            groups,
            vec![
                vec![target(10, 8081, "a.test."), target(10, 8083, "b.test.")],
                vec![target(20, 9000, "backup.test.")],
            ]
        );
    }

    #[test]
    fn srv_target_addresses_come_from_the_matching_records() {
        use hickory_resolver::proto::rr::Record;
        use hickory_resolver::proto::rr::rdata::A;
        let a = Name::from_ascii("a.test.").unwrap();
        let b = Name::from_ascii("b.test.").unwrap();
        let records = [
            Record::from_rdata(a.clone(), 5, RData::A(A::new(10, 0, 0, 1))),
            Record::from_rdata(b, 5, RData::A(A::new(10, 0, 0, 2))),
        ];
        assert_eq!(
            addresses_in(&records, &a),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
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
