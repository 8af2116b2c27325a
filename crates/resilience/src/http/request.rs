//! What the HTTP rules need to know of a request, whichever client built it.

use http::{HeaderMap, Method};

/// A request the HTTP rules can judge: its method, its headers, and a copy when its body can be
/// sent again.
///
/// Implemented for `http::Request<B>` with a cloneable body (`Full<Bytes>`, `String`, ...: what
/// hyper-util, axum and tonic clients send), and with the `reqwest` feature for
/// `reqwest::Request`.
pub trait HttpRequest: Sized {
    /// The method.
    fn method(&self) -> &Method;

    /// The headers.
    fn headers(&self) -> &HeaderMap;

    /// A copy to send again, or `None` when the body is a stream that cannot be replayed.
    fn try_clone(&self) -> Option<Self>;

    /// How many times this request was sent before this copy: 0 for the first attempt, 1 for
    /// the first retry. Set by [`HttpRetryRules`](super::HttpRetryRules) before each retry and
    /// read by the per-attempt span (`http.request.resend_count`); 0 where the request type has
    /// nowhere to keep it.
    fn resend_count(&self) -> u32 {
        0
    }

    /// Records that this copy is resend number `count` (see [`resend_count`](Self::resend_count));
    /// does nothing where the request type has nowhere to keep it.
    fn set_resend_count(&mut self, count: u32) {
        let _ = count;
    }
}

/// The resend count of an `http::Request`, kept in its extensions (so it travels with the copies
/// a retry makes): 0 for the first attempt, 1 for the first retry, and so on.
///
/// Only retries insert it, so a first attempt costs nothing; a request without it is attempt 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResendCount(pub u32);

impl<B: Clone> HttpRequest for http::Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn try_clone(&self) -> Option<Self> {
        let mut copy = http::Request::new(self.body().clone());
        *copy.method_mut() = self.method().clone();
        *copy.uri_mut() = self.uri().clone();
        *copy.version_mut() = self.version();
        *copy.headers_mut() = self.headers().clone();
        *copy.extensions_mut() = self.extensions().clone();
        Some(copy)
    }

    fn resend_count(&self) -> u32 {
        self.extensions()
            .get::<ResendCount>()
            .map_or(0, |count| count.0)
    }

    fn set_resend_count(&mut self, count: u32) {
        self.extensions_mut().insert(ResendCount(count));
    }
}

#[cfg(feature = "reqwest")]
impl HttpRequest for reqwest::Request {
    fn method(&self) -> &Method {
        self.method()
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn try_clone(&self) -> Option<Self> {
        self.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_request_copies_whole() {
        let request = http::Request::put("http://users/users/7")
            .header("idempotency-key", "k-1")
            .body(String::from("{\"name\":\"Ada\"}"))
            .unwrap();
        let copy = HttpRequest::try_clone(&request).unwrap();
        assert_eq!(copy.method(), http::Method::PUT);
        assert_eq!(copy.uri(), "http://users/users/7");
        assert_eq!(copy.headers()["idempotency-key"], "k-1");
        assert_eq!(copy.body(), request.body());
    }

    #[test]
    fn a_resend_count_travels_with_copies() {
        let mut request = http::Request::get("http://users/users/7").body(()).unwrap();
        assert_eq!(HttpRequest::resend_count(&request), 0);
        request.set_resend_count(2);
        let copy = HttpRequest::try_clone(&request).unwrap();
        assert_eq!(HttpRequest::resend_count(&copy), 2);
        assert_eq!(copy.extensions().get(), Some(&ResendCount(2)));
    }
}
