use std::task::{Context, Poll};

use reqwest::{Client, Request, Response, Url};
use tower_service::Service;

/// A `reqwest::Client` bound to one base URL.
///
/// Requests keep their path and query and take the endpoint's scheme, host and port (and base
/// path, if it has one), so one request can go to whichever endpoint a balancer picks.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    client: Client,
    base: Url,
}

impl HttpEndpoint {
    /// Sends requests to `base` through `client`.
    pub fn new(client: Client, base: Url) -> Self {
        Self { client, base }
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn rebase(&self, url: &Url) -> Url {
        let mut target = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        if !prefix.is_empty() {
            target.set_path(&format!("{prefix}{}", url.path()));
        } else {
            target.set_path(url.path());
        }
        target.set_query(url.query());
        target
    }
}

impl Service<Request> for HttpEndpoint {
    type Response = Response;
    type Error = reqwest::Error;
    type Future = <Client as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request>::poll_ready(&mut self.client, cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        *request.url_mut() = self.rebase(request.url());
        self.client.call(request)
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
