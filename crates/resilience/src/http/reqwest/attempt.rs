//! What travels through a [`ResilientClient`](super::ResilientClient)'s stack: the reqwest
//! request and which resend it is, and the two steps at the ends of each endpoint's stack.
//!
//! Why a wrapper: `reqwest::Request` keeps its extensions to itself, so the resend count the
//! retry rules set for the attempt span (`http.request.resend_count`) needs a place of its own.
//! Why rebasing at the top of each endpoint's stack and not in [`HttpEndpoint`]: the attempt
//! span, above the breaker, must see the URL the attempt goes to.

use std::task::{Context, Poll};

use http::{HeaderMap, Method};
use reqwest::{Request, Url};
use tower_service::Service;

use super::endpoint::{HttpEndpoint, ResponseFuture, rebase};
use crate::error::BoxError;
use crate::http::HttpRequest;

/// A request in the stack, and which resend it is (0: the first attempt).
#[derive(Debug)]
pub(crate) struct Attempt {
    request: Request,
    resend_count: u32,
}

impl Attempt {
    pub(crate) fn new(request: Request) -> Self {
        Self {
            request,
            resend_count: 0,
        }
    }
}

impl HttpRequest for Attempt {
    fn method(&self) -> &Method {
        self.request.method()
    }

    fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    fn try_clone(&self) -> Option<Self> {
        Some(Self {
            request: self.request.try_clone()?,
            resend_count: self.resend_count,
        })
    }

    fn resend_count(&self) -> u32 {
        self.resend_count
    }

    fn set_resend_count(&mut self, count: u32) {
        self.resend_count = count;
    }
}

#[cfg(feature = "opentelemetry")]
impl crate::http::trace::AttemptRequest for Attempt {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.request.headers_mut()
    }

    fn server_address(&self) -> Option<&str> {
        self.request.server_address()
    }

    fn server_port(&self) -> Option<u16> {
        self.request.server_port()
    }

    fn url_full(&self) -> std::borrow::Cow<'_, str> {
        self.request.url_full()
    }
}

/// Points each attempt at one endpoint's base URL (keeping path and query), first thing in
/// that endpoint's stack.
#[derive(Debug, Clone)]
pub(crate) struct Rebase<S> {
    base: Url,
    /// The base is an origin alone (no path, no query): a request already on that origin needs
    /// no new URL.
    origin_only: bool,
    inner: S,
}

impl<S> Rebase<S> {
    pub(crate) fn new(base: Url, inner: S) -> Self {
        let origin_only = base.path() == "/" && base.query().is_none();
        Self {
            base,
            origin_only,
            inner,
        }
    }

    fn is_on_base(&self, url: &Url) -> bool {
        let base = &self.base;
        self.origin_only
            && url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port() == base.port()
            && url.username() == base.username()
            && url.password() == base.password()
    }
}

impl<S: Service<Attempt>> Service<Attempt> for Rebase<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut attempt: Attempt) -> Self::Future {
        if !self.is_on_base(attempt.request.url()) {
            let url = rebase(&self.base, attempt.request.url());
            *attempt.request.url_mut() = url;
        }
        self.inner.call(attempt)
    }
}

/// The [`HttpEndpoint`] at the bottom of an endpoint's stack, sending the (already rebased)
/// request.
#[derive(Debug, Clone)]
pub(crate) struct SendAttempt {
    endpoint: HttpEndpoint,
}

impl SendAttempt {
    pub(crate) fn new(endpoint: HttpEndpoint) -> Self {
        Self { endpoint }
    }
}

impl Service<Attempt> for SendAttempt {
    type Response = http::Response<bytes::Bytes>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request>::poll_ready(&mut self.endpoint, cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        self.endpoint.send(attempt.request)
    }
}
