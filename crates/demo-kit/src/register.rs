//! A replica registering itself in etcd (`--register etcd://HOST:PORT/PREFIX`), so a gateway
//! watching `PREFIX/SERVICE` finds it without being told its address.
//!
//! The replica puts `PREFIX/SERVICE/REPLICA = http://ADDR` under a lease of a few seconds and
//! keeps the lease alive from a background task. Each way out of the set is covered:
//! - graceful shutdown: the lease is revoked (its key goes with it) *before* the listener
//!   closes, so the gateway stops choosing the replica while it still drains what it has;
//! - SIGKILL, a crash, a lost machine: nobody keeps the lease alive, and etcd deletes the key
//!   when the TTL runs out — which is why the TTL is short;
//! - etcd unreachable or restarted: the task retries, and registers anew when the lease it had
//!   is gone.
//!
//! Registration never stops a replica from serving: an etcd that is down is logged and retried,
//! and the replica still answers anyone who knows its address.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use etcd_client::{Client, PutOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long deregistering on shutdown may take before the replica gives up on etcd (the lease
/// then expires by itself).
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// An etcd location and key prefix: `etcd://HOST:PORT/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    endpoint: String,
    prefix: String,
}

impl EtcdUrl {
    /// The etcd client URL, `http://HOST:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The key prefix, starting with `/` and without a trailing one, e.g. `/demo`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key under which `replica` of `service` registers: `PREFIX/SERVICE/REPLICA`.
    pub fn key(&self, service: &str, replica: &str) -> String {
        format!("{}/{service}/{replica}", self.prefix)
    }
}

impl FromStr for EtcdUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{text:?} is not an etcd://HOST:PORT/PREFIX URL"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = path.trim_matches('/');
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!(
                "{text:?} needs a HOST:PORT, e.g. etcd://etcd:2379/demo"
            ));
        }
        if prefix.is_empty() {
            return Err(format!(
                "{text:?} needs a key prefix, e.g. etcd://{authority}/demo"
            ));
        }
        Ok(Self {
            endpoint: format!("http://{authority}"),
            prefix: format!("/{prefix}"),
        })
    }
}

impl fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authority = self.endpoint.trim_start_matches("http://");
        write!(f, "etcd://{authority}{}", self.prefix)
    }
}

/// What a replica registers: where, under which name, with which address and lease TTL.
#[derive(Debug, Clone)]
pub struct RegisterSpec {
    /// The etcd server and prefix.
    pub etcd: EtcdUrl,
    /// The service, e.g. `users` (the gateway watches `PREFIX/users`).
    pub service: &'static str,
    /// This replica's name, unique within the service: the last part of its key.
    pub replica: String,
    /// The URL other machines reach this replica at; `None` means `http://` and the bound
    /// address, which only works when that is not a wildcard address.
    pub advertise: Option<String>,
    /// The lease TTL: how long a replica that died without deregistering stays in the set.
    pub ttl: Duration,
}

impl RegisterSpec {
    /// The URL to register for a replica bound to `addr`.
    ///
    /// # Errors
    /// No `advertise` URL was given and `addr` is a wildcard (`0.0.0.0`, `::`), which no other
    /// process can call.
    pub fn url_for(&self, addr: std::net::SocketAddr) -> Result<String, String> {
        match &self.advertise {
            Some(url) => Ok(url.trim_end_matches('/').to_owned()),
            None if addr.ip().is_unspecified() => Err(format!(
                "listening on {addr}, a wildcard address, so others cannot be told where to \
                 find this replica: give the URL to register with --advertise-url"
            )),
            None => Ok(format!("http://{addr}")),
        }
    }
}

/// A running registration: the background task holding the key and its lease.
#[derive(Debug)]
pub struct Registration {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Registration {
    /// Starts registering `url` as described by `spec`, in the background: the first attempt
    /// and every retry are logged.
    pub fn start(spec: RegisterSpec, url: String) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(keep_registered(spec, url, stopped));
        Self { stop, task }
    }

    /// Takes the replica out of the set (revokes its lease, deleting the key) and stops
    /// keeping it alive. Bounded by a short timeout: when etcd does not answer, the lease
    /// expires by itself.
    pub async fn deregister(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(DEREGISTER_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            tracing::warn!("etcd did not confirm the deregistration; the lease will expire");
            task.abort();
        }
    }
}

/// Registers and keeps the registration alive until `stopped`, then deregisters.
async fn keep_registered(spec: RegisterSpec, url: String, mut stopped: oneshot::Receiver<()>) {
    let key = spec.etcd.key(spec.service, &spec.replica);
    let ttl_seconds = i64::try_from(spec.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    // Keep-alives three times per TTL, so one lost keep-alive does not lose the lease.
    let beat = (spec.ttl / 3).max(Duration::from_millis(100));
    loop {
        let registered = tokio::select! {
            _ = &mut stopped => return,
            registered = register_once(spec.etcd.endpoint(), &key, &url, ttl_seconds) => registered,
        };
        let (mut client, lease) = match registered {
            Ok(registered) => registered,
            Err(error) => {
                tracing::warn!(%key, %error, "cannot register in etcd; retrying");
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(beat) => continue,
                }
            }
        };
        tracing::info!(%key, %url, lease, "registered in etcd");
        let kept = tokio::select! {
            _ = &mut stopped => None,
            kept = keep_alive(&mut client, lease, beat) => Some(kept),
        };
        match kept {
            // Registered => deregistered: the replica is shutting down.
            None => return revoke(&mut client, lease, &key).await,
            Some(Ok(())) => tracing::warn!(%key, "the etcd lease expired; registering again"),
            Some(Err(error)) => {
                tracing::warn!(%key, %error, "lost etcd while keeping the lease; retrying");
                tokio::select! {
                    // The lease may still be alive: take the key out now rather than at expiry.
                    _ = &mut stopped => return revoke(&mut client, lease, &key).await,
                    () = tokio::time::sleep(beat) => {}
                }
            }
        }
    }
}

/// Connects, grants a lease of `ttl_seconds` and puts `key = url` under it.
async fn register_once(
    endpoint: &str,
    key: &str,
    url: &str,
    ttl_seconds: i64,
) -> Result<(Client, i64), etcd_client::Error> {
    let mut client = Client::connect([endpoint], None).await?;
    let lease = client.lease_grant(ttl_seconds, None).await?.id();
    client
        .put(key, url, Some(PutOptions::new().with_lease(lease)))
        .await?;
    Ok((client, lease))
}

/// Renews `lease` every `beat`; returns once etcd says the lease is gone.
async fn keep_alive(
    client: &mut Client,
    lease: i64,
    beat: Duration,
) -> Result<(), etcd_client::Error> {
    let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
    let mut ticks = tokio::time::interval(beat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        keeper.keep_alive().await?;
        match responses.message().await? {
            Some(response) if response.ttl() > 0 => {}
            // Lease gone (etcd answers TTL 0), or the stream ended.
            _ => return Ok(()),
        }
    }
}

/// Revokes `lease`, which deletes `key` with it.
async fn revoke(client: &mut Client, lease: i64, key: &str) {
    match client.lease_revoke(lease).await {
        Ok(_) => tracing::info!(%key, "deregistered from etcd"),
        Err(error) => tracing::warn!(%key, %error, "cannot deregister; the lease will expire"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_etcd_urls() {
        let url: EtcdUrl = "etcd://127.0.0.1:2379/demo/".parse().unwrap();
        assert_eq!(url.endpoint(), "http://127.0.0.1:2379");
        assert_eq!(url.prefix(), "/demo");
        assert_eq!(url.key("users", "users-1"), "/demo/users/users-1");
        assert_eq!(url.to_string(), "etcd://127.0.0.1:2379/demo");
        assert!("http://etcd:2379/demo".parse::<EtcdUrl>().is_err());
        assert!("etcd://etcd/demo".parse::<EtcdUrl>().is_err());
        assert!("etcd://etcd:2379".parse::<EtcdUrl>().is_err());
    }

    #[test]
    fn a_wildcard_address_needs_an_advertised_url() {
        let spec = RegisterSpec {
            etcd: "etcd://etcd:2379/demo".parse().unwrap(),
            service: "users",
            replica: "users-1".to_owned(),
            advertise: None,
            ttl: Duration::from_secs(5),
        };
        let local = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(spec.url_for(local).unwrap(), "http://127.0.0.1:8081");
        assert!(spec.url_for("0.0.0.0:8081".parse().unwrap()).is_err());
        let advertised = RegisterSpec {
            advertise: Some("http://users-1:8081/".to_owned()),
            ..spec
        };
        assert_eq!(
            advertised.url_for("0.0.0.0:8081".parse().unwrap()).unwrap(),
            "http://users-1:8081"
        );
    }
}
