//! etcd discovery: the URLs replicas registered under a prefix, followed with a watch.
//!
//! The prefix is listed once, then watched from the revision after that listing, so no change
//! between the two is lost; each put or delete (a replica deregistering, or its lease expiring
//! after a SIGKILL) arrives as it happens. When the connection or the watch ends (etcd
//! restarted, history compacted) the prefix is listed and watched again.

use std::collections::BTreeMap;

use demo_kit::register::EtcdUrl;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::watch;

use super::{EndpointSet, RETRY, normalize, publish};

/// Follows the registrations under `url`'s prefix, publishing each new set on `tx`, until no
/// one listens.
pub async fn follow(url: EtcdUrl, tx: watch::Sender<EndpointSet>) {
    // `PREFIX/` so that `/demo/users` does not also match `/demo/users-old/...`.
    let prefix = format!("{}/", url.prefix());
    while !tx.is_closed() {
        match follow_once(&url, &prefix, &tx).await {
            Ok(()) => tracing::warn!(%url, "the etcd watch ended; listing again"),
            Err(error) => tracing::warn!(%url, %error, "cannot follow etcd; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Lists `prefix`, then applies watch events until the watch ends.
async fn follow_once(
    url: &EtcdUrl,
    prefix: &str,
    tx: &watch::Sender<EndpointSet>,
) -> Result<(), etcd_client::Error> {
    let mut client = Client::connect([url.endpoint()], None).await?;
    let listing = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listing.header().map_or(0, |header| header.revision());
    let mut registered: BTreeMap<Vec<u8>, Vec<u8>> = listing
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect();
    send(url, tx, &registered);
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = client.watch(prefix, Some(options)).await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            return Ok(());
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => registered.insert(kv.key().to_vec(), kv.value().to_vec()),
                EventType::Delete => registered.remove(kv.key()),
            };
        }
        send(url, tx, &registered);
    }
    Ok(())
}

/// Publishes the registered URLs; an empty prefix publishes nothing (the last known set stays).
fn send(url: &EtcdUrl, tx: &watch::Sender<EndpointSet>, registered: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let set = endpoints(registered);
    if set.is_empty() {
        tracing::warn!(%url, "no replica registered; keeping the last known endpoints");
    } else {
        publish(tx, set);
    }
}

/// The usable URLs among the registered values; others are logged and skipped.
fn endpoints(registered: &BTreeMap<Vec<u8>, Vec<u8>>) -> EndpointSet {
    registered
        .iter()
        .filter_map(|(key, value)| {
            let text = String::from_utf8_lossy(value);
            let url = normalize(&text);
            if url.is_none() {
                let key = String::from_utf8_lossy(key);
                tracing::warn!(%key, value = %text, "not an http(s) URL; skipped");
            }
            url
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_become_normalized_urls() {
        let registered: BTreeMap<Vec<u8>, Vec<u8>> = [
            (&b"/demo/users/users-1"[..], &b"http://10.0.0.1:8081/"[..]),
            (b"/demo/users/users-2", b"http://10.0.0.2:8081"),
            (b"/demo/users/bad", b"not a url"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect();
        let urls: Vec<String> = endpoints(&registered).into_iter().collect();
        assert_eq!(urls, ["http://10.0.0.1:8081", "http://10.0.0.2:8081"]);
    }
}
