//! Edge protection: API keys and per-key rate limits, in front of every route but `/health` and
//! `/ready`; operator keys in front of `/admin` and `/metrics` ([`crate::admin`]), which also
//! routes the dashboard's paths to the crate's admin service; and the request counter.
//!
//! A tower layer around the rustapi app rather than a check in each handler: a route added
//! later is protected without anyone remembering to.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::task::{Context, Poll};

use demo_kit::{AppError, ErrorCode, HttpResponse};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use http_body_util::BodyExt;
use tower::{Layer, Service};

use crate::admin::{self, Grant, is_admin_path};
use crate::metrics::{Metrics, RequestLabels};

/// Routes anyone may call: liveness and readiness probes.
const OPEN_ROUTES: [&str; 2] = ["/health", "/ready"];

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
    fn admit(&self, headers: &HeaderMap) -> Result<(), AppError> {
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
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
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

/// The method as a metrics label: the standard ones by name, anything else as `OTHER`, so a
/// client inventing methods cannot grow the metrics without bound.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The route template of `path`, for metrics labels.
pub fn route_of(path: &str) -> &'static str {
    // Every route has at most five segments; a longer path is no route (and costs no allocation).
    let mut segments = [""; 5];
    let mut count = 0;
    for segment in path.trim_end_matches('/').split('/').skip(1) {
        let Some(slot) = segments.get_mut(count) else {
            return "other";
        };
        *slot = segment;
        count += 1;
    }
    match &segments[..count] {
        ["health"] => "/health",
        ["ready"] => "/ready",
        ["metrics"] => "/metrics",
        ["admin", "status"] => "/admin/status",
        ["admin", "dashboard"] => "/admin/dashboard",
        ["admin", "breakers"] => "/admin/breakers",
        ["admin", "breakers", "events"] => "/admin/breakers/events",
        ["admin", "breakers", _, "force-open"] => "/admin/breakers/{name}/force-open",
        ["admin", "breakers", _, "force-closed"] => "/admin/breakers/{name}/force-closed",
        ["admin", "breakers", _, "reset"] => "/admin/breakers/{name}/reset",
        ["api", "users"] => "/api/users",
        ["api", "users", _] => "/api/users/{id}",
        ["api", "users", _, "orders"] => "/api/users/{id}/orders",
        ["api", "orders"] => "/api/orders",
        ["api", "orders", _] => "/api/orders/{id}",
        _ => "other",
    }
}

/// Wraps the app in [`Edge`].
#[derive(Debug, Clone)]
pub(crate) struct EdgeLayer {
    state: crate::GatewayState,
}

impl EdgeLayer {
    /// Checks requests against `state`'s keys and counts them in its metrics.
    pub(crate) fn new(state: crate::GatewayState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Authenticates, rate-limits and counts requests before the app sees them.
#[derive(Debug, Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    state: crate::GatewayState,
}

impl<S, B> Service<http::Request<B>> for Edge<S>
where
    S: Service<http::Request<B>, Response = HttpResponse, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let route = route_of(request.uri().path());
        let method = method_label(request.method());
        let metrics: Metrics = self.state.metrics().clone();
        let count = move |status: http::StatusCode| {
            metrics.count_request(RequestLabels {
                route,
                method,
                status: status.as_u16(),
            });
        };
        let refuse = |refusal: AppError| -> Self::Future {
            let response = refusal.into_http_response();
            count(response.status());
            Box::pin(std::future::ready(Ok(response)))
        };
        if is_admin_path(request.uri().path()) {
            let grant = match self.state.admin_keys().authorize(
                request.method(),
                request.uri(),
                request.headers(),
                self.state.keys(),
            ) {
                Ok(grant) => grant,
                Err(refusal) => return refuse(refusal),
            };
            let mut admin = self.state.admin().clone();
            if admin.serves(request.uri().path()) {
                let answer = admin.call(request);
                return Box::pin(async move {
                    let Ok(response) = answer.await;
                    let mut response =
                        response.map(|body| body.map_err(|never| match never {}).boxed_unsync());
                    if let Grant::Query(key) = grant
                        && let Some(cookie) = admin::set_cookie(&key)
                    {
                        response
                            .headers_mut()
                            .insert(http::header::SET_COOKIE, cookie);
                    }
                    count(response.status());
                    Ok(response)
                });
            }
        } else if !OPEN_ROUTES.contains(&route)
            && let Err(refusal) = self.state.keys().admit(request.headers())
        {
            return refuse(refusal);
        }
        // Call the instance that was polled ready, and keep a fresh clone for the next request.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = ready.call(request).await?;
            count(response.status());
            Ok(response)
        })
    }
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

    #[test]
    fn routes_are_templates_not_raw_paths() {
        assert_eq!(route_of("/api/users/42"), "/api/users/{id}");
        assert_eq!(route_of("/api/users/42/orders"), "/api/users/{id}/orders");
        assert_eq!(route_of("/api/orders/"), "/api/orders");
        assert_eq!(route_of("/etc/passwd"), "other");
        assert_eq!(
            route_of("/admin/breakers/users@http://x/reset"),
            "other",
            "a name with slashes is not one segment"
        );
        assert_eq!(
            route_of("/admin/breakers/users/reset"),
            "/admin/breakers/{name}/reset"
        );
        assert_eq!(route_of("/api/users/1/orders/2/3"), "other");
        assert_eq!(route_of("/"), "other");
    }

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::DELETE), "DELETE");
        let invented = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "OTHER");
    }
}
