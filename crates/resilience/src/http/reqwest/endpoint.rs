use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use pin_project_lite::pin_project;
use reqwest::{Client, Request, Url};
use tower_service::Service;

use crate::error::BoxError;
use crate::http::ReadBody;

/// The most an endpoint reads of one response body unless told otherwise: 4 MiB.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// A `reqwest::Client` bound to one base URL, answering with the whole (capped) response.
///
/// Requests keep their path and query and take the endpoint's scheme, host and port (and base
/// path, if it has one), so one request can go to whichever endpoint a balancer picks.
///
/// The response is read to the end before the future resolves, so an attempt timeout and a
/// breaker around this service cover the body too: a body that stalls times the attempt out, a
/// body that breaks or passes the cap ([`BodyTooLarge`](crate::http::BodyTooLarge)) fails it.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    client: Client,
    base: Url,
    max_body: usize,
    answered_by: AnsweredBy,
}

/// Which endpoint answered: in the extensions of every response an [`HttpEndpoint`] (so every
/// [`ResilientClient`](super::ResilientClient)) returns, whichever endpoint the balancer, a
/// retry or a hedge ended on.
///
/// ```no_run
/// use resilience::http::{AnsweredBy, ResilientClient};
///
/// # async fn example() -> Result<(), resilience::BoxError> {
/// let users = ResilientClient::builder("users")
///     .endpoints(["http://127.0.0.1:8081", "http://127.0.0.1:8083"])
///     .build()?;
/// let response = users.execute(users.request(reqwest::Method::GET, "/users/1").build()?).await?;
/// if let Some(answered) = response.extensions().get::<AnsweredBy>() {
///     println!("{} answered for {:?}", answered.endpoint(), answered.upstream());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredBy(Arc<Answerer>);

#[derive(Debug, PartialEq, Eq)]
struct Answerer {
    upstream: Option<Arc<str>>,
    endpoint: Arc<str>,
}

impl AnsweredBy {
    /// The endpoint's URL without a trailing slash: the key
    /// [`ResilientClient::endpoints`](super::ResilientClient::endpoints) lists it by.
    pub fn endpoint(&self) -> &str {
        &self.0.endpoint
    }

    /// The upstream it belongs to, when the endpoint is a [`ResilientClient`](super::ResilientClient)'s.
    pub fn upstream(&self) -> Option<&str> {
        self.0.upstream.as_deref()
    }
}

impl HttpEndpoint {
    /// Sends requests to `base` through `client`, reading at most [`DEFAULT_MAX_BODY`] bytes of
    /// each answer.
    pub fn new(client: Client, base: Url) -> Self {
        let answered_by = AnsweredBy(Arc::new(Answerer {
            upstream: None,
            endpoint: Arc::from(base.as_str().trim_end_matches('/')),
        }));
        Self {
            client,
            base,
            max_body: DEFAULT_MAX_BODY,
            answered_by,
        }
    }

    /// Names `upstream` as the one this endpoint answers for, in [`AnsweredBy`].
    pub(super) fn answering_as(mut self, upstream: &str, endpoint: Arc<str>) -> Self {
        self.answered_by = AnsweredBy(Arc::new(Answerer {
            upstream: Some(Arc::from(upstream)),
            endpoint,
        }));
        self
    }

    /// Reads at most `bytes` of each answer instead.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn rebase(&self, url: &Url) -> Url {
        rebase(&self.base, url)
    }

    /// Sends `request` as it is (its URL already this endpoint's) and reads the answer.
    pub(super) fn send(&mut self, request: Request) -> ResponseFuture {
        ResponseFuture {
            state: Exchange::Sending {
                future: self.client.call(request),
                max_body: self.max_body,
                answered_by: Some(self.answered_by.clone()),
            },
        }
    }
}

/// `url`'s path and query on `base` (after its base path, if it has one).
pub(super) fn rebase(base: &Url, url: &Url) -> Url {
    let mut target = base.clone();
    let prefix = base.path().trim_end_matches('/');
    if !prefix.is_empty() {
        target.set_path(&format!("{prefix}{}", url.path()));
    } else {
        target.set_path(url.path());
    }
    target.set_query(url.query());
    target
}

impl Service<Request> for HttpEndpoint {
    type Response = http::Response<Bytes>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request>::poll_ready(&mut self.client, cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        *request.url_mut() = self.rebase(request.url());
        self.send(request)
    }
}

pin_project! {
    /// The whole answer of an [`HttpEndpoint`]: its headers, then its body read to the end.
    pub struct ResponseFuture {
        #[pin]
        state: Exchange,
    }
}

pin_project! {
    #[project = ExchangeProj]
    enum Exchange {
        Sending {
            #[pin]
            future: <Client as Service<Request>>::Future,
            max_body: usize,
            answered_by: Option<AnsweredBy>,
        },
        Reading {
            parts: Option<http::response::Parts>,
            #[pin]
            body: ReadBody<reqwest::Body>,
        },
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<Bytes>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut state = self.as_mut().project().state;
            match state.as_mut().project() {
                ExchangeProj::Sending {
                    future,
                    max_body,
                    answered_by,
                } => {
                    let response = ready!(future.poll(cx))?;
                    let (mut parts, body) = http::Response::from(response).into_parts();
                    if let Some(answered_by) = answered_by.take() {
                        parts.extensions.insert(answered_by);
                    }
                    let body = ReadBody::new(body, *max_body);
                    state.set(Exchange::Reading {
                        parts: Some(parts),
                        body,
                    });
                }
                ExchangeProj::Reading { parts, body } => {
                    let body = ready!(body.poll(cx))?;
                    let parts = parts
                        .take()
                        .expect("an endpoint future is polled after it completed");
                    return Poll::Ready(Ok(http::Response::from_parts(parts, body)));
                }
            }
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(base: &str) -> HttpEndpoint {
        HttpEndpoint::new(Client::new(), Url::parse(base).unwrap())
    }

    #[test]
    fn takes_the_endpoint_address_and_keeps_path_and_query() {
        let url = Url::parse("http://placeholder:1/users/7?limit=2").unwrap();
        assert_eq!(
            endpoint("http://127.0.0.1:8083").rebase(&url).as_str(),
            "http://127.0.0.1:8083/users/7?limit=2"
        );
    }

    #[test]
    fn prefixes_a_base_path() {
        let url = Url::parse("http://placeholder/users").unwrap();
        assert_eq!(
            endpoint("http://10.0.0.1:80/v1/").rebase(&url).as_str(),
            "http://10.0.0.1/v1/users"
        );
    }
}
