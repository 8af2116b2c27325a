//! Where an upstream's endpoints come from while the gateway runs: fixed URLs, DNS or etcd.
//!
//! `--users` (and `--orders`) take one of:
//! - `http://HOST:PORT,...`: a fixed set;
//! - `dns://NAME:PORT`: every A/AAAA address of `NAME` on `PORT`, re-resolved when the answer's
//!   TTL runs out (bounded by `--dns-min-ttl` and `--dns-max-ttl`): a Kubernetes headless
//!   Service answers with one address per ready pod;
//! - `dns+srv://NAME`: the targets and ports of `NAME`'s SRV records (the most preferred
//!   priority that has an address), re-resolved the same way;
//! - `etcd://HOST:PORT/PREFIX/SERVICE`: the URLs replicas registered under that prefix
//!   (`demo-kit`'s `register`), followed with an etcd watch, so a change arrives at once.
//!
//! A source only produces the *desired set* of endpoint URLs. One pure function, [`plan`],
//! diffs it against the client's current endpoints, and
//! [`Upstream::reconcile`](crate::upstream::Upstream::reconcile) applies the
//! difference: `add_endpoint` for new URLs only (adding an existing one would replace its
//! breaker with a fresh one), then `remove_endpoint` for gone ones. So an endpoint that stays
//! keeps its breaker and counters, a new one starts with a fresh breaker, and a removed one's
//! in-flight requests finish (they hold the endpoint's stack; removal only stops new picks).
//!
//! An empty answer (NXDOMAIN, an empty etcd prefix, a failed lookup) never empties the set:
//! the last known endpoints are kept and a warning is logged. An upstream with no endpoints
//! can only answer 503, while endpoints that are really gone are cut off by their breakers
//! within a few requests, and a DNS server or etcd that is briefly down or misconfigured is
//! far more common than every replica going away at once.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::DiscoverySettings;

pub mod dns;
pub mod etcd;

/// Endpoint URLs, normalized (see [`normalize`]), in a stable order.
pub type EndpointSet = BTreeSet<String>;

/// How often a source that lost its server (etcd down, a watch cancelled) tries again.
const RETRY: Duration = Duration::from_secs(1);

/// Where an upstream's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Fixed URLs.
    Static(Vec<String>),
    /// A DNS name and the port its addresses serve on, or an SRV name.
    Dns(dns::DnsName),
    /// An etcd prefix replicas register under.
    Etcd(demo_kit::register::EtcdUrl),
}

impl Source {
    /// Reads the values of `--users` or `--orders`: URLs, or a single `dns://`, `dns+srv://` or
    /// `etcd://`.
    ///
    /// # Errors
    /// A discovery URL mixed with others, or one that does not parse.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let dns = |value: &str| value.starts_with("dns://") || value.starts_with("dns+srv://");
        let dynamic = |value: &String| dns(value) || value.starts_with("etcd://");
        match values {
            [one] if dns(one) => one.parse().map(Self::Dns),
            [one] if one.starts_with("etcd://") => one.parse().map(Self::Etcd),
            _ if values.iter().any(dynamic) => Err(format!(
                "{values:?}: a dns://, dns+srv:// or etcd:// source stands alone, not in a list"
            )),
            _ => Ok(Self::Static(values.to_vec())),
        }
    }

    /// Whether the endpoints are fixed.
    pub fn is_static(&self) -> bool {
        matches!(self, Self::Static(_))
    }
}

/// `url` as the client keys endpoints: parsed, without a trailing slash. `None` when it is not
/// an http(s) URL with a host.
pub fn normalize(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let usable = matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some();
    usable.then(|| parsed.as_str().trim_end_matches('/').to_owned())
}

/// What to change to get from `current` to `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// URLs to add (not in `current`).
    pub add: Vec<String>,
    /// URLs to remove (not in `desired`).
    pub remove: Vec<String>,
}

impl Plan {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The difference between the client's `current` endpoints and the `desired` set. An empty
/// `desired` changes nothing: the last known set is kept (see the module docs).
pub fn plan(current: &[String], desired: &EndpointSet) -> Plan {
    if desired.is_empty() {
        return Plan::default();
    }
    let current_set: BTreeSet<&String> = current.iter().collect();
    Plan {
        add: desired
            .iter()
            .filter(|url| !current_set.contains(url))
            .cloned()
            .collect(),
        remove: current
            .iter()
            .filter(|url| !desired.contains(*url))
            .cloned()
            .collect(),
    }
}

/// A source's first non-empty set, and, for DNS and etcd, the feed of later sets.
#[derive(Debug)]
pub struct Discovered {
    /// The endpoints to build the client with.
    pub initial: Vec<String>,
    /// Later desired sets; `None` for fixed URLs.
    pub feed: Option<watch::Receiver<EndpointSet>>,
}

/// Starts `source` for the upstream `name` and waits for its first non-empty answer (the
/// client cannot be built without an endpoint; the source logs why it is still waiting).
///
/// # Errors
/// The DNS resolver cannot be set up.
pub async fn start(
    source: &Source,
    name: &str,
    settings: &DiscoverySettings,
) -> Result<Discovered, String> {
    let (tx, mut rx) = watch::channel(EndpointSet::new());
    match source {
        Source::Static(urls) => {
            return Ok(Discovered {
                initial: urls.clone(),
                feed: None,
            });
        }
        Source::Dns(dns_name) => {
            let resolver = dns::resolver(settings)?;
            let bounds = (settings.dns_min_ttl, settings.dns_max_ttl);
            tokio::spawn(dns::follow(dns_name.clone(), resolver, bounds, tx));
        }
        Source::Etcd(url) => {
            tokio::spawn(etcd::follow(url.clone(), tx));
        }
    }
    tracing::info!(upstream = name, ?source, "waiting for the first endpoints");
    let initial = rx
        .wait_for(|set| !set.is_empty())
        .await
        .map_err(|_| format!("discovery for {name} stopped before finding an endpoint"))?
        .iter()
        .cloned()
        .collect();
    tracing::info!(upstream = name, endpoints = ?initial, "discovered");
    Ok(Discovered {
        initial,
        feed: Some(rx),
    })
}

/// Publishes `set` when it differs from the last one (so an unchanged answer wakes nobody).
fn publish(tx: &watch::Sender<EndpointSet>, set: EndpointSet) {
    tx.send_if_modified(|current| {
        let changed = *current != set;
        if changed {
            *current = set;
        }
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(urls: &[&str]) -> EndpointSet {
        urls.iter().map(|url| (*url).to_owned()).collect()
    }

    fn urls(urls: &[&str]) -> Vec<String> {
        urls.iter().map(|url| (*url).to_owned()).collect()
    }

    #[test]
    fn adds_only_new_urls_and_removes_only_gone_ones() {
        let current = urls(&["http://10.0.0.1:80", "http://10.0.0.2:80"]);
        let desired = set(&["http://10.0.0.2:80", "http://10.0.0.3:80"]);
        assert_eq!(
            plan(&current, &desired),
            Plan {
                add: urls(&["http://10.0.0.3:80"]),
                remove: urls(&["http://10.0.0.1:80"]),
            }
        );
    }

    #[test]
    fn the_same_set_changes_nothing() {
        let current = urls(&["http://10.0.0.1:80", "http://10.0.0.2:80"]);
        let desired = set(&["http://10.0.0.2:80", "http://10.0.0.1:80"]);
        assert!(plan(&current, &desired).is_empty());
    }

    #[test]
    fn an_empty_answer_keeps_the_last_known_set() {
        let current = urls(&["http://10.0.0.1:80"]);
        assert!(plan(&current, &EndpointSet::new()).is_empty());
    }

    #[test]
    fn normalizes_like_the_client_keys_endpoints() {
        assert_eq!(
            normalize("http://127.0.0.1:8081/").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(
            normalize("HTTP://Users:80").as_deref(),
            Some("http://users")
        );
        assert_eq!(normalize("etcd://x:1/y"), None);
        assert_eq!(normalize("not a url"), None);
    }

    #[test]
    fn reads_sources() {
        let one = |value: &str| Source::parse(&[value.to_owned()]);
        assert!(one("http://127.0.0.1:8081").unwrap().is_static());
        assert!(matches!(one("dns://users:8081"), Ok(Source::Dns(_))));
        assert!(matches!(
            one("dns+srv://_http._tcp.users"),
            Ok(Source::Dns(dns::DnsName::Service { .. }))
        ));
        assert!(matches!(
            one("etcd://127.0.0.1:2379/demo/users"),
            Ok(Source::Etcd(_))
        ));
        let mixed = Source::parse(&urls(&["dns://users:8081", "http://127.0.0.1:8081"]));
        assert!(mixed.unwrap_err().contains("stands alone"));
        assert!(one("dns://users").is_err());
    }
}
