//! Who may call the gateway: clients with an API key and its rate limit ([`ApiKeys`]), and on
//! `/admin` and `/metrics` operators, with an operator key distinct from every client API key
//! ([`AdminKeys`]); the cookie and the grant that carry an operator key for the dashboard.
//!
//! Both kinds of key in one module, since an operator check must tell a client key (403) from
//! an unknown one (401). It decides from the request's method, URI and headers alone and
//! imports nothing of the gateway but the route table, so the edge and the state both use it.
//!
//! A client key there is 403 (known, but not allowed), no key or an unknown one 401; operator
//! keys are compared in constant time, so a guess cannot be timed. Operator requests are not
//! rate-limited (there are few operators, and the dashboard's stream is one long request).
//!
//! How a browser sends the key: an `EventSource` cannot set headers, so the dashboard is opened
//! once as `/admin/dashboard?key=KEY` (the URL the demo prints). That one request, and only
//! that one, may carry the key in its query; its answer sets the key as a cookie that is
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page can make the
//! browser send it, so no cross-site request can force a breaker open) and `Path=/admin`, and
//! the page then removes the key from the address bar and history. The stream and the actions
//! ride on the cookie. `SameSite` does not tell ports apart, so an action that rides on the
//! cookie must also come from a page of the gateway's own origin (its `Origin` header names the
//! gateway's `Host`). Scripts and `curl` send the key as `x-api-key` or
//! `Authorization: Bearer`, as clients do. The gateway logs paths, never queries. The cookie is
//! not marked `Secure` since the demo speaks plain HTTP; behind TLS, terminate TLS in front of
//! the gateway and keep `/admin` off the public listener.

use std::collections::HashMap;
use std::num::NonZeroU32;

use demo_kit::{AppError, ErrorCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::routes::{ADMIN, DASHBOARD};

/// The cookie that carries the operator key for the dashboard.
const COOKIE: &str = "resilience_admin";

/// The accepted API keys, each with its own token bucket.
///
/// One map from key to bucket: a request's key is found and its bucket checked in one lookup by
/// `&str`, without copying the key (governor's keyed limiter would want an owned `String` per
/// check) and without the keyed limiter's concurrent map, since the set of keys is fixed.
pub struct ApiKeys {
    limiters: HashMap<String, DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.limiters.len())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Accepts `keys`, each allowed `per_second` requests on average and `burst` at once.
    pub fn new(
        keys: impl IntoIterator<Item = String>,
        per_second: NonZeroU32,
        burst: NonZeroU32,
    ) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiters: keys
                .into_iter()
                .map(|key| (key, RateLimiter::direct(quota)))
                .collect(),
        }
    }

    /// Whether `key` is a client key.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.limiters.contains_key(key)
    }

    /// Lets the request through, or says why not: 401 without a known key, 429 over its rate.
    pub(crate) fn admit(&self, headers: &HeaderMap) -> Result<(), AppError> {
        let key = presented_key(headers).ok_or_else(|| {
            AppError::new(
                ErrorCode::Unauthorized,
                "an API key is required: send it as x-api-key or Authorization: Bearer",
            )
        })?;
        let limiter = self
            .limiters
            .get(key)
            .ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "unknown API key"))?;
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::new(
                ErrorCode::TooManyRequests,
                "rate limit exceeded for this API key",
            )
            .with_retry_after(wait.as_secs_f64().ceil().max(1.0) as u64)
        })
    }
}

/// The key from `x-api-key`, or from `Authorization: Bearer`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
    {
        return Some(key.trim());
    }
    let authorization = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The accepted operator keys.
#[derive(Clone, Default)]
pub struct AdminKeys {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for AdminKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// How an admitted operator request carried its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// In a header or the cookie: nothing more to do.
    Header,
    /// In the dashboard's query: answer with the cookie, so the page's stream and actions work.
    Query(String),
}

impl AdminKeys {
    /// Accepts `keys` (blank ones dropped). A key must be printable ASCII without spaces,
    /// quotes, commas, semicolons or backslashes, so it can travel in a header, a cookie and a
    /// query unchanged.
    ///
    /// # Errors
    /// The first key that cannot.
    pub fn new(keys: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut accepted = Vec::new();
        for key in keys {
            let key = key.trim();
            if key.is_empty() {
                continue;
            }
            if !key.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'"' | b',' | b';' | b'\\' | b'%' | b'&' | b'+' | b'#')
            }) {
                return Err(concat!(
                    "an operator key must be printable ASCII without spaces or any of ",
                    r#"" , ; \ % & + #"#
                )
                .to_owned());
            }
            accepted.push(key.as_bytes().to_vec());
        }
        Ok(Self { keys: accepted })
    }

    /// Whether there is no key (then nobody can use `/admin`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `presented` is one of the keys, in time that does not depend on where they
    /// differ (every key is compared, also after a match).
    fn accepts(&self, presented: &str) -> bool {
        self.keys
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.as_slice().ct_eq(presented.as_bytes())
            })
            .into()
    }

    /// Admits an operator, or says why not: 401 without a key or with an unknown one, 403 with
    /// a client key.
    pub(crate) fn authorize(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        clients: &ApiKeys,
    ) -> Result<Grant, AppError> {
        let (presented, grant) = if let Some(key) = presented_key(headers) {
            (key.to_owned(), Grant::Header)
        } else if let Some(key) = cookie(headers) {
            if !matches!(*method, http::Method::GET | http::Method::HEAD) && !same_origin(headers) {
                return Err(AppError::new(
                    ErrorCode::Forbidden,
                    "an operator action carried by the dashboard's cookie must come from the \
                     dashboard's own page",
                ));
            }
            (key.to_owned(), Grant::Header)
        } else if let Some(key) = (*method == http::Method::GET && uri.path() == DASHBOARD)
            .then(|| query_key(uri))
            .flatten()
        {
            (key.to_owned(), Grant::Query(key.to_owned()))
        } else {
            return Err(AppError::new(
                ErrorCode::Unauthorized,
                "an operator key is required: send it as x-api-key or Authorization: Bearer, \
                 or open /admin/dashboard?key=KEY once in a browser",
            ));
        };
        if self.accepts(&presented) {
            return Ok(grant);
        }
        if clients.contains(&presented) {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "a client API key cannot use /admin or /metrics: they need an operator key",
            ));
        }
        Err(AppError::new(
            ErrorCode::Unauthorized,
            "unknown operator key",
        ))
    }
}

/// The `Set-Cookie` value that carries `key` for the dashboard's stream and actions.
pub(crate) fn set_cookie(key: &str) -> Option<http::HeaderValue> {
    http::HeaderValue::from_str(&format!(
        "{COOKIE}={key}; Path={ADMIN}; HttpOnly; SameSite=Strict; Max-Age=43200"
    ))
    .ok()
}

/// The operator key in the `Cookie` header, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the request's `Origin` is the gateway itself (`http://HOST` or `https://HOST` for
/// its `Host` header).
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    match (header(http::header::ORIGIN), header(http::header::HOST)) {
        (Some(origin), Some(host)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// `key=...` in the query (keys have no characters that need escaping).
fn query_key(uri: &http::Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "key")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    fn keys(burst: u32) -> ApiKeys {
        let one = NonZeroU32::MIN;
        ApiKeys::new(["k1".to_owned()], one, NonZeroU32::new(burst).unwrap())
    }

    #[test]
    fn accepts_the_key_in_either_header() {
        assert!(keys(10).admit(&headers(&[("x-api-key", "k1")])).is_ok());
        assert!(
            keys(10)
                .admit(&headers(&[("authorization", "Bearer k1")]))
                .is_ok()
        );
        assert!(
            keys(10)
                .admit(&headers(&[("authorization", "bearer  k1 ")]))
                .is_ok()
        );
    }

    #[test]
    fn refuses_missing_and_unknown_keys_with_401() {
        let missing = keys(10).admit(&HeaderMap::new()).unwrap_err();
        assert_eq!(
            (
                missing.status().as_u16(),
                missing.message().contains("x-api-key")
            ),
            (401, true)
        );
        let unknown = keys(10)
            .admit(&headers(&[("x-api-key", "k2")]))
            .unwrap_err();
        assert_eq!(unknown.status().as_u16(), 401);
        let basic = keys(10)
            .admit(&headers(&[("authorization", "Basic k1")]))
            .unwrap_err();
        assert_eq!(basic.status().as_u16(), 401);
    }

    #[test]
    fn limits_each_key_to_its_burst_then_429_with_retry_after() {
        let keys = keys(3);
        let request = headers(&[("x-api-key", "k1")]);
        for _ in 0..3 {
            keys.admit(&request).unwrap();
        }
        let limited = keys.admit(&request).unwrap_err();
        assert_eq!(limited.status().as_u16(), 429);
        let response = limited.into_http_response();
        assert_eq!(response.headers()["retry-after"], "1");
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let one = NonZeroU32::MIN;
        let keys = ApiKeys::new(["k1".to_owned(), "k2".to_owned()], one, one);
        keys.admit(&headers(&[("x-api-key", "k1")])).unwrap();
        let limited = keys.admit(&headers(&[("x-api-key", "k1")])).unwrap_err();
        assert_eq!(limited.status().as_u16(), 429);
        keys.admit(&headers(&[("x-api-key", "k2")])).unwrap();
    }

    fn clients() -> ApiKeys {
        ApiKeys::new(["client".to_owned()], NonZeroU32::MIN, NonZeroU32::MIN)
    }

    fn authorize(uri: &str, headers: &[(&'static str, &str)]) -> Result<Grant, u16> {
        authorize_as(http::Method::GET, uri, headers)
    }

    fn authorize_as(
        method: http::Method,
        uri: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Grant, u16> {
        let keys = AdminKeys::new(["op-1".to_owned(), "op-2".to_owned()]).unwrap();
        let headers: HeaderMap = headers
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect();
        keys.authorize(&method, &uri.parse().unwrap(), &headers, &clients())
            .map_err(|error| error.status().as_u16())
    }

    #[test]
    fn an_operator_key_in_a_header_or_the_cookie_is_admitted() {
        assert_eq!(
            authorize("/admin/status", &[("x-api-key", "op-2")]),
            Ok(Grant::Header)
        );
        assert_eq!(
            authorize("/metrics", &[("authorization", "Bearer op-1")]),
            Ok(Grant::Header)
        );
        assert_eq!(
            authorize(
                "/admin/breakers",
                &[("cookie", "a=b; resilience_admin=op-1")]
            ),
            Ok(Grant::Header)
        );
    }

    #[test]
    fn a_client_key_is_403_and_no_key_or_an_unknown_one_401() {
        assert_eq!(
            authorize("/admin/status", &[("x-api-key", "client")]),
            Err(403)
        );
        assert_eq!(authorize("/admin/status", &[]), Err(401));
        assert_eq!(
            authorize("/admin/status", &[("x-api-key", "op-3")]),
            Err(401)
        );
        assert_eq!(
            authorize("/admin/status", &[("x-api-key", "op-")]),
            Err(401)
        );
        assert_eq!(
            authorize("/admin/status", &[("cookie", "resilience_admin=client")]),
            Err(403)
        );
    }

    #[test]
    fn only_the_dashboard_page_takes_the_key_in_its_query() {
        assert_eq!(
            authorize("/admin/dashboard?key=op-1", &[]),
            Ok(Grant::Query("op-1".to_owned()))
        );
        assert_eq!(authorize("/admin/status?key=op-1", &[]), Err(401));
        assert_eq!(authorize("/admin/breakers/events?key=op-1", &[]), Err(401));
        assert_eq!(authorize("/admin/dashboard?key=client", &[]), Err(403));
    }

    #[test]
    fn an_action_on_the_cookie_must_come_from_the_gateway_s_own_page() {
        let action = "/admin/breakers/users%40a/force-open";
        let cookie = ("cookie", "resilience_admin=op-1");
        let host = ("host", "127.0.0.1:8080");
        let post =
            |headers: &[(&'static str, &str)]| authorize_as(http::Method::POST, action, headers);
        assert_eq!(
            post(&[cookie, host, ("origin", "http://127.0.0.1:8080")]),
            Ok(Grant::Header)
        );
        assert_eq!(
            post(&[cookie, host, ("origin", "http://127.0.0.1:8081")]),
            Err(403),
            "another port of the same site"
        );
        assert_eq!(post(&[cookie, host]), Err(403), "no origin at all");
        // A header key is not sent by a browser on its own: no origin needed.
        assert_eq!(post(&[("x-api-key", "op-1")]), Ok(Grant::Header));
    }

    #[test]
    fn keys_that_cannot_travel_in_a_cookie_are_refused_at_start() {
        assert!(AdminKeys::new(["has space".to_owned()]).is_err());
        assert!(AdminKeys::new(["semi;colon".to_owned()]).is_err());
        assert!(AdminKeys::new([" ".to_owned()]).unwrap().is_empty());
        assert!(
            set_cookie("op-1")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("HttpOnly")
        );
    }
}
