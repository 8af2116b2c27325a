//! Edge protection: API keys and per-key rate limits, in front of every route but `/health` and
//! `/ready`; operator keys in front of `/admin` and `/metrics` (both kinds of key are
//! [`crate::access`]'s); the dashboard's paths routed to the crate's admin service; and the
//! request counter.
//!
//! A tower layer around the rustapi app rather than a check in each handler: a route added
//! later is protected without anyone remembering to.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use demo_kit::{AppError, HttpResponse};
use futures::future::Either;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::access::{self, Grant};
use crate::metrics::{Metrics, RequestLabels};
use crate::routes::{self, is_admin_path, route_of};
use crate::state::GatewayState;

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

/// Wraps the app in [`Edge`].
#[derive(Debug, Clone)]
pub(crate) struct EdgeLayer {
    state: GatewayState,
}

impl EdgeLayer {
    /// Checks requests against `state`'s keys and counts them in its metrics.
    pub(crate) fn new(state: GatewayState) -> Self {
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
    state: GatewayState,
}

impl<S, B> Service<http::Request<B>> for Edge<S>
where
    S: Service<http::Request<B>, Response = HttpResponse, Error = Infallible>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Infallible;
    /// The app's answer, counted, in this layer's own future; refusals and the dashboard's
    /// answers (neither on the proxied path) are boxed.
    type Future = Either<Counted<S::Future>, BoxFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let count = Count {
            metrics: self.state.metrics().clone(),
            route: route_of(request.uri().path()),
            method: method_label(request.method()),
        };
        let refuse = |refusal: AppError| -> Self::Future {
            let response = refusal.into_http_response();
            count.count(response.status());
            Either::Right(Box::pin(std::future::ready(Ok(response))))
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
                return Either::Right(Box::pin(async move {
                    let Ok(response) = answer.await;
                    let mut response =
                        response.map(|body| body.map_err(|never| match never {}).boxed_unsync());
                    if let Grant::Query(key) = grant
                        && let Some(cookie) = access::set_cookie(&key)
                    {
                        response
                            .headers_mut()
                            .insert(http::header::SET_COOKIE, cookie);
                    }
                    count.count(response.status());
                    Ok(response)
                }));
            }
        } else if !routes::OPEN.contains(&count.route)
            && let Err(refusal) = self.state.keys().admit(request.headers())
        {
            return refuse(refusal);
        }
        // The inner service was polled ready for this call, and is called now, not later in a
        // future: no clone of it is needed.
        Either::Left(Counted {
            inner: self.inner.call(request),
            count: Some(count),
        })
    }
}

/// A boxed answer.
type BoxFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

/// What a request is counted under, once answered.
#[derive(Debug)]
struct Count {
    metrics: Metrics,
    route: &'static str,
    method: &'static str,
}

impl Count {
    fn count(&self, status: http::StatusCode) {
        self.metrics.count_request(RequestLabels {
            route: self.route,
            method: self.method,
            status: status.as_u16(),
        });
    }
}

pin_project! {
    /// The app's answer, counted when it comes.
    pub(crate) struct Counted<F> {
        #[pin]
        inner: F,
        count: Option<Count>,
    }
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<HttpResponse, Infallible>>,
{
    type Output = Result<HttpResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        if let Some(count) = this.count.take() {
            count.count(response.status());
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::DELETE), "DELETE");
        let invented = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "OTHER");
    }
}
