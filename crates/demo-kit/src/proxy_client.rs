//! The `reqwest::Client` a proxy forwards through, configured once.
//!
//! The gateway sends every upstream request through one (inside its `ResilientClient`s), and
//! `benches/src/bin/reqwest-floor`, the least a reqwest proxy can do, sends through the same:
//! so the two differ by the gateway's own work alone, and a setting that makes a proxy faster
//! makes both faster.
//!
//! `reqwest::Client::new()` is made for a program calling the web, not for a proxy in front of
//! its own services. What [`proxy_client`] changes, and why:
//!
//! | [`Setting`] | default client | here |
//! |---|---|---|
//! | [`NoRetries`](Setting::NoRetries) | retries HTTP/2 protocol refusals, and to be able to, copies every request's headers and extensions before sending it | no copy: the caller retries (the gateway's retry policy, on another endpoint), and HTTP/1 has no refusal to retry |
//! | [`NoRedirects`](Setting::NoRedirects) | follows up to 10 redirects | answers a 3xx as it came: a proxy passes its upstream's redirects to its own client |
//! | [`NoProxy`](Setting::NoProxy) | reads `HTTP_PROXY` and friends once, and sends through what they name | never: the upstreams are the gateway's neighbours, and a proxy variable meant for the host's own web traffic must not reroute them |
//! | [`NoDelay`](Setting::NoDelay) | `TCP_NODELAY` on | on, said here because a proxy's small requests and answers must never wait for Nagle's algorithm (left out, it is turned off, to show what it is worth) |
//! | [`IdlePool`](Setting::IdlePool) | keeps every idle connection 90 s | keeps up to [`MAX_IDLE_PER_HOST`] per upstream for [`POOL_IDLE_TIMEOUT`]: enough for the connections a busy gateway has open at once, and connections the upstream is about to close are not reused |
//!
//! What is left out on purpose: reqwest's own timeouts (each would box a timer per request; the
//! caller's attempt timeout and deadline bound the exchange), and HTTP/2 (the crate is built
//! without it, so a plain `http://` upstream is HTTP/1.1 with keep-alive).
//!
//! Every setting can be left out one at a time ([`proxy_client_without`]), which is how the
//! benches measured what each bought (`reqwest-floor --without SETTING`).

use std::time::Duration;

/// Idle keep-alive connections kept per upstream endpoint.
pub const MAX_IDLE_PER_HOST: usize = 256;

/// How long an idle connection is kept: below the 60 s or more most servers keep one open
/// (hyper's server keeps it until the client closes), so a reused connection is rarely one the
/// upstream is closing at that moment.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// One of the ways [`proxy_client`] differs from `reqwest::Client::new()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// reqwest retries nothing (and so copies no request to be able to).
    NoRetries,
    /// Redirects are answered, not followed.
    NoRedirects,
    /// No proxy from the environment.
    NoProxy,
    /// `TCP_NODELAY` on every upstream connection.
    NoDelay,
    /// A bounded idle pool with a shorter idle timeout.
    IdlePool,
}

impl Setting {
    /// Every setting, in the order of the module's table.
    pub const ALL: [Self; 5] = [
        Self::NoRetries,
        Self::NoRedirects,
        Self::NoProxy,
        Self::NoDelay,
        Self::IdlePool,
    ];

    /// The setting's name on command lines (`no-retries`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::NoRetries => "no-retries",
            Self::NoRedirects => "no-redirects",
            Self::NoProxy => "no-proxy",
            Self::NoDelay => "nodelay",
            Self::IdlePool => "idle-pool",
        }
    }

    /// The setting named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|setting| setting.name() == name)
    }
}

/// The client for a proxy: every [`Setting`].
///
/// # Errors
/// reqwest cannot build a client (its TLS backend failed to initialise).
pub fn proxy_client() -> reqwest::Result<reqwest::Client> {
    proxy_client_without(&[])
}

/// The client for a proxy without the settings in `left_out` (those stay as
/// `reqwest::Client::new()` has them, but for [`Setting::NoDelay`], which reqwest already turns
/// on: left out, Nagle's algorithm is on), to measure what each one buys.
///
/// # Errors
/// As [`proxy_client`].
pub fn proxy_client_without(left_out: &[Setting]) -> reqwest::Result<reqwest::Client> {
    let on = |setting: Setting| !left_out.contains(&setting);
    let mut builder = reqwest::Client::builder();
    if on(Setting::NoRetries) {
        builder = builder.retry(reqwest::retry::never().max_retries_per_request(0));
    }
    if on(Setting::NoRedirects) {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    if on(Setting::NoProxy) {
        builder = builder.no_proxy();
    }
    builder = builder.tcp_nodelay(on(Setting::NoDelay));
    if on(Setting::IdlePool) {
        builder = builder
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_found_by_its_name() {
        for setting in Setting::ALL {
            assert_eq!(Setting::from_name(setting.name()), Some(setting));
        }
        assert_eq!(Setting::from_name("gzip"), None);
    }

    #[test]
    fn builds_with_and_without_each_setting() {
        assert!(proxy_client().is_ok());
        for setting in Setting::ALL {
            assert!(proxy_client_without(&[setting]).is_ok(), "{setting:?}");
        }
    }
}
